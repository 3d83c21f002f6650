"""One daemon behind two inventory names: the later name is refused, whichever connected first.
And a Berth lock's events move the action badge at once. (Model transitions, no network.)"""

from __future__ import annotations

import pytest

from console.config import parse_inventory
from console.engine.errors import DuplicateEngine
from console.fleet.model import NodeState
from console.fleet.poller import ContainerState, Fleet

INVENTORY = """
[[node]]
name = "a"
url = "unix:///nonexistent/a.sock"
[[node]]
name = "b"
url = "unix:///nonexistent/b.sock"
"""


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(parse_inventory(INVENTORY))


def test_the_later_node_is_the_duplicate_even_when_it_connected_first(fleet: Fleet) -> None:
    a, b = fleet.watchers
    b.info = {"ID": "ENGINE-1"}
    b.engines["b"] = "ENGINE-1"  # b connected first: nothing earlier has its ID yet
    b._check_engine()
    a.info = {"ID": "ENGINE-1"}
    a.engines["a"] = "ENGINE-1"  # then a connected: its daemon is b's
    a._check_engine()  # a, first in the inventory, keeps it
    with pytest.raises(DuplicateEngine) as caught:
        b._check_engine()  # what b's next heartbeat does
    assert str(caught.value) == "b: same engine as node a (ID ENGINE-1): its containers are counted there, not here"
    b.containers["c1"] = ContainerState("c1", "b")
    b._mark_down(caught.value)
    assert b.state is NodeState.DOWN and b.containers == {}
    assert b.error == "same engine as node a (ID ENGINE-1): its containers are counted there, not here"
    assert fleet.snapshot().containers == ()


def test_a_node_that_goes_away_gives_up_its_claim(fleet: Fleet) -> None:
    a, b = fleet.watchers
    a.info = b.info = {"ID": "ENGINE-1"}
    a.engines.update(a="ENGINE-1", b="ENGINE-1")
    with pytest.raises(DuplicateEngine):
        b._check_engine()
    a._mark_down("a: GET /_ping: connection refused")
    b._check_engine()  # with a away, b may show the daemon


def test_lock_events_set_and_clear_the_action_badge(fleet: Fleet) -> None:
    a = fleet.watchers[0]
    cid = "f" * 64
    a.containers[cid] = ContainerState(cid, "a")
    attrs = {"berth.role": "lock", "berth.target": cid[:12], "berth.action": "restart", "name": "berth-lock-x"}
    for action, busy in (("create", "restart"), ("start", "restart"), ("destroy", None)):
        a._apply_event({"Type": "container", "Action": action, "Actor": {"ID": "l" * 64, "Attributes": attrs},
                        "timeNano": 1})
        assert a.containers[cid].busy == busy
