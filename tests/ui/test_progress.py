"""Progress that moves: a long step's line ticks every second, so a 10 s stop never looks frozen."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from test_pilot import NARROW, dialog_shown, until
from uifakes import FakeActions, FakePlan, FakeProgress, FakeResult, make_app

from console.ui.screens.dialogs import ConfirmScreen


class SlowActions(FakeActions):
    """One progress report, then a step that takes as long as the test says. Actions run on the
    EngineIO thread's loop (console/ui/io.py), hence a thread-safe event, polled."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def wait(self) -> None:
        while not self.release.is_set():
            await asyncio.sleep(0.01)

    async def execute(self, plan: FakePlan, progress: Any = None) -> FakeResult:
        progress(FakeProgress("stop", "waiting for the container to exit", 0, 0.0))
        await self.wait()
        self.executed.append(plan)
        return FakeResult(True, "restarted", "20260101T000000-abcd1234")


async def test_a_long_step_ticks_its_elapsed_time():
    actions = SlowActions()
    app = make_app(actions=actions)
    now = [1000.0]
    app.monotonic = lambda: now[0]
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "r")
        await dialog_shown(pilot, app, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: "waiting for the container to exit 0s" in app.last_activity, "the first line")
        # Ten seconds pass and no new report comes: the line still moves (the 1 Hz tick)
        now[0] += 10
        await until(pilot, lambda: "waiting for the container to exit 10s" in app.last_activity, "a tick")
        now[0] += 3
        await until(pilot, lambda: app.last_activity.endswith(" 13s"), "another tick")
        actions.release.set()
        await until(pilot, lambda: app.last_activity.startswith("✔ restart"), "the result")
        now[0] += 5
        await pilot.pause(1.2)  # one tick later the result line stays: a finished action does not tick
        assert app.last_activity.startswith("✔ restart")


async def test_an_action_ticks_before_its_first_report():
    actions = SlowActions()

    async def silent(plan: FakePlan, progress: Any = None) -> FakeResult:
        await actions.wait()
        return FakeResult(True, "restarted", "x")

    actions.execute = silent  # type: ignore[method-assign]
    app = make_app(actions=actions)
    now = [50.0]
    app.monotonic = lambda: now[0]
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "r")
        await dialog_shown(pilot, app, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.last_activity.endswith("started 0s"), "started")
        now[0] += 4
        await until(pilot, lambda: app.last_activity.endswith("started 4s"), "a tick")
        actions.release.set()
        await until(pilot, lambda: app.last_activity.startswith("✔"), "the result")


async def test_the_tick_does_not_overwrite_another_message():
    """A message shown while an action runs (a quit that waits for it, a refusal) stays until the
    action reports again: the 1 Hz tick only moves a progress line."""
    actions = SlowActions()
    app = make_app(actions=actions)
    now = [0.0]
    app.monotonic = lambda: now[0]
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("2", "r")
        await dialog_shown(pilot, app, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.last_activity.endswith("exit 0s"), "the progress line")
        app.activity("quitting once restart acme-api-1 on node-2 ends")
        now[0] += 3
        await pilot.pause(1.2)  # a tick passes
        assert app.last_activity == "quitting once restart acme-api-1 on node-2 ends"
        actions.release.set()
        await until(pilot, lambda: app.last_activity.startswith("✔"), "the result")
