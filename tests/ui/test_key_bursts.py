"""Keys that arrive in one burst (fast typing, a laggy SSH link) go where the operator meant them.

Pilot's `press` waits for the app to go idle after every key, which no terminal does; `burst`
queues every key at once, as a pasted or lagged line arrives, before the app handles the first.
"""

from __future__ import annotations

import fleetdata  # noqa: F401  (puts tests/ui on the path for the doubles)
from test_pilot import NARROW, until
from textual import events
from textual.app import _character_to_key
from textual.widgets import Button, Input
from uifakes import FakeActions, make_app

from console.ui.screens.dialogs import ConfirmScreen, TypedConfirmScreen


def burst(app, keys) -> None:
    """Queue every key at once on the driver, as a terminal delivers a burst."""
    for key in keys:
        char = key if len(key) == 1 else None
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def action_workers(app) -> list:
    return [w for w in app.workers if w.group == "actions"]


async def test_a_burst_of_a_filter_goes_to_the_filter_and_runs_no_action():
    # Given the containers pane with a running container under the cursor
    actions = FakeActions()
    app = make_app(actions=actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2")
        theme = app.theme
        # When "/state:exited" and enter arrive in one burst
        burst(app, [*"/state:exited", "enter"])
        await until(pilot, lambda: not app.fleet.query_one("#filter").display and app.fleet.pane.filter_text,
                    "the filter applied and its line closed")
        # Then the filter got every character, and no key ran an action: no stop, no theme, no alerts
        assert app.fleet.pane.filter_text == "state:exited"
        assert all(c.state == "exited" for c in app.fleet.pane.table.rows)
        assert app.screen is app.fleet
        assert app.theme == theme
        assert action_workers(app) == [] and actions.planned == []


async def test_a_burst_of_a_command_keeps_every_letter():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        theme = app.theme
        burst(app, [*":tenants", "enter"])
        await until(pilot, lambda: app.fleet.current == "tenants", "the tenants pane")
        assert app.theme == theme  # the t of "tenants" is the command's, not the theme key's


async def test_a_burst_of_colon_q_types_q_and_only_enter_quits():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        burst(app, [*":q"])
        box = app.fleet.query_one("#command", Input)
        await until(pilot, lambda: box.value == "q", "q in the command line")
        assert app.is_running and box.has_focus
        await pilot.press("enter")
        await until(pilot, lambda: not app.is_running, "the app to quit on :q enter")
    assert app.return_code == 0


async def test_a_burst_into_the_logs_search_stays_in_the_search():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "l")
        await until(pilot, lambda: app.screen.__class__.__name__ == "LogsScreen", "the logs screen")
        burst(app, [*"/ftr"])  # f toggles follow, t the theme, r restarts: all letters of the search here
        box = app.screen.query_one("#log-search", Input)
        await until(pilot, lambda: box.value == "ftr", "the search text")
        assert app.screen.follow and app.theme == "dark" and action_workers(app) == []


async def test_a_confirmation_has_cancel_focused_so_enter_cancels():
    actions = FakeActions()
    app = make_app(actions=actions)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.drawn_at is not None,
                    "the stop confirmation drawn")
        focused = app.screen.focused
        assert isinstance(focused, Button) and focused.id == "cancel"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert actions.planned[0][0] == "stop" and actions.executed == []
        assert "cancelled" in app.last_activity


async def test_keys_that_arrived_before_the_dialog_was_drawn_never_confirm_it():
    app = make_app()
    answers: list[bool] = []
    async with app.run_test(size=NARROW) as pilot:
        # Given a burst typed while the dialog was being opened: y, and enter on its focused button
        app.push_screen(ConfirmScreen("Stop acme-api-1 on node-2?", ["effect: stops"], danger=True,
                                      confirm="Stop"), answers.append)
        burst(app, ["y", "tab", "enter"])
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.drawn_at is not None,
                    "the dialog drawn")
        await pilot.pause()
        # Then none of them answered it
        assert answers == [] and isinstance(app.screen, ConfirmScreen)
        # And a y pressed once it is on screen does
        await pilot.press("y")
        await until(pilot, lambda: answers == [True], "the dialog answered yes")


async def test_an_enter_queued_before_a_typed_confirmation_is_drawn_does_not_submit():
    app = make_app()
    answers: list[bool] = []
    async with app.run_test(size=NARROW) as pilot:
        app.push_screen(TypedConfirmScreen("Drain node node-1?", ["30 containers"], expected="node-1"),
                        answers.append)
        burst(app, [*"node-1", "enter"])
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen) and app.screen.drawn_at is not None,
                    "the dialog drawn")
        await pilot.pause()
        assert answers == []
        await pilot.press("enter")  # the name typed, enter pressed once the dialog is on screen
        await until(pilot, lambda: answers == [True], "the drain confirmed")
