"""`berth sim` as an operator runs it: a process per node, an inventory, clean shutdown on Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from console.config import load_inventory
from console.sim.fleet import SimError, SimFleet

ROOT = Path(__file__).resolve().parents[2]


def _pids_serving(directory: Path) -> list[int]:
    """Processes whose command line names this directory (read-only look at /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "console.sim.node" in cmdline and str(directory) in cmdline:
            out.append(int(entry.name))
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_berth_sim_runs_until_signalled_and_cleans_up(tmp_path: Path, sig: signal.Signals) -> None:
    directory = tmp_path / "fleet"
    proc = subprocess.Popen([sys.executable, "-m", "console", "sim", "--nodes", "3", "--containers-per-node", "4",
                             "--seed", "5", "--dir", str(directory), "--flap", "off"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        inventory_path = directory / "inventory.toml"
        assert f"inventory: {inventory_path}" in text
        assert f"berth --inventory {inventory_path}" in text
        inventory = load_inventory(inventory_path)
        assert [n.name for n in inventory.nodes] == ["sim-01", "sim-02", "sim-03"]
        assert inventory.tenancy_label == "tenant" and inventory.tenants
        for node in inventory.nodes:
            path = node.url.removeprefix("unix://")
            with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://docker") as c:
                assert c.get("/v1.41/info").json()["Name"] == node.name
        assert len(_pids_serving(directory)) == 3
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=20)
    assert proc.returncode in (0, -sig)
    assert _pids_serving(directory) == []
    assert not list(directory.glob("*/docker.sock")) and not inventory_path.exists()


def test_subprocess_fleet_serves_the_planned_layout(tmp_path: Path) -> None:
    with SimFleet(nodes=2, containers_per_node=5, seed=8, dir=tmp_path, cgroup="2") as fleet:
        for spec in fleet.layout.nodes:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(fleet.sockets[spec.name])),
                              base_url="http://docker") as c:
                ids = {x["Id"] for x in c.get("/v1.41/containers/json", params={"all": "1"}).json()}
                assert ids == {cs.id for cs in spec.containers}
                assert c.get("/v1.41/info").json()["CgroupVersion"] == "2"
        pids = [p.pid for p in fleet.procs.values()]
    assert all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in pids)
    assert list(tmp_path.iterdir()) == []  # everything it made is gone; the directory itself is the caller's


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_socket_path_too_long_is_one_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90)
    with pytest.raises(SimError, match="too long for a unix socket"):
        SimFleet(nodes=1, containers_per_node=1, dir=deep).start()
    r = subprocess.run([sys.executable, "-m", "console", "sim", "--nodes", "1", "--dir", str(deep)],
                       cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "too long for a unix socket" in r.stderr


def test_a_directory_already_served_is_refused(tmp_path: Path) -> None:
    with SimFleet(nodes=1, containers_per_node=1, dir=tmp_path, in_process=True):
        start = time.monotonic()
        with pytest.raises(SimError, match="already served"):
            SimFleet(nodes=1, containers_per_node=1, dir=tmp_path, in_process=True).start()
        assert time.monotonic() - start < 5


def test_a_fleet_built_only_for_its_layout_makes_nothing_on_disk() -> None:
    fleet = SimFleet(nodes=2, containers_per_node=3, seed=1)
    assert fleet.layout.nodes and not fleet.dir.exists()
    fleet.close()  # closing an unstarted fleet is harmless
    assert not fleet.dir.exists()


def test_a_dir_others_can_write_is_refused_before_anything_starts(tmp_path: Path) -> None:
    # Given a --dir its group can write (anyone in it could swap a socket or the inventory for a link)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o775)
    r = subprocess.run([sys.executable, "-m", "console", "sim", "--nodes", "1", "--dir", str(shared)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    # Then one line naming it, exit 2, nothing made in it and no node started
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{shared}: directory is writable by its group" in r.stderr
    assert list(shared.iterdir()) == [] and not _pids_serving(shared)


def test_a_symlinked_inventory_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.toml"
    victim.write_text("# mine\n")
    (tmp_path / "fleet").mkdir(mode=0o700)
    (tmp_path / "fleet" / "inventory.toml").symlink_to(victim)
    with pytest.raises(OSError, match="inventory.toml: is a symbolic link"):
        SimFleet(nodes=1, containers_per_node=1, dir=tmp_path / "fleet", in_process=True).start()
    assert victim.read_text() == "# mine\n" and (tmp_path / "fleet" / "inventory.toml").is_symlink()
    assert not (tmp_path / "fleet" / "sim-01" / "docker.sock").exists()
