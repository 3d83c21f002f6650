"""Stopping an action at its next safe point: a signal (SIGINT, SIGTERM, SIGHUP) or the console's cancel.

An ``Interrupt`` is a request, not a cancellation: the action runs on until a point where stopping is
safe, then rolls back what the step in hand had begun (a migration still in pre-copy) or finishes
it (a restart already sent to the daemon, a migration whose source is stopped). ``check`` raises
``Interrupted`` at such a point; ``wait`` lets a paused step (a crash test's failpoint) give way.

The request in force is carried by a context variable, so a drain's migrations, each an ``execute``
of its own, stop with the drain.
"""

from __future__ import annotations

import asyncio
import contextvars

from console.actions.types import ActionError


class Interrupted(ActionError):
    """The action stopped at a safe point because it was asked to."""

    def __init__(self, reason: str, where: str) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"interrupted ({reason}) {where}")


class Interrupt:
    def __init__(self) -> None:
        self.reason: str | None = None
        self._event: asyncio.Event | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask the running action to stop at its next safe point; the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        if self._event is not None:
            self._event.set()

    def check(self, where: str) -> None:
        if self.reason is not None:
            raise Interrupted(self.reason, where)

    async def wait(self) -> None:
        """Until a stop is requested."""
        if self._event is None:
            self._event = asyncio.Event()
        if self.reason is not None:
            self._event.set()
        await self._event.wait()


CURRENT: contextvars.ContextVar[Interrupt | None] = contextvars.ContextVar("berth_interrupt", default=None)


def current() -> Interrupt | None:
    return CURRENT.get()
