"""The two typed ports between the console UI and the core.

The UI sees the core only through these: a ``FleetFeed`` (snapshots, and the reads a
detail view needs, in) and an ``ActionsPort`` (intents out, each carrying who asks).
``console.local`` implements both over an in-process poller and ``console.actions``;
a remote viewer implements them over a connection to ``berth serve``. The UI cannot
tell the two apart, and must not try.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from console.actions.journal import MigrationRecord
from console.actions.types import Plan, Progress, Result, Target
from console.fleet.model import FleetSnapshot
from console.identity import Identity

SnapshotFn = Callable[[FleetSnapshot], None]
ChunkFn = Callable[[bytes], None]
ProgressFn = Callable[[Progress], None]


@runtime_checkable
class FleetFeed(Protocol):
    """Snapshots in. ``subscribe`` callbacks run on the feed's own thread: they must be thread-safe
    (Textual's ``post_message`` is) and should let a newer snapshot replace an unprocessed one."""

    @property
    def latest(self) -> FleetSnapshot | None: ...

    @property
    def is_started(self) -> bool: ...

    @property
    def reads(self) -> str | None:
        """None when ``inspect``/``follow_logs`` can answer, else why not (shown as the detail's state)."""

    def subscribe(self, on_snapshot: SnapshotFn) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def focus(self, ids: frozenset[str]) -> None:
        """The container ids now on screen (kept at the full sample rate)."""

    def refresh(self, node: str, container_id: str | None = None) -> None:
        """Re-read this container (or the node's listing) now: an action just changed it."""

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]: ...

    async def follow_logs(self, node: str, container_id: str, on_chunk: ChunkFn, *, tail: int = 200,
                          follow: bool = True) -> None:
        """Raw log chunks (multiplexed unless the container has a TTY) until the stream ends or the
        awaiting task is cancelled. ``on_chunk`` may run on another thread."""


class Flight(Protocol):
    """An action under way. ``cancel`` asks it to stop at its next safe point (rolling back or finishing
    the step in hand, as the action defines); ``abandon`` stops it at once and leaves what it began for
    `berth recover` (its audit record is still closed, and its journal kept)."""

    @property
    def abandoned(self) -> bool: ...

    def cancel(self, reason: str) -> None: ...

    def abandon(self) -> None: ...

    async def result(self) -> Result:
        """The outcome; raises ``asyncio.CancelledError`` once abandoned (after its clean-up ran)."""


@runtime_checkable
class ActionsPort(Protocol):
    """Intents out, as ``identity``. Every method may raise ``ActionError`` (``ReadOnlyError`` for a
    refusal by mode or role), and only that: the port turns whatever else went wrong into one."""

    @property
    def identity(self) -> Identity: ...

    @property
    def unavailable(self) -> str | None:
        """None when actions can run here, else why not (shown instead of a plan)."""

    @property
    def read_only(self) -> bool:
        """True when every mutating intent will be refused (read-only mode, or a viewer's role)."""

    async def plan(self, action: str, target: Target | str, **params: Any) -> Plan: ...

    def start(self, plan: Plan, progress: ProgressFn | None = None) -> Flight:
        """Run ``plan`` (refused here for a viewer or in read-only mode, as ``plan`` is)."""

    async def rank_targets(self, target: Target) -> list[tuple[str, str]]: ...

    def unfinished(self) -> tuple[list[MigrationRecord], list[str]]:
        """Journaled migrations nobody saw to their end, and one line per unreadable journal."""

    def audit_entries(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` audit entries, one merged record per action (``AuditLog.read``)."""
