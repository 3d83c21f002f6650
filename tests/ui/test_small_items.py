"""Issue 17 item 10: small defects, each driven through the console as an operator meets it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import fleetdata
from screen_text import screen_text
from test_pilot import NARROW, dialog_shown, until
from uifakes import FakeActions, FakeEngine, FakePlan, FakeResult, make_app

from console.ui.screens.detail import DetailScreen
from console.ui.screens.dialogs import ConfirmScreen, PickNodeScreen
from console.ui.screens.logs import LogsScreen
from console.ui.widgets.header import summary_markup


async def test_after_a_sort_the_cursor_is_on_the_first_row():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "down", "down", "down", "down")
        assert app.fleet.pane.table.cursor == 4
        await pilot.press("M")
        assert app.fleet.pane.table.cursor == 0
        assert app.fleet.selected().name == "acme-search"  # the top of the new order
        await pilot.press("down", "N")
        assert app.fleet.pane.table.cursor == 0


async def test_a_select_first_hint_goes_when_the_operator_switches_pane():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("1", "l")  # logs on the hosts pane: no container selected
        assert "select a container first" in app.last_activity
        await pilot.press("2")
        assert app.last_activity == ""
        assert "select a container first" not in screen_text(app)


async def test_the_ranking_note_is_gone_while_the_picker_is_open(fake_actions: FakeActions):
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "m")
        await dialog_shown(pilot, app, PickNodeScreen)
        assert "ranking" not in app.last_activity


class MigrateActions(FakeActions):
    async def execute(self, plan: FakePlan, progress: Any = None) -> FakeResult:
        self.executed.append(plan)
        return FakeResult(True, "migrated acme-api-1 to node-3 (downtime 0.2s)", "20260101T000000-abcd1234", 0.2)


async def test_one_migration_reports_one_downtime():
    actions = MigrateActions()
    app = make_app(actions=actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "m")
        await dialog_shown(pilot, app, PickNodeScreen)
        await pilot.press("enter")
        await dialog_shown(pilot, app, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.last_activity.startswith("✔"), "the result")
        assert app.last_activity.count("downtime") == 1, app.last_activity


def test_warming_up_is_shown_only_before_the_first_complete_round():
    snap = replace(fleetdata.fleet(), complete=False)
    text = summary_markup(snap, fleetdata.NOW, mode="", stale_after=15.0, width=120)
    assert "warming up" in text
    text = summary_markup(snap, fleetdata.NOW, mode="", stale_after=15.0, width=120, warmed=True)
    assert "warming up" not in text


async def test_a_container_started_later_does_not_bring_warming_up_back():
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        app.apply_snapshot(fleetdata.fleet())
        await pilot.pause()
        app.apply_snapshot(replace(fleetdata.fleet(), complete=False, seq=2))
        await pilot.pause()
        assert "warming up" not in screen_text(app)


class SlowLogsEngine(FakeEngine):
    """A container whose logs take their time (docker reads a stopped container's log file first)."""

    async def log_chunks(self, cid: str, tail: int = 200, follow: bool = True):
        await asyncio.sleep(30)
        yield b""


async def test_logs_say_loading_until_the_first_lines():
    app = make_app(engine=SlowLogsEngine)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.state == "streaming",
                    "the stream open")
        await pilot.pause()
        text = screen_text(app)
        assert "loading" in text and "0 lines" not in text


async def test_esc_in_logs_clears_a_kept_search_before_leaving():
    app = make_app(engine=FakeEngine)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and len(app.screen.buffer) >= 5, "the lines")
        await pilot.press("slash", *"GET", "enter")
        assert app.screen.needle == "GET"
        await pilot.press("escape")
        assert isinstance(app.screen, LogsScreen) and app.screen.needle == ""
        await pilot.press("escape")
        assert not isinstance(app.screen, LogsScreen)


async def test_limit_columns_say_which_resource():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        text = screen_text(app)
        assert "CPU%L" in text and "MEM/LIM" in text
        assert "%LIM" not in text.replace("CPU%L", "") and " LIMIT" not in text


