"""Pilot tests: the console driven by keys on deterministic fleet data, read like a runbook."""

from __future__ import annotations

import time
from dataclasses import replace

import fleetdata
from uifakes import FakeActions, FakeEngine, make_app
from screen_text import screen_text

from console.fleet.model import ContainerSnapshot, NodeSnapshot, NodeState
from console.ui.app import SnapshotArrived
from console.ui.registry import COMMANDS
from console.ui.screens.alerts import AlertsScreen
from console.ui.screens.detail import DetailScreen
from console.ui.screens.dialogs import ConfirmScreen, PickNodeScreen, TypedConfirmScreen
from console.ui.screens.help import HelpScreen
from console.ui.screens.logs import LogsScreen

NARROW = (80, 24)
WIDE = (160, 48)


def names(app) -> list[str]:
    return [r.name for r in app.fleet.pane.table.rows]


async def until(pilot, condition, what: str, timeout: float = 60.0) -> None:
    """Poll, letting the app run, until condition() holds (the house style of
    tests/actions/test_recovery_console.py); generous: CI is a loaded 2-core box."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def dialog_shown(pilot, app, kind) -> None:
    """The action dialog `kind` on top and drawn. Action flows plan (or rank targets) through the
    EngineIO thread (console/ui/io.py) before they push it, so it comes a hop after the key press."""
    await until(pilot, lambda: isinstance(app.screen, kind) and app.screen.title_text in screen_text(app)
                and getattr(app.screen, "drawn_at", 0) is not None,
                f"the {kind.__name__}")


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press({" ": "space", ":": "colon", "/": "slash", "-": "minus", ",": "comma"}.get(ch, ch))


async def test_pane_switching_with_1_2_3_shows_one_pane_at_80x24():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        assert app.fleet.current == "hosts"
        for key, kind in (("2", "containers"), ("3", "tenants"), ("1", "hosts")):
            await pilot.press(key)
            assert app.fleet.current == kind
            visible = [k for k, p in app.fleet.panes.items() if p.display and p.parent.display is not False]
            assert app.fleet.panes[kind].display and app.fleet.panes[kind].table.has_focus
            assert not app.fleet.split
            assert kind in visible


async def test_wide_terminal_shows_panes_side_by_side():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert app.fleet.split
        text = screen_text(app)
        assert "1 Hosts" in text and "2 Containers" in text and "3 Tenants" in text
        await pilot.press("3")
        assert app.fleet.panes["tenants"].table.has_focus


async def test_filter_with_qualifiers_narrows_containers():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "slash")
        await type_text(pilot, "node:node-2 tenant:acme")
        await pilot.press("enter")
        rows = app.fleet.pane.table.rows
        assert rows and all(c.node == "node-2" and c.tenant == "acme" for c in rows)
        assert len(rows) == 6
        assert "/node:node-2 tenant:acme" in screen_text(app)

        await pilot.press("slash")
        await pilot.press(*["backspace"] * 30)
        await type_text(pilot, "state:exited -tenant:acme")
        await pilot.press("enter")
        assert sorted(names(app)) == ["globex-report", "initech-batch", "ops-backup"]

        await pilot.press("escape")  # clears the filter
        assert len(app.fleet.pane.table.rows) == len(fleetdata.SPECS)


async def test_filter_free_text_and_no_match_message():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "slash")
        await type_text(pilot, "zzz-nothing")
        await pilot.press("enter")
        assert app.fleet.pane.table.rows == []
        assert "no containers match" in screen_text(app)


async def test_sort_keys_and_repeat_reverses():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        assert names(app)[0] == "acme-api-1"  # default: CPU, busiest first
        await pilot.press("M")
        assert names(app)[0] == "acme-search"  # 9.6 GiB
        await pilot.press("M")
        mem = [c.mem_used for c in app.fleet.pane.table.rows if c.mem_used is not None]
        assert mem == sorted(mem)
        await pilot.press("N")
        assert names(app) == sorted(names(app), key=str.lower)
        await pilot.press("N")
        assert names(app) == sorted(names(app), key=str.lower, reverse=True)
        await pilot.press("C")
        assert names(app)[0] == "acme-api-1"
        await pilot.press("shift+c")  # kitty-style key reports work too
        cpu = [c.cpu_percent for c in app.fleet.pane.table.rows if c.cpu_percent is not None]
        assert cpu == sorted(cpu)
        assert "sort cpu ↑" in screen_text(app)


async def test_enter_on_host_drills_into_its_containers_and_esc_returns():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("down", "down", "down")  # node-4 (sorted by name)
        assert app.fleet.selected().name == "node-4"
        await pilot.press("enter")
        assert app.fleet.current == "containers"
        assert {c.node for c in app.fleet.pane.table.rows} == {"node-4"}
        assert "Hosts › node-4 › Containers" in screen_text(app)
        await pilot.press("escape")
        assert app.fleet.current == "hosts"
        assert app.fleet.selected().name == "node-4"
        assert app.fleet.panes["containers"].scope is None


async def test_enter_on_tenant_drills_and_enter_on_container_opens_detail():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("3")
        assert app.fleet.selected().name == "acme"
        await pilot.press("enter")
        assert {c.tenant for c in app.fleet.pane.table.rows} == {"acme"}
        assert "Tenants › acme › Containers" in screen_text(app)
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.container.name == "acme-api-1"
        text = screen_text(app)
        assert "Tenants › acme › Containers › acme-api-1" in text
        assert "94% of its 2-core limit" in text
        await pilot.press("escape")
        assert app.screen is app.fleet
        await pilot.press("escape")
        assert app.fleet.current == "tenants"


async def test_command_line_switches_panes_and_scopes():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("colon")
        await type_text(pilot, "containers")
        await pilot.press("enter")
        assert app.fleet.current == "containers"
        await pilot.press("colon")
        await type_text(pilot, "node node-3")
        await pilot.press("enter")
        assert {c.node for c in app.fleet.pane.table.rows} == {"node-3"}
        await pilot.press("colon")
        await type_text(pilot, "tenant glob")  # a unique prefix is enough
        await pilot.press("enter")
        assert {c.tenant for c in app.fleet.pane.table.rows} == {"globex"}
        await pilot.press("colon")
        await type_text(pilot, "tenants")
        await pilot.press("enter")
        assert app.fleet.current == "tenants"
        await pilot.press("colon")
        await type_text(pilot, "hosts")
        await pilot.press("enter")
        assert app.fleet.current == "hosts"
        await pilot.press("colon")
        await type_text(pilot, "bogus")
        await pilot.press("enter")
        assert "unknown command" in app.last_activity


async def test_help_lists_every_binding():
    app = make_app()
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for c in COMMANDS:
            assert c.help[:30] in text, c.id
        for key in ("esc", "/", ":", "?", "C", "M", "N", "D", "^p", "enter"):
            assert f" {key} " in text
        await pilot.press("escape")
        assert app.screen is app.fleet


async def test_theme_switch_at_runtime_and_by_command():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        assert app.theme == "dark"
        await pilot.press("t")
        assert app.theme == "light"
        await pilot.press("t")
        assert app.theme == "noc"
        await pilot.press("colon")
        await type_text(pilot, "theme dark")
        await pilot.press("enter")
        assert app.theme == "dark"


async def test_read_only_neither_shows_nor_binds_mutating_keys(fake_actions: FakeActions):
    app = make_app(read_only=True, actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        footer = screen_text(app).splitlines()[-1]
        assert "Restart" not in footer and "Help" in footer, footer
        await pilot.press("r", "s", "p", "i", "m", "c", "D", "R")
        await app.workers.wait_for_complete()
        assert fake_actions.planned == [] and fake_actions.executed == []
        assert app.screen is app.fleet  # no dialog opened
        assert "READ-ONLY" in screen_text(app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        mutating = {f"{c.label} (action)" for c in COMMANDS if c.mutating}
        assert not mutating & set(titles)  # the palette offers none either
        # the action path itself still refuses, should anything reach it
        app.action_act("restart")
        assert "refused" in app.last_activity and "read-only" in app.last_activity


async def test_actions_unavailable_is_reported_not_raised():
    app = make_app(actions_unavailable="actions unavailable (test)")
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "r")
        assert "actions unavailable" in app.last_activity


async def test_restart_confirms_with_plan_summary_and_keeps_the_key_press_target(fake_actions: FakeActions):
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        chosen = app.fleet.selected()
        await pilot.press("r")
        await dialog_shown(pilot, app, ConfirmScreen)
        text = screen_text(app)
        assert "acme-api-1" in text and "node-2" in text and "acme" in text and "restart" in text
        # The table changes under the operator's finger: another container becomes the busiest.
        snap = app.snapshot
        hot = replace(next(c for c in snap.containers if c.name == "ops-loki"), cpu_percent=399.0)
        app.post_message(SnapshotArrived(replace(snap, seq=snap.seq + 1, containers=tuple(
            hot if c.name == "ops-loki" else c for c in snap.containers))))
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert app.fleet.selected().name == "acme-api-1"  # the cursor followed its row, not its position
        assert [p.action for p in fake_actions.executed] == ["restart"]
        target = fake_actions.executed[0].target
        assert getattr(target, "id", None) == chosen.id
        assert "✔ restart acme-api-1 on node-2" in app.last_activity


async def test_cancel_in_confirmation_executes_nothing(fake_actions: FakeActions):
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "s")
        await dialog_shown(pilot, app, ConfirmScreen)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        assert fake_actions.planned[0][0] == "stop"  # running -> stop
        assert fake_actions.executed == []
        assert "cancelled" in app.last_activity


async def test_drain_needs_the_node_name_typed(fake_actions: FakeActions):
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("D")
        await dialog_shown(pilot, app, TypedConfirmScreen)
        await type_text(pilot, "node-2")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TypedConfirmScreen)  # wrong name: still asking
        await pilot.press(*["backspace"] * 6)
        await type_text(pilot, "node-1")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert [p.action for p in fake_actions.executed] == ["drain"]


async def test_migrate_offers_ranked_targets(fake_actions: FakeActions):
    app = make_app(actions=fake_actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "m")
        await dialog_shown(pilot, app, PickNodeScreen)
        assert "fits: cpu 12%" in screen_text(app)
        await pilot.press("down", "enter")
        await dialog_shown(pilot, app, ConfirmScreen)  # after planning the migration, another hop
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert fake_actions.planned[-1][0] == "migrate" and fake_actions.planned[-1][2] == {"to": "node-3"}


async def test_alert_selection_jumps_to_its_object():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        await pilot.press("a")
        assert isinstance(app.screen, AlertsScreen)
        await pilot.press("enter")  # the first alert: node-4 down
        assert app.fleet.current == "hosts" and app.fleet.selected().name == "node-4"
        await pilot.press("a", "down", "enter")  # OOM-killed container
        assert app.fleet.current == "containers" and app.fleet.selected().name == "globex-report"


async def test_snapshots_arrive_as_messages_and_stale_data_is_marked():
    now = [fleetdata.NOW]
    app = make_app(clock=lambda: now[0])
    async with app.run_test(size=NARROW) as pilot:
        snap = fleetdata.fleet()
        app.post_message(SnapshotArrived(fleetdata.with_node(snap, "node-1", state=NodeState.DOWN, error="gone")))
        await pilot.pause()
        assert "node-1" in app.alerts[0].text or any("node-1 down" in a.text for a in app.alerts)
        now[0] += 60
        app._tick()
        await pilot.pause()
        text = screen_text(app)
        assert "DATA 60s OLD" in text
        assert "stale" in text


async def test_detail_shows_inspect_with_secrets_masked_and_logs_stream():
    app = make_app(engine=FakeEngine)
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.press("2", "enter")
        # the inspect comes through the EngineIO thread: wait for what it fills in, not one pause
        await until(pilot, lambda: "acme-net" in screen_text(app), "the container's inspect in detail")
        text = screen_text(app)
        assert "api --port=8080" in text and "18080 → 8080/tcp" in text and "acme-net" in text
        assert "DB_PASSWORD=***" in text and "hunter2" not in text
        assert "postgres://api:***@db" in text and "s3cret" not in text
        assert "LOG_LEVEL=info" in text
        await pilot.press("l")
        assert isinstance(app.screen, LogsScreen)
        await until(pilot, lambda: "warn: slow query" in screen_text(app), "the log lines")
        text = screen_text(app)
        assert "listening on :8080" in text and "warn: slow query" in text
        await pilot.press("slash")
        await type_text(pilot, "GET")
        await pilot.press("enter")
        await until(pilot, lambda: "booting api" not in screen_text(app), "the log filter applied")
        text = screen_text(app)
        assert "GET /orders 500" in text and "booting api" not in text
        await pilot.press("escape")  # clears the kept search first
        assert isinstance(app.screen, LogsScreen) and "booting api" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, DetailScreen)


async def test_noc_mode_is_read_only_with_big_summary_and_rotates():
    app = make_app(noc=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.read_only and app.theme == "noc"
        assert app.fleet.query_one("#noc")
        assert not app.fleet.split  # one big pane at a time on a wall
        first = app.fleet.current
        app.rotate()
        assert app.fleet.current != first
        await pilot.press("r")
        assert "Restart" not in screen_text(app)
        app.action_act("restart")
        assert "NOC mode" in app.last_activity


async def test_palette_lists_every_registry_action():
    app = make_app()
    async with app.run_test(size=NARROW):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for c in COMMANDS:
            if c.id != "palette":
                assert any(t.startswith(c.label) for t in titles), c.id
        assert "Theme: noc" in titles and "Node: node-4" in titles


def test_rows_are_model_objects():
    snap = fleetdata.fleet()
    assert all(isinstance(c, ContainerSnapshot) for c in snap.containers)
    assert all(isinstance(n, NodeSnapshot) for n in snap.nodes)
