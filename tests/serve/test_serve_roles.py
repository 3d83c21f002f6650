"""The server's ports per identity: operators are offered unfinished migrations on start, viewers are not
(and Actions refuses them anyway). Pilot, no daemon: the nodes are unreachable on purpose."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from console.actions.journal import MigrationRecord
from console.actions.types import ReadOnlyError
from console.config import resolve_inventory
from console.identity import Identity
from console.serve.server import Server
from console.ui.app import BerthApp
from console.ui.screens.recovery import RecoveryScreen


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n'
                   '[[node]]\nname = "b"\nurl = "unix:///nonexistent/b.sock"\n')
    s = Server(resolve_inventory(str(inv)))
    s.actions.journal.write(MigrationRecord(
        audit_id="20260101T000000-abcd1234", who="carol", started=time.time(), source_node="a", source_id="f" * 64,
        name="web", tenant="acme", target_node="b", phase="switch", source_stopped=True, pid=2**22 + 1))
    return s


async def _settled(app: BerthApp, pilot: object) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not isinstance(app.screen, RecoveryScreen):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)  # type: ignore[attr-defined]
        if not app.workers:
            break


async def test_unfinished_migrations_are_offered_to_operators_only(server: Server) -> None:
    alice = Identity("alice", "operator", "ssh", "SHA256:x", "10.0.0.5")
    bob = Identity("bob", "viewer", "ssh", "SHA256:y", "10.0.0.6")
    operator = BerthApp(feed=None, inventory=server.inventory, actions=server.port(alice))
    async with operator.run_test(size=(120, 30)) as pilot:
        await _settled(operator, pilot)
        assert isinstance(operator.screen, RecoveryScreen)
    viewer = BerthApp(feed=None, inventory=server.inventory, actions=server.port(bob), read_only=True)
    async with viewer.run_test(size=(120, 30)) as pilot:
        await _settled(viewer, pilot)
        assert viewer.screen is viewer.fleet
    # and finishing it as bob is refused where it would run, naming his role
    with pytest.raises(ReadOnlyError, match="bob is a viewer: recover refused"):
        await server.port(bob).plan("recover", "20260101T000000-abcd1234", mode="finish")
    server.stop()


async def test_read_only_makes_operators_viewers_too(server: Server) -> None:
    server.read_only = True
    alice = Identity("alice", "operator", "ssh", "SHA256:x", "10.0.0.5")
    port = server.port(alice)
    assert port.identity.role == "viewer" and port.read_only
    app = BerthApp(feed=None, inventory=server.inventory, actions=port)
    async with app.run_test(size=(120, 30)) as pilot:
        await _settled(app, pilot)
        assert app.screen is app.fleet and app.read_only
    server.stop()
