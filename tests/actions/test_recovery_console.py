"""The console finds unfinished migrations on start and offers to finish or roll them back (Pilot)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from action_helpers import dk, names
from crashkit import N1, N2, killed_at
from dockerlab import Lab

from console import identity
from console.engine.reads import IOLoop
from console.local import LocalActions
from console.actions import Actions
from console.actions.journal import MigrationRecord
from console.config import resolve_inventory
from console.ui.app import BerthApp
from console.ui.screens.dialogs import ConfirmScreen
from console.ui.screens.help import help_lines
from console.ui.screens.recovery import RecoveryScreen


def _offline_inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n'
                   '[[node]]\nname = "b"\nurl = "unix:///nonexistent/b.sock"\n')
    return inv


def _journaled(actions: Actions) -> MigrationRecord:
    rec = MigrationRecord(audit_id="20260101T000000-abcd1234", who="tester@lab", started=time.time(),
                          source_node="a", source_id="f" * 64, name="web", tenant="acme", target_node="b",
                          phase="switch", source_stopped=True, pid=2**22 + 1)  # its Berth is gone
    actions.journal.write(rec)
    return rec


async def _until(pilot: object, condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def _port(actions: Actions) -> LocalActions:
    """The console's view of these actions: the local port, as the operator at this terminal."""
    return LocalActions(actions, identity.local(), IOLoop())


async def test_console_offers_recovery_on_start_and_again_on_R(tmp_path: Path) -> None:
    # Given an unfinished migration in the journal
    actions = Actions(resolve_inventory(str(_offline_inventory(tmp_path))))
    rec = _journaled(actions)
    app = BerthApp(feed=None, inventory=actions.inventory, actions=_port(actions))
    async with app.run_test(size=(120, 30)) as pilot:
        # When the console starts, then it shows the migration with its ways out
        await _until(pilot, lambda: isinstance(app.screen, RecoveryScreen), "the recovery dialog")
        screen = app.screen
        assert isinstance(screen, RecoveryScreen) and [r.audit_id for r in screen.records] == [rec.audit_id]
        assert "a/web -> b" in str(screen.query_one("#unfinished").get_option_at_index(0).prompt)
        # When the operator puts it off, then the fleet is back; R brings the dialog again
        await pilot.press("escape")
        assert app.screen is app.fleet
        await pilot.press("R")
        await _until(pilot, lambda: isinstance(app.screen, RecoveryScreen), "R to reopen it")
        # When they choose roll back with both nodes unreachable: refused with the reason, nothing run
        await pilot.press("r")
        await _until(pilot, lambda: "refused" in app.last_activity, "the refusal")
        assert "nonexistent/a.sock" in app.last_activity and app.screen is app.fleet
        assert actions.journal.load(rec.audit_id) is not None
    await actions.aclose()


async def test_console_without_unfinished_migrations_starts_on_the_fleet_and_help_lists_R(tmp_path: Path) -> None:
    actions = Actions(resolve_inventory(str(_offline_inventory(tmp_path))))
    app = BerthApp(feed=None, inventory=actions.inventory, actions=_port(actions))
    async with app.run_test(size=(120, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is app.fleet
    assert any("R" in line and "Unfinished migrations" in line for line in help_lines())
    await actions.aclose()


async def test_read_only_console_shows_them_but_refuses_to_act(tmp_path: Path) -> None:
    actions = Actions(resolve_inventory(str(_offline_inventory(tmp_path))), read_only=True)
    _journaled(actions)
    app = BerthApp(feed=None, inventory=actions.inventory, actions=_port(actions), read_only=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, RecoveryScreen), "the recovery dialog")
        await pilot.press("f")
        assert "refused: read-only mode" in app.last_activity
    await actions.aclose()


@pytest.mark.lab
async def test_console_rolls_back_a_migration_a_killed_berth_left(lab: Lab, tmp_path: Path) -> None:
    # Given a `berth migrate` SIGKILLed after it stopped web on n1 (state dir = this test's XDG_STATE_HOME)
    inv, state, journal, _ = killed_at(lab, tmp_path, "switch:source-stopped")
    actions = Actions(resolve_inventory(str(inv)))
    assert actions.journal.dir == state / "berth" / "migrations"
    app = BerthApp(feed=None, inventory=actions.inventory, actions=_port(actions))
    async with app.run_test(size=(120, 30)) as pilot:
        # When the console starts and the operator picks roll back and confirms the plan
        await _until(pilot, lambda: isinstance(app.screen, RecoveryScreen), "the recovery dialog")
        await pilot.press("r")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.drawn_at is not None,
                     "the confirmation drawn (keys before it are ignored)")
        summary = str(app.screen.query_one("#confirm-summary").render())
        assert "source exited, named web, restart policy no" in summary and "stale lock" in summary
        await pilot.press("y")
        await _until(pilot, lambda: "recover" in app.last_activity and "✔" in app.last_activity, "the result")
    await actions.aclose()
    # Then web runs on n1 again, n2 is clean, and the journal is gone
    assert [c.name for c in dk(lab, N1).containers.list()] == ["web"] and names(lab, N1) == ["web"]
    assert names(lab, N2) == [] and actions.unfinished() == ([], [])
    assert journal["audit_id"] in app.last_activity or "rolled back migration" in app.last_activity
