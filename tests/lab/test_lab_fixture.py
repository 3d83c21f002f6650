"""The lab itself, checked through the docker SDK: if these fail, no lab test result means anything."""

from __future__ import annotations

import os
import tarfile
import time
import tomllib
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from dockerlab import (
    BUSYBOX_REF,
    FAST_STOP_TIMEOUT,
    LAB_API_VERSION,
    TENANT_LABEL,
    InventoryNode,
    Lab,
    Placement,
    build_busybox_tar,
    find_busybox,
    transfer_image,
)

pytestmark = pytest.mark.lab

MiB = 1024 * 1024
IDLE = ["sleep", "1000000"]


def _containers_by_name(client: docker.DockerClient) -> dict[str, docker.models.containers.Container]:
    return {c.name: c for c in client.containers.list(all=True)}


def _cpu_percent(stats: dict[str, Any]) -> float:
    """docker CLI formula (STYLE.md): delta usage / delta system x online CPUs x 100."""
    cpu, pre = stats["cpu_stats"], stats["precpu_stats"]
    delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system = cpu["system_cpu_usage"] - pre.get("system_cpu_usage", 0)
    assert delta > 0 and system > 0, "need two samples"
    return float(delta / system * cpu["online_cpus"] * 100.0)


def _mem_used(stats: dict[str, Any]) -> int:
    """docker CLI formula on cgroup v1: usage - total_inactive_file."""
    memory = stats["memory_stats"]
    usage: int = memory["usage"]
    inactive = memory["stats"].get("total_inactive_file", 0)
    return usage - inactive if inactive < usage else usage


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # zombies wait for PID 1 to reap them; they hold nothing


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if text.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    found.append(int(name))
            except OSError:
                continue
    return found


# -- the shared lab ---------------------------------------------------------


def test_three_nodes_answer_ping_with_api_1_41(lab: Lab) -> None:
    assert [n.name for n in lab.nodes] == ["lab-n1", "lab-n2", "lab-n3"]
    daemon_ids = set()
    for node in lab.nodes:
        assert node.ping() == LAB_API_VERSION, node.name
        with closing(node.client()) as client:
            assert client.ping() is True
            assert client.version()["ApiVersion"] == LAB_API_VERSION
            daemon_ids.add(client.info()["ID"])
    assert len(daemon_ids) == 3, "each node must be its own daemon"


def test_workload_containers_run_on_their_nodes_with_tenant_labels(lab: Lab, workload: dict[str, Placement]) -> None:
    expected = {
        "acme-burn": ("lab-n1", "acme", "running"),
        "globex-mem": ("lab-n2", "globex", "running"),
        "stray-idle": ("lab-n3", None, "running"),
        "initech-batch": ("lab-n3", "initech", "exited"),
    }
    for n in (1, 2, 3):
        expected[f"initech-n{n}-1"] = (f"lab-n{n}", "initech", "running")
        expected[f"initech-n{n}-2"] = (f"lab-n{n}", "initech", "running")
    assert {name: p.node for name, p in workload.items()} == {name: e[0] for name, e in expected.items()}

    for node in lab.nodes:
        with closing(node.client()) as client:
            here = _containers_by_name(client)
        assert set(here) == {name for name, e in expected.items() if e[0] == node.name}
        for name, container in here.items():
            _, tenant, status = expected[name]
            assert container.id == workload[name].id
            assert container.labels.get(TENANT_LABEL) == tenant, name
            assert container.status == status, name

    with closing(lab.node("lab-n1").client()) as client:
        burn = client.containers.get(workload["acme-burn"].id).attrs["HostConfig"]
    assert burn["NanoCpus"] == 500_000_000
    with closing(lab.node("lab-n2").client()) as client:
        mem = client.containers.get(workload["globex-mem"].id).attrs["HostConfig"]
    assert (mem["Memory"], mem["ShmSize"]) == (256 * MiB, 64 * MiB)
    with closing(lab.node("lab-n3").client()) as client:
        batch = client.containers.get(workload["initech-batch"].id).attrs["State"]
        idle_limits = [
            client.containers.get(workload[f"initech-n3-{k}"].id).attrs["HostConfig"]["Memory"] for k in (1, 2)
        ]
    assert batch["ExitCode"] == 3
    assert idle_limits == [64 * MiB, 0]


def test_globex_holds_40_mib_and_acme_burns_at_most_half_a_core(lab: Lab, workload: dict[str, Placement]) -> None:
    with closing(lab.node("lab-n2").client()) as client:
        mem_stats = client.containers.get(workload["globex-mem"].id).stats(stream=False)
    assert 38 * MiB <= _mem_used(mem_stats) <= 256 * MiB

    with closing(lab.node("lab-n1").client()) as client:
        cpu_stats = client.containers.get(workload["acme-burn"].id).stats(stream=False)
    # Upper bound only is strict: a busy shared CI host may starve the burner.
    assert 5.0 < _cpu_percent(cpu_stats) <= 60.0


def test_inventory_file_lists_the_lab_nodes(lab: Lab, inventory_file: Path) -> None:
    inventory = tomllib.loads(inventory_file.read_text())

    assert inventory["tenancy"] == {"label": "tenant"}
    assert inventory["node"] == [
        {"name": f"lab-n{i}", "url": f"unix://{lab.base}/n{i}/docker.sock", "labels": {"rack": f"r{i}"}}
        for i in (1, 2, 3)
    ]


def test_inventory_can_add_extra_nodes(lab: Lab, tmp_path: Path) -> None:
    ghost = InventoryNode("ghost", "unix:///tmp/berth-no-such-node.sock", {"rack": "r9", "odd key": 'q"uote'})

    path = lab.write_inventory(tmp_path / "inv.toml", tenancy_label="team", extra_nodes=[ghost])

    inventory = tomllib.loads(path.read_text())
    assert inventory["tenancy"]["label"] == "team"
    assert inventory["node"][-1] == {"name": "ghost", "url": ghost.url, "labels": {"rack": "r9", "odd key": 'q"uote'}}