async def test_no_sparkline_is_drawn_under_no_history_yet():
    app = make_app(engine=FakeEngine)
    snap = fleetdata.fleet()
    app.snapshot = replace(snap, history=type(snap.history)(points=10))  # nothing recorded yet
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        await pilot.pause()
        assert "no history yet" in screen_text(app)
        assert not app.screen.query_one("#cpu-graph").display


class NodePlanActions(FakeActions):
    """Plans as console.actions words them for a node: the summary names the node itself."""

    async def plan(self, action: str, target: Any, **params: Any) -> FakePlan:
        self.planned.append((action, target, params))
        return FakePlan(action, target, params, (f"node: {target.node}",
                                                 "effect: no migration or drain will place containers here"))


async def test_the_cordon_confirmation_names_the_node_once():
    app = make_app(actions=NodePlanActions())
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("1", "c")
        await dialog_shown(pilot, app, ConfirmScreen)
        summary = str(app.screen.query_one("#confirm-summary").render())
        assert summary.count("node-1") == 1, summary


def test_the_audit_pane_shows_where_a_migration_went_and_a_drain_as_a_node_action():
    from console.ui.screens.audit import COLUMNS, audit_cells

    migrate = audit_cells({"at": "t", "who": "ops", "action": "migrate", "ok": True, "params": {"to": "n2"},
                           "target": {"node": "n1", "id": "c1", "name": "web", "tenant": "acme"}})
    drain = audit_cells({"at": "t", "who": "ops", "action": "drain", "ok": True, "params": {"concurrency": 2},
                         "target": {"node": "n1", "id": "", "name": "", "tenant": ""}})
    col = {name: i for i, name in enumerate(COLUMNS)}
    assert migrate[col["target"]].plain == "n1/web → n2" and migrate[col["tenant"]].plain == "acme"
    assert drain[col["target"]].plain == "n1" and drain[col["tenant"]].plain == "(node)"


def test_berth_audit_prints_where_a_migration_went():
    import io

    from console.actions.cli import print_audit

    out = io.StringIO()
    print_audit([{"at": "t", "who": "ops", "action": "migrate", "ok": True, "params": {"to": "n2"},
                  "target": {"node": "n1", "id": "c1", "name": "web"}, "duration": 1.0}], False, out)
    assert "migrate n1/web -> n2" in out.getvalue()


async def test_the_target_picker_greys_out_nodes_that_would_be_refused(fake_actions: FakeActions):
    from textual.widgets import OptionList

    fake_actions.ranked = [("node-1", "free by limits after the move: 40G memory, 9.0 CPU; cpu 12%"),
                           ("node-3", "unfit: node node-3 is cordoned by ops — free by limits after the move: …"),
                           ("node-4", "unreachable: connect unix:///run/docker-4.sock: connection refused")]
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "m")
        await dialog_shown(pilot, app, PickNodeScreen)
        options = app.screen.query_one(OptionList)
        assert [options.get_option_at_index(i).disabled for i in range(3)] == [False, True, True]
        text = screen_text(app)
        assert "node-3  unfit: node node-3 is cordoned" in text and "node-4  unreachable: connect" in text
        await pilot.press("end", "down", "enter")  # the cursor skips what cannot be picked
        await dialog_shown(pilot, app, ConfirmScreen)
        assert fake_actions.planned[-1][2] == {"to": "node-1"}


async def test_f_finalizes_a_migration_from_the_console(fake_actions: FakeActions):
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "F")
        await dialog_shown(pilot, app, ConfirmScreen)
        assert app.screen.title_text.startswith("Finalize acme-api-1")
        assert fake_actions.planned[-1][0] == "migrate" and fake_actions.planned[-1][2] == {"finalize": True}
        await pilot.press("y")
        await until(pilot, lambda: app.last_activity.startswith("✔ finalize"), "the result")
        assert [p.params for p in fake_actions.executed] == [{"finalize": True}]
