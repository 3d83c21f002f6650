"""Issue 17.3: quitting with an action in flight asks first, and a running drain can be cancelled.

The console runs against a simulated fleet (console/sim, where migrate and drain work end to end),
wired as `berth` wires it (`connect_app`). A migration is held at a failpoint in pre-copy
(BERTH_FAILPOINT with a release file: console/actions/migrate.py), so it is truly in flight when
the operator presses q; each choice is then followed to what it says on the nodes, in the journal
and in the audit log.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.actions import AuditLog
from console.actions.journal import Journal
from console.config import load_inventory
from console.sim.fleet import SimFleet
from console.ui import app as app_module
from console.ui.screens.dialogs import ConfirmScreen, PickNodeScreen, TypedConfirmScreen
from console.ui.screens.inflight import InFlightScreen

FAILPOINT = "pre-copy:target-created"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimFleet]:
    """Three simulated nodes of three containers; Berth's state and a failpoint release file in tmp."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("BERTH_FAILPOINT", FAILPOINT)
    monkeypatch.setenv("BERTH_FAILPOINT_RELEASE", str(tmp_path / "release"))
    with SimFleet(nodes=3, containers_per_node=3, seed=5, in_process=True) as f:
        yield f


def _app(fleet: SimFleet) -> Any:
    inventory = load_inventory(fleet.dir / "inventory.toml")
    return app_module.connect_app(argparse.Namespace(read_only=False, theme=None, noc=False), inventory)


async def _until(pilot: Any, condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def _audit(app: Any) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in AuditLog(app.actions.actions.audit.path).read()}


def _nodes(fleet: SimFleet) -> dict[str, dict[str, str]]:
    """Every node's containers, name -> state, as the simulated daemons hold them now."""
    return fleet.call(lambda: {n: {c.name: c.state for c in fleet.node(n).daemon.containers.values()}
                               for n in ("sim-01", "sim-02", "sim-03")})


async def _migration_in_flight(app: Any, pilot: Any, fleet: SimFleet) -> tuple[Any, str]:
    """Given a running container of sim-01 migrating to the best node, held in pre-copy."""
    await _until(pilot, lambda: app.snapshot is not None and sum(
        c.node == "sim-01" for c in app.snapshot.containers) == 3, "the fleet")
    target = next(c for c in app.snapshot.containers if c.node == "sim-01" and c.state == "running")
    app.run_action_flow("migrate", "migrate", target)
    await _until(pilot, lambda: isinstance(app.screen, PickNodeScreen), "the target picker")
    await pilot.pause()
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
    await pilot.pause()
    await pilot.click("#confirm")
    journal = Journal(app.actions.actions.journal.dir)
    await _until(pilot, lambda: any(r.phase == "pre-copy" and r.created.get("container")
                                    for r in journal.entries()[0]), "the migration held in pre-copy")
    [record] = journal.entries()[0]
    return target, record.audit_id


async def _quit_dialog(app: Any, pilot: Any) -> None:
    await pilot.press("q")
    await _until(pilot, lambda: isinstance(app.screen, InFlightScreen), "the quit dialog")
    await pilot.pause()


async def test_q_with_a_migration_in_flight_asks_and_back_keeps_it_running(fleet: SimFleet) -> None:
    app = _app(fleet)
    try:
        app.feed.start()
        async with app.run_test(size=(120, 40)) as pilot:
            target, _ = await _migration_in_flight(app, pilot, fleet)
            # When the operator presses q: the dialog names the migration and the ways out, Back focused
            await _quit_dialog(app, pilot)
            text = str(app.screen.query_one("#inflight-summary").render())
            label = f"migrate {app_module.describe(target)}"
            assert f"in flight: {label}" in text
            assert "wait" in text and "cancel safely" in text and "berth recover" in text
            assert app.screen.focused is not None and app.screen.focused.id == "inflight-back"
            # A stray enter chooses Back: the console stays, the migration still runs
            await pilot.press("enter")
            await _until(pilot, lambda: not isinstance(app.screen, InFlightScreen), "the dialog to close")
            assert app.is_running and app.in_flight == [label]
            assert "not quitting" in app.last_activity
            # ctrl+q and ctrl+c are quit paths too: they ask the same
            for key in ("ctrl+q", "ctrl+c"):
                await pilot.press(key)
                await _until(pilot, lambda: isinstance(app.screen, InFlightScreen), f"the dialog on {key}")
                await pilot.pause()
                await pilot.press("escape")
                await _until(pilot, lambda: not isinstance(app.screen, InFlightScreen), "the dialog to close")
            # Then let it be cancelled so the test ends clean
            app._cancel_all("test over")
            await _until(pilot, lambda: not app.in_flight, "the migration to stop")
    finally:
        app.feed.stop()


