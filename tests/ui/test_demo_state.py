"""Issue 17.4: the demo keeps its state apart from the real fleet's.

`berth --demo` wrote its actions into the operator's real audit log, unmarked, and a demo journal
was offered for recovery against the real fleet. Here the demo runs as `run_app` builds it (the
in-process simulated fleet, the console wired by `connect_app`), with XDG_STATE_HOME holding a real
audit log and an unfinished real migration; a restart is confirmed in the console.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from console.actions import Actions, AuditLog
from console.actions.journal import Journal, MigrationRecord
from console.actions.types import ActionError, Target
from console.config import resolve_inventory
from console.ui import app as app_module
from console.ui.screens.dialogs import ConfirmScreen
from console.ui.screens.recovery import RecoveryScreen

REAL = Target(node="db-1", id="a" * 64, name="payroll", tenant="hr", state="running")


def _record(audit_id: str, *, demo: bool = False) -> MigrationRecord:
    return MigrationRecord(audit_id=audit_id, who="oncall@prod", started=time.time(), source_node="db-1",
                           source_id="a" * 64, name="payroll", tenant="hr", target_node="db-2", phase="switch",
                           pid=2**22 + 1, demo=demo)  # its Berth is gone


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def _until(pilot: object, condition: object, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def test_a_demo_restart_is_audited_in_the_demos_own_place(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the operator's real state: an audit log and an unfinished real migration
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    real_log = AuditLog(user="oncall@prod")
    real_log.end(real_log.begin("stop", REAL, {}), True, [], None, 0.1, {})
    Journal().write(_record("20260101T000000-0000beef"))
    real_before = _tree(tmp_path / "state")
    # When the demo runs and the operator restarts a running container, confirming it
    demo = app_module._start_demo()
    assert not isinstance(demo, str), demo
    app = app_module.connect_app(argparse.Namespace(read_only=False, theme=None, noc=False), demo.inventory,
                                 demo.state)
    try:
        app.feed.start()
        async with app.run_test(size=(160, 48)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            # the real unfinished migration is not offered in the demo
            assert not isinstance(app.screen, RecoveryScreen)
            assert app.actions.unfinished() == ([], [])
            await _until(pilot, lambda: app.snapshot is not None and any(
                c.state == "running" and c.node == "sim-01" for c in app.snapshot.containers), "the demo fleet")
            target = next(c for c in app.snapshot.containers if c.state == "running" and c.node == "sim-01")
            app.run_action_flow("restart", "restart", target)
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.pause()
            await pilot.click("#confirm")
            await _until(pilot, lambda: "restart" in app.last_activity and (
                "✔" in app.last_activity or "✖" in app.last_activity), "the restart's end")
            assert "✔" in app.last_activity, app.last_activity
            # Then the demo's record lives in the demo's private state directory, marked as the demo's
            assert demo.state.stat().st_mode & 0o777 == 0o700
            [entry] = AuditLog(demo.state / "audit.jsonl").read()
            assert entry["action"] == "restart" and entry["ok"] is True and entry["demo"] is True
            assert entry["target"]["name"] == target.name
            raw = (demo.state / "audit.jsonl").read_text().splitlines()
            assert len(raw) == 2 and all('"demo":true' in line for line in raw)
            # and the console's audit view shows that log, not the real one
            assert [e["id"] for e in app.actions.audit_entries(100)] == [entry["id"]]
    finally:
        app.feed.stop()
        demo.close()
    # And the real audit log and journals are byte for byte as they were; the demo's are gone
    assert _tree(tmp_path / "state") == real_before
    assert not demo.state.exists()


async def test_journals_of_the_demo_and_of_the_real_fleet_are_never_offered_to_the_other(tmp_path: Path) -> None:
    # Given a demo record that somehow sits in the real journal directory (and a real one in the demo's)
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "db-1"\nurl = "unix:///nonexistent/a.sock"\n'
                   '[[node]]\nname = "db-2"\nurl = "unix:///nonexistent/b.sock"\n')
    inventory = resolve_inventory(str(inv))
    real = Actions(inventory, audit=AuditLog(tmp_path / "real" / "audit.jsonl"))
    demo = Actions(inventory, audit=AuditLog(tmp_path / "demo" / "audit.jsonl", demo=True))
    real.journal.write(_record("20260101T000000-000000d0", demo=True))
    demo.journal.write(_record("20260101T000000-000000e0"))
    # Then neither lists the other's, and recovering it by id is refused with the reason
    assert real.unfinished() == ([], []) and demo.unfinished() == ([], [])
    with pytest.raises(ActionError, match="journaled by the demo: not recovered against a real fleet"):
        await real.plan("recover", "20260101T000000-000000d0", mode="rollback")
    with pytest.raises(ActionError, match="journaled by a real fleet: not recovered in the demo"):
        await demo.plan("recover", "20260101T000000-000000e0", mode="rollback")
    assert os.path.exists(tmp_path / "real" / "migrations" / "20260101T000000-000000d0.json")
    await real.aclose()
    await demo.aclose()
