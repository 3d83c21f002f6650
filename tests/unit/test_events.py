"""Events recorded from a real dockerd 20.10 applied to a node's model without any network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.config import parse_inventory
from console.fleet.poller import NodeWatcher, parse_time

PAYLOADS = Path(__file__).parent / "payloads"
INVENTORY = """
[tenancy]
label = "tenant"
[[node]]
name = "n1"
url = "unix:///nonexistent/docker.sock"
"""


@pytest.fixture
def watcher() -> NodeWatcher:
    inv = parse_inventory(INVENTORY)
    w = NodeWatcher(inv.nodes[0], inv, on_change=lambda *a: None)
    # Streams and inspects are not wanted here: only the model transitions.
    w._reconcile_streams = lambda: None  # type: ignore[method-assign]
    w._schedule_inspect = lambda cid: None  # type: ignore[method-assign]
    return w


def events() -> list[dict]:
    return [json.loads(line) for line in (PAYLOADS / "events.jsonl").read_text().splitlines() if line]


def test_recorded_lifecycle_is_applied_in_order(watcher: NodeWatcher) -> None:
    evs = events()
    create, start = evs[0], evs[1]
    cid = create["id"]
    watcher._apply_event(create)
    c = watcher.containers[cid]
    assert c.name == "ev" and c.tenant == "acme" and c.image == "berth/busybox:test"
    watcher._apply_event(start)
    assert c.state == "running"
    rename = next(e for e in evs if e["Action"] == "rename")
    watcher._apply_event(rename)
    assert c.name == "ev2"
    die = next(e for e in evs if e["Action"] == "die")
    watcher._apply_event(die)
    assert c.state == "exited" and c.exit_code == 3
    destroy = next(e for e in evs if e["Action"] == "destroy")
    watcher._apply_event(destroy)
    assert cid not in watcher.containers
    assert watcher._events_since == destroy["timeNano"] / 1e9


def test_pause_and_unpause(watcher: NodeWatcher) -> None:
    pause = next(e for e in events() if e["Action"] == "pause")
    watcher._apply_event(pause)
    assert watcher.containers[pause["id"]].state == "paused"
    watcher._apply_event(next(e for e in events() if e["Action"] == "unpause"))
    assert watcher.containers[pause["id"]].state == "running"


def test_health_and_oom_and_unknown_events(watcher: NodeWatcher) -> None:
    base = events()[1]
    health = {**base, "status": "health_status: unhealthy", "Action": "health_status: unhealthy"}
    watcher._apply_event(health)
    c = watcher.containers[base["id"]]
    assert c.health == "unhealthy"
    watcher._apply_event({**base, "status": "oom", "Action": "oom"})
    assert c.oom_killed
    # Unknown or foreign types are ignored, never a crash
    for ev in ({"Type": "network", "Action": "connect"}, {"Type": "container", "Action": "teleport", "id": "x"},
               {"Type": "container", "Action": "start"}, {"Type": "container", "Action": "start", "Actor": []}):
        watcher._apply_event(ev)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-28T09:14:31.817788154Z", 1795857271.817788154),
    ("2026-11-28T09:14:31Z", 1795857271.0),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    ("garbage", None),
])
def test_parse_time(text: str, expected: float | None) -> None:
    got = parse_time(text)
    assert (got is None) if expected is None else got == pytest.approx(expected, abs=1e-6)


def test_podmans_died_event_reads_as_die_with_its_exit_code(watcher: NodeWatcher) -> None:
    # The shape of Podman's own event (libpod events, older compat services): `died`, and the
    # exit code as `containerExitCode`; recorded names and ids from a podman 4.3 lab node.
    cid = "a23b5b28b23cd289149acf8c9d6374ac49f6f529e8b8bbfe57476712e93f2ecf"
    base = {"Type": "container", "Actor": {"ID": cid, "Attributes": {
        "image": "docker.io/berth/busybox:test", "name": "idle", "tenant": "b"}}, "scope": "local"}
    watcher._apply_event({**base, "status": "start", "Action": "start", "timeNano": 1796690898822358112})
    assert watcher.containers[cid].state == "running"
    died = {**base, "status": "died", "Action": "died", "timeNano": 1796690899003708481}
    died["Actor"] = {"ID": cid, "Attributes": {**base["Actor"]["Attributes"], "containerExitCode": "143"}}
    watcher._apply_event(died)
    c = watcher.containers[cid]
    assert c.state == "exited" and c.exit_code == 143 and c.status == "Exited (143)"