async def test_q_then_cancel_rolls_the_migration_back_and_quits(fleet: SimFleet) -> None:
    app = _app(fleet)
    try:
        app.feed.start()
        async with app.run_test(size=(120, 40)) as pilot:
            target, audit_id = await _migration_in_flight(app, pilot, fleet)
            await _quit_dialog(app, pilot)
            # When they choose Cancel safely
            await pilot.click("#inflight-cancel")
            # Then Berth quits once the migration has rolled back
            await _until(pilot, lambda: app.return_code is not None, "the console to quit")
        assert app.return_code == 0
        entry = _audit(app)[audit_id]
        assert entry["ok"] is False and entry["status"] == "interrupted"
        assert "cancelled in the console" in entry["details"]["interrupted"] and "rolled back" in entry["error"]
        assert Journal(app.actions.actions.journal.dir).entries() == ([], [])
        # and the container runs where it was, alone, with no lock left
        names = _nodes(fleet)
        assert names["sim-01"].get(target.name) == "running"
        assert all(target.name not in names[n] for n in ("sim-02", "sim-03"))
        assert not any(n.startswith("berth-lock-") for ns in names.values() for n in ns)
    finally:
        app.feed.stop()


async def test_q_then_wait_lets_the_migration_finish_then_quits(fleet: SimFleet, tmp_path: Path) -> None:
    app = _app(fleet)
    try:
        app.feed.start()
        async with app.run_test(size=(120, 40)) as pilot:
            target, audit_id = await _migration_in_flight(app, pilot, fleet)
            await _quit_dialog(app, pilot)
            # When they choose Wait: the console stays up while the migration runs
            await pilot.click("#inflight-wait")
            await _until(pilot, lambda: not isinstance(app.screen, InFlightScreen), "the dialog to close")
            assert app.is_running and app.return_code is None and "quitting once" in app.last_activity
            # When the migration goes on (its pre-copy released) and ends, then Berth quits
            (tmp_path / "release").touch()
            await _until(pilot, lambda: app.return_code is not None, "the console to quit")
        entry = _audit(app)[audit_id]
        assert entry["ok"] is True and entry["status"] is None and "interrupted" not in entry["details"]
        names = _nodes(fleet)
        dest = entry["params"]["to"]
        assert names[dest].get(target.name) == "running" and target.name not in names["sim-01"]
    finally:
        app.feed.stop()


async def test_q_then_leave_keeps_the_journal_for_recover_and_closes_the_audit(fleet: SimFleet) -> None:
    app = _app(fleet)
    try:
        app.feed.start()
        async with app.run_test(size=(120, 40)) as pilot:
            target, audit_id = await _migration_in_flight(app, pilot, fleet)
            await _quit_dialog(app, pilot)
            # When they choose Leave for recover: Berth quits at once
            await pilot.click("#inflight-leave")
            await _until(pilot, lambda: app.return_code is not None, "the console to quit")
        # Then the journal stays, saying no one runs it, and recover offers it
        actions = app.actions.actions
        records, errors = actions.unfinished()
        assert [r.audit_id for r in records] == [audit_id] and not errors
        assert records[0].running is False and "left for recover" in records[0].outcome
        # and the audit record is closed as left for recover, naming berth recover
        entry = _audit(app)[audit_id]
        assert entry["ok"] is False and entry["status"] == "left for recover" and "berth recover" in entry["error"]
        # And recovering it rolls the move back: the container runs where it was
        plan = await actions.plan("recover", audit_id, mode="rollback")
        assert (await actions.execute(plan)).ok
        names = _nodes(fleet)
        assert names["sim-01"].get(target.name) == "running"
        assert all(target.name not in names[n] for n in ("sim-02", "sim-03"))
        await actions.aclose()
    finally:
        app.feed.stop()


