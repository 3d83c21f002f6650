"""Migrate in the default network mode without a bridge, against real dockerd nodes.

The lab's daemons run `--bridge=none`, like bare metal with host networking or only
user-defined networks. A plain `docker run` there gives NetworkMode "default" and a recorded
"bridge" endpoint with no network behind it: the container uses no network, and the target
runs it exactly so. Pre-flight used to refuse it ("network bridge does not exist on <target>").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from action_helpers import dk
from dockerlab import BUSYBOX_REF, Lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
N1, N2 = "lab-n1", "lab-n2"


def docker_cli(lab: Lab, node: str, *args: str) -> str:
    cli = shutil.which("docker")
    if cli is None:
        pytest.fail("the docker CLI is needed to make a container as `docker run` does (apt-get install docker.io)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    proc = subprocess.run([cli, "-H", lab.node(node).url, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_plain_docker_run_container_migrates_between_bridgeless_nodes(lab: Lab, tmp_path: Path) -> None:
    # Given a container started the plain way on a --bridge=none node
    docker_cli(lab, N1, "run", "-d", "--init", "--name", "plain", BUSYBOX_REF, "sleep", "1000000")
    [doc] = json.loads(docker_cli(lab, N1, "inspect", "plain"))
    assert doc["HostConfig"]["NetworkMode"] == "default"
    assert doc["NetworkSettings"]["Networks"]["bridge"]["NetworkID"] == ""  # recorded, never joined
    inventory = lab.write_inventory(tmp_path / "inventory.toml")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    # When it is migrated
    proc = subprocess.run([sys.executable, "-m", "console", "migrate", "plain", "--to", N2, "--yes",
                           "-i", str(inventory)], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=240, check=False)
    # Then it runs on the target as it ran on the source: default mode, no network
    assert proc.returncode == 0, proc.stdout + proc.stderr
    moved = dk(lab, N2).containers.get("plain")
    assert moved.status == "running"
    assert moved.attrs["HostConfig"]["NetworkMode"] == "default"
    assert all(not ep.get("NetworkID") for ep in moved.attrs["NetworkSettings"]["Networks"].values())
