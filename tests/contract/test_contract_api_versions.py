"""Newer Engine API shapes: `berth sim --api-version` serves them, and Berth reads them.

The Engine API changed after 1.41; from 1.52 `/events` drops the top-level `status`, `id` and
`from` (readers use `Action` and `Actor.ID`). Like dockerd, a simulated node serving 1.52 answers
each request in the shape of the version its path asks for, so a 1.41 client is served as before.
A real dockerd 20.10 stays the reference for 1.41 (test_contract_engine_api.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from contract_support import Engine

from console.config import parse_inventory
from console.fleet.poller import NodeWatcher
from console.sim.fleet import SimFleet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim_152(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with SimFleet(nodes=1, containers_per_node=2, seed=5, dir=tmp_path_factory.mktemp("sim152"),
                  api_version="1.52") as fleet:
        [spec] = fleet.layout.nodes
        yield Engine("sim-1.52", str(fleet.sockets[spec.name]), spec.cgroup)


def _events(api: httpx.Client, version: str, cid: str, since: str) -> list[dict]:
    r = api.get(f"/v{version}/events", params={"since": since, "until": f"{time.time() + 0.5:.9f}",
                                                "filters": json.dumps({"container": [cid]})})
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def test_a_152_node_says_so_and_refuses_newer_clients(sim_152: Engine) -> None:
    with sim_152.http() as api:
        assert api.get("/_ping").headers["Api-Version"] == "1.52"
        assert api.get("/v1.52/version").json()["ApiVersion"] == "1.52"
        too_new = api.get("/v1.53/info")
        assert too_new.status_code == 400
        assert too_new.json() == {"message": "client version 1.53 is too new. Maximum supported API version is 1.52"}


def test_events_have_each_versions_shape(sim_152: Engine, tmp_path: Path) -> None:
    with sim_152.http() as api:
        since = f"{time.time() - 1:.9f}"
        cid, name = sim_152.run(api, ["sleep", "100000"])
        assert api.post(f"/v1.41/containers/{cid}/stop", params={"t": "1"}).status_code == 204
        new, old = _events(api, "1.52", cid, since), _events(api, "1.41", cid, since)
    assert [e["Action"] for e in new] == [e["Action"] for e in old] and "die" in [e["Action"] for e in new]
    for e in new:  # 1.52: no status/id/from
        assert not {"status", "id", "from"} & set(e) and e["Actor"]["ID"] == cid and e["Type"] == "container"
    for e in old:  # 1.41: as dockerd 20.10
        assert (e["status"], e["id"]) == (e["Action"], cid)
    # Berth's reader applies both shapes alike.
    inv = parse_inventory('[[node]]\nname = "n"\nurl = "unix:///nonexistent.sock"\n')
    seen = {}
    for shape, events in (("1.52", new), ("1.41", old)):
        w = NodeWatcher(inv.nodes[0], inv, on_change=lambda *a: None)
        w._reconcile_streams = lambda: None  # type: ignore[method-assign]  # the model only
        w._schedule_inspect = lambda cid: None  # type: ignore[method-assign]
        for e in events:
            w._apply_event(e)
        c = w.containers[cid]
        seen[shape] = (c.name, c.state, c.exit_code, w._events_since)
    assert seen["1.52"] == seen["1.41"] and seen["1.52"][:2] == (name, "exited")


def test_berth_status_reads_a_152_fleet(tmp_path: Path) -> None:
    """The CLI end to end on a fleet serving 1.52 (Berth negotiates the newest it knows, 1.45)."""
    with SimFleet(nodes=2, containers_per_node=3, seed=9, dir=tmp_path / "sim", api_version="1.52") as fleet:
        proc = subprocess.run([sys.executable, "-m", "console", "status", "--json", "--inventory",
                               str(fleet.inventory_path), "--timeout", "30"], capture_output=True, text=True,
                              cwd=ROOT, timeout=120, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert {n["state"] for n in doc["nodes"]} <= {"up", "degraded"} and len(doc["nodes"]) == 2
    assert sum(1 for c in doc["containers"] if c["cpu_percent"] is not None) >= 1


def test_berth_sim_refuses_an_api_version_it_does_not_serve() -> None:
    proc = subprocess.run([sys.executable, "-m", "console", "sim", "--api-version", "1.40"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "berth sim: --api-version '1.40': the simulator serves API 1.41 to 1.52\n"