async def test_sigterm_to_the_console_cancels_the_migration_safely_then_quits(fleet: SimFleet) -> None:
    app = _app(fleet)
    try:
        app.feed.start()
        async with app.run_test(size=(120, 40)) as pilot:
            target, audit_id = await _migration_in_flight(app, pilot, fleet)
            # When SIGTERM (or SIGHUP) reaches the console: nobody to ask, so cancel safely and quit
            app.quit_on_signal("SIGTERM")
            await _until(pilot, lambda: app.return_code is not None, "the console to quit")
        entry = _audit(app)[audit_id]
        assert entry["status"] == "interrupted" and "SIGTERM" in entry["details"]["interrupted"]
        assert _nodes(fleet)["sim-01"].get(target.name) == "running"
    finally:
        app.feed.stop()


async def test_a_drain_cancelled_midway_keeps_moved_ones_moved_and_the_rest_on_the_node(
        fleet: SimFleet, tmp_path: Path) -> None:
    app = _app(fleet)
    try:
        app.feed.start()
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: app.snapshot is not None and sum(
                c.node == "sim-01" for c in app.snapshot.containers) == 3, "the fleet")
            before = _nodes(fleet)["sim-01"]
            # Given a drain of sim-01 (typed name confirmed)
            app.run_action_flow("drain", "drain", app.snapshot.node("sim-01"))
            await _until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen), "the drain confirmation")
            await pilot.pause()
            await pilot.press(*"sim-01", "enter")
            # When its first migration is let through and the second is in flight
            journal = Journal(app.actions.actions.journal.dir)
            await _until(pilot, lambda: journal.entries()[0], "the first migration")
            (tmp_path / "release").touch()

            def moved() -> list[dict[str, Any]]:
                return [e for e in _audit(app).values() if e["action"] == "migrate" and e["ok"]]

            await _until(pilot, lambda: len(moved()) == 1 and journal.entries()[0], "the second migration")
            # and the operator cancels the drain (X; the same dialog, without quitting)
            await pilot.press("X")
            await _until(pilot, lambda: isinstance(app.screen, InFlightScreen), "the cancel dialog")
            await pilot.pause()
            assert not app.screen.query("#inflight-leave") and not app.screen.query("#inflight-wait")
            await pilot.click("#inflight-cancel")
            await _until(pilot, lambda: not app.in_flight, "the drain to stop")
            assert app.is_running and "✖ drain" in app.last_activity and "1 moved" in app.last_activity
        # Then the one moved stays moved, the other two stay on sim-01 running as they were
        [first] = moved()
        names = _nodes(fleet)
        assert names[first["params"]["to"]].get(first["target"]["name"]) == "running"
        left = {n: s for n, s in names["sim-01"].items() if not n.startswith(("berth-", first["target"]["name"]))}
        assert left == {n: s for n, s in before.items() if n != first["target"]["name"]}
        assert not any(n.startswith("berth-lock-") for ns in names.values() for n in ns)
        assert journal.entries() == ([], [])
        # And the drain's audit record says how many moved, and that it was interrupted
        [drain] = [e for e in _audit(app).values() if e["action"] == "drain"]
        assert drain["ok"] is False and drain["status"] == "interrupted" and drain["details"]["moved"] == 1
        assert len(drain["details"]["left"]) == 2
    finally:
        app.feed.stop()