# -- scratch labs (destructive) ---------------------------------------------


def test_killed_node_comes_back_and_still_lists_its_containers(scratch_lab: Lab) -> None:
    n1, n2 = scratch_lab.nodes
    container_id = n1.run_container("survivor")
    old_pid = n1.pid

    n1.kill()

    assert n1.pid is None and n1.ping(timeout=0.5) is None
    assert n2.ping() == LAB_API_VERSION, "the other node is not affected"

    n1.start()

    assert n1.ping() == LAB_API_VERSION and n1.pid not in (None, old_pid)
    with closing(n1.client()) as client:
        back = client.containers.get(container_id)
        # Without --live-restore, dockerd kills containers it finds running after a crash.
        assert back.name == "survivor" and back.status == "exited"
        back.start()
        back.reload()
        assert back.status == "running"


DEFAULT_STOP_TIMEOUT = 10  # seconds dockerd waits for a container without a StopTimeout of its own


def _docker_time(stamp: str) -> float:
    """An RFC 3339 time as dockerd writes it (nanoseconds, Z) as a Unix time."""
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{frac or 0}")


def test_graceful_restart_keeps_containers(scratch_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    node = scratch_lab.nodes[1]
    container_id = node.run_container("calm", tenant="initech", mem_limit="32m")
    # Bound only the container's stop within the daemon's shutdown: from the SIGTERM to dockerd to
    # the container's FinishedAt (dockerd's clock, this host's). Not restart() as a whole: the rest of
    # the shutdown and the boot after it are slow on a loaded box and bounded by the lab's timeouts.
    stop_sent: list[float] = []
    stop = node.stop

    def noted_stop(*args: Any, **kwargs: Any) -> None:
        stop_sent.append(time.time())
        stop(*args, **kwargs)

    monkeypatch.setattr(node, "stop", noted_stop)

    node.restart()

    with closing(node.client()) as client:
        state = client.api.inspect_container(container_id)["State"]
    assert len(stop_sent) == 1 and state["Status"] == "exited"
    took = _docker_time(state["FinishedAt"]) - stop_sent[0]
    # Waiting out the default would take at least DEFAULT_STOP_TIMEOUT; FAST_STOP_TIMEOUT bounds it at 2 s.
    assert took < DEFAULT_STOP_TIMEOUT, (
        f"the container stopped {took:.1f}s after dockerd's SIGTERM: shutdown waited out the default stop timeout")
    with closing(node.client()) as client:
        container = client.containers.get(container_id)
    assert container.name == "calm" and container.labels == {TENANT_LABEL: "initech"}
    assert container.attrs["Config"]["StopTimeout"] == FAST_STOP_TIMEOUT
    assert container.attrs["HostConfig"]["Init"] is True and container.attrs["HostConfig"]["Memory"] == 32 * MiB


def test_live_restore_node_keeps_containers_running_across_a_crash(make_lab: Callable[..., Lab]) -> None:
    node = make_lab(1, live_restore=True).nodes[0]
    container_id = node.run_container("steady")

    node.kill()
    node.start()

    with closing(node.client()) as client:
        assert client.containers.get(container_id).status == "running"


def test_frozen_node_stops_answering_until_thawed(scratch_lab: Lab) -> None:
    node = scratch_lab.nodes[0]

    node.freeze()

    assert node.frozen and node.ping(timeout=0.5) is None
    with closing(node.client(timeout=1)) as client, pytest.raises(requests.exceptions.Timeout):
        client.containers.list()

    node.thaw()

    assert not node.frozen and node.ping() == LAB_API_VERSION


def test_image_moves_between_nodes_and_runs_with_path_set(scratch_lab: Lab) -> None:
    n1, n2 = scratch_lab.nodes
    with closing(n1.client()) as client:
        client.images.get(BUSYBOX_REF).tag("berth/moved", "v1")

    transfer_image(n1, n2, "berth/moved:v1")

    with closing(n2.client()) as client:
        output = client.containers.run("berth/moved:v1", ["sh", "-c", 'echo "$PATH"; id -u'], remove=True)
    assert output.decode().split() == ["/bin", "0"]


def test_destroy_leaves_no_processes_mounts_or_files(scratch_lab: Lab) -> None:
    n1, n2 = scratch_lab.nodes
    pids = []
    with closing(n1.client()) as client:
        for name, pause in (("running", False), ("paused", True)):
            container = client.containers.run(BUSYBOX_REF, IDLE, name=name, detach=True)
            container.reload()
            pids.append(container.attrs["State"]["Pid"])
            if pause:
                container.pause()
    # The worst case: n1 crashed with orphaned shims and a paused container, n2 hangs.
    n1.kill()
    n2.freeze()

    scratch_lab.close()

    assert not scratch_lab.base.exists()
    assert _processes_mentioning(str(scratch_lab.base)) == []
    assert str(scratch_lab.base) not in Path("/proc/self/mountinfo").read_text()
    assert [pid for pid in pids if _alive(pid)] == []


# -- the test image ---------------------------------------------------------


@pytest.mark.skipif(find_busybox() is None, reason="LAB SKIPPED: no static busybox")
def test_busybox_tar_keeps_the_binary_and_links_every_other_applet(tmp_path: Path) -> None:
    tar_path = build_busybox_tar(tmp_path / "rootfs.tar")

    with tarfile.open(tar_path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isreg() and members["bin/busybox"].size > 100_000
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert all(members[d].isdir() for d in ("tmp", "etc", "dev/shm", "proc", "sys"))
