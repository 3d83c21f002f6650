"""The ports (console.ports) over this process's own poller and actions: what `berth` runs.

``LocalFeed`` owns the fleet thread (the poller on its own event loop) and answers the
detail reads (inspect, logs) through engine clients on a second background loop, so
the UI loop never parses a response or waits on a socket. ``LocalActions`` runs
``console.actions`` on that same loop as one identity. A caller awaits both from its own
event loop; cancelling the awaiting task cancels the I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from console.actions.audit import AuditLog
from console.actions.core import Actions
from console.actions.interrupt import Interrupt
from console.actions.journal import Journal, MigrationRecord
from console.actions.types import ActionError, Plan, Result, Target
from console.config import Inventory
from console.engine.errors import EngineError
from console.engine.reads import EngineReads, IOLoop, Running
from console.fleet.model import FleetSnapshot
from console.identity import Identity
from console.ports import ChunkFn, ProgressFn, SnapshotFn
from console.safefs import StateFileError

T = TypeVar("T")
log = logging.getLogger(__name__)


class LocalFeed:
    """A FleetFeed over an in-process poller thread (console.fleet.runner.FleetThread)."""

    def __init__(self, inventory: Inventory, io: IOLoop | None = None, publish_interval: float = 0.5) -> None:
        from console.fleet.runner import FleetThread

        self._subscribers: list[SnapshotFn] = []
        self.thread = FleetThread(inventory, self._publish, publish_interval=publish_interval)
        self.io = io or IOLoop()
        self._reads = EngineReads(inventory, self.io)

    def _publish(self, snapshot: FleetSnapshot) -> None:
        for deliver in list(self._subscribers):
            try:
                deliver(snapshot)
            except Exception:
                log.exception("snapshot subscriber failed")

    @property
    def latest(self) -> FleetSnapshot | None:
        return self.thread.latest

    @property
    def is_started(self) -> bool:
        return self.thread.is_started

    @property
    def reads(self) -> str | None:
        return None

    def subscribe(self, on_snapshot: SnapshotFn) -> None:
        self._subscribers.append(on_snapshot)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_started:
            self.thread.stop()
        self.io.close()

    def focus(self, ids: frozenset[str]) -> None:
        self.thread.focus(ids)

    def refresh(self, node: str, container_id: str | None = None) -> None:
        self.thread.refresh(node, container_id)

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]:
        return await self._reads.inspect(node, container_id)

    async def follow_logs(self, node: str, container_id: str, on_chunk: ChunkFn, *, tail: int = 200,
                          follow: bool = True) -> None:
        await self._reads.follow_logs(node, container_id, on_chunk, tail=tail, follow=follow)


class LocalFlight:
    """A Flight over one ``Actions.execute`` on the I/O loop, with an interrupt of its own."""

    def __init__(self, running: Running[Result], interrupt: Interrupt) -> None:
        self._running = running
        self._interrupt = interrupt

    @property
    def abandoned(self) -> bool:
        return self._running.stopped

    def cancel(self, reason: str) -> None:
        loop = self._running._loop
        loop.call_soon_threadsafe(self._interrupt.request, reason)

    def abandon(self) -> None:
        self._running.stop()

    async def result(self) -> Result:
        try:
            return await self._running.result()
        except (ActionError, asyncio.CancelledError):
            raise
        except (EngineError, StateFileError) as exc:
            raise ActionError(str(exc)) from None


class LocalActions:
    """An ActionsPort over console.actions.Actions in this process, as one identity.

    Every intent carries ``identity`` into ``Actions``, which refuses it there (read-only mode, a
    viewer's role) and writes it into the audit log: hiding keys in the UI is a courtesy, not the guard.
    """

    def __init__(self, actions: Actions, identity: Identity, io: IOLoop) -> None:
        self.actions = actions
        self._identity = identity
        self.io = io
        io.on_close(actions.aclose)

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def unavailable(self) -> str | None:
        return None

    @property
    def read_only(self) -> bool:
        return self.actions.read_only or not self._identity.may_act

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return await self.io.run(coro)
        except ActionError:
            raise
        except (EngineError, StateFileError) as exc:
            raise ActionError(str(exc)) from None

    async def plan(self, action: str, target: Target | str, **params: Any) -> Plan:
        return await self._run(self.actions.plan(action, target, who=self._identity, **params))

    def start(self, plan: Plan, progress: ProgressFn | None = None) -> LocalFlight:
        interrupt = Interrupt()
        return LocalFlight(self.io.start(self._execute(plan, progress, interrupt)), interrupt)

    async def _execute(self, plan: Plan, progress: ProgressFn | None, interrupt: Interrupt) -> Result:
        """On the I/O loop: the one place an intent of this port runs (a server wraps it to count it)."""
        return await self.actions.execute(plan, progress, who=self._identity, interrupt=interrupt)

    async def execute(self, plan: Plan, progress: ProgressFn | None = None) -> Result:
        """``start`` and wait: for callers with nothing to cancel (the CLI, tests)."""
        return await self.start(plan, progress).result()

    async def rank_targets(self, target: Target) -> list[tuple[str, str]]:
        return await self._run(self.actions.rank_targets(target))

    def unfinished(self) -> tuple[list[MigrationRecord], list[str]]:
        return self.actions.unfinished()

    def audit_entries(self, limit: int) -> list[dict[str, Any]]:
        return self.actions.audit.read(limit)



def local_actions(inventory: Inventory, who: Identity, io: IOLoop, *, read_only: bool = False,
                  demo_state: Path | None = None) -> LocalActions:
    """Actions for this process's console as ``who``; ``demo_state``: the demo's private state directory,
    where its audit log (marked demo) and journals live, apart from the real fleet's."""
    if demo_state is None:
        actions = Actions(inventory, read_only=read_only, user=who.user)
    else:
        actions = Actions(inventory, read_only=read_only, user=who.user,
                          audit=AuditLog(Path(demo_state) / "audit.jsonl", user=who.user, demo=True),
                          journal=Journal(Path(demo_state) / "migrations", root=Path(demo_state)))
    return LocalActions(actions, who, io)
