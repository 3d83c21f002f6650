"""Actions in flight in the console, and every way of quitting while one runs.

An action runs as a Flight of the actions port (console.ports; in this process, on the I/O
loop of console.local with an interrupt of its own, console/actions/interrupt.py). Quitting with
one in flight (q, ctrl+q, :q, and ctrl+c, which otherwise only says how to quit) asks first
(screens/inflight.py): wait for it, cancel it at its next safe point, or leave it for
`berth recover`; Berth quits once nothing is in flight. X cancels without quitting. SIGTERM
and SIGHUP cannot ask anyone: they cancel at the next safe point, then quit.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from console.actions.types import Plan, Progress, Result
from console.ports import Flight
from console.ui.screens.inflight import InFlightScreen

_ids = itertools.count(1)


@dataclass
class Tracked:
    label: str
    flight: Flight


class InFlightMixin:
    """Mixed into BerthApp (which provides exit, push_screen, screen, activity, actions)."""

    _flights: dict[int, Tracked]
    _quit_code: int | None = None  # set: quit once nothing is in flight

    def _init_flights(self) -> None:
        self._flights = {}
        self._quit_code = None

    @property
    def in_flight(self) -> list[str]:
        return [f.label for f in self._flights.values()]

    async def run_tracked(self, label: str, plan: Plan, progress: Callable[[Progress], object]) -> Result | None:
        """Execute ``plan`` as a flight; None when it was left for recover (stopped at once)."""
        app: Any = self
        flight: Flight = app.actions.start(plan, progress)
        key = next(_ids)
        self._flights[key] = Tracked(label, flight)
        try:
            return await flight.result()
        except asyncio.CancelledError:
            if not flight.abandoned:
                raise
            return None
        finally:
            del self._flights[key]
            if self._quit_code is not None and not self._flights:
                app.exit(self._quit_code)

    def _reason(self) -> str:
        app: Any = self
        who = app.actions.identity.user if app.actions is not None else None
        return f"cancelled in the console{f' by {who}' if who else ''}"

    def _cancel_all(self, reason: str) -> None:
        for f in self._flights.values():
            f.flight.cancel(reason)

    def request_quit(self, code: int = 0) -> None:
        """Every quit path: at once when nothing is in flight, else ask what to do with it."""
        app: Any = self
        if not self._flights:
            app.exit(code)
            return
        if isinstance(app.screen, InFlightScreen):
            return
        app.push_screen(InFlightScreen(self.in_flight, quitting=True), partial(self._quit_chosen, code))

    def action_help_quit(self) -> None:
        """ctrl+c: Textual only says how to quit; with an action in flight, ask what to do with it."""
        if self._flights:
            self.request_quit(0)
            return
        super().action_help_quit()  # type: ignore[misc]

    def _quit_chosen(self, code: int, choice: str | None) -> None:
        app: Any = self
        names = ", ".join(self.in_flight)
        if not self._flights:  # it ended while the dialog was up
            app.exit(code)
            return
        if choice is None:
            app.activity(f"not quitting: {names} still running")
            return
        self._quit_code = code
        if choice == "wait":
            app.activity(f"quitting once {names} ends")
        elif choice == "cancel":
            self._cancel_all(self._reason())
            app.activity(f"cancelling {names} at its next safe point, then quitting")
        elif choice == "leave":
            for f in self._flights.values():
                f.flight.abandon()
            app.activity(f"leaving {names} for `berth recover`; quitting")

    def action_cancel_actions(self) -> None:
        """X: cancel what is in flight (a drain keeps what it moved), without quitting."""
        app: Any = self
        if not self._flights:
            app.activity("nothing in flight to cancel")
            return
        if isinstance(app.screen, InFlightScreen):
            return
        app.push_screen(InFlightScreen(self.in_flight, quitting=False), self._cancel_chosen)

    def _cancel_chosen(self, choice: str | None) -> None:
        app: Any = self
        if choice == "cancel" and self._flights:
            names = ", ".join(self.in_flight)
            self._cancel_all(self._reason())
            app.activity(f"cancelling {names} at its next safe point")

    def quit_on_signal(self, name: str) -> None:
        """SIGTERM / SIGHUP: nobody to ask; cancel at the next safe point, quit once nothing is in flight."""
        app: Any = self
        if not self._flights:
            app.exit(0)
            return
        self._quit_code = 0
        self._cancel_all(f"{name} to the console")
