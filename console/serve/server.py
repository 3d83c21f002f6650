"""What every front door shares: one poller (``LocalFeed`` behind a ``FeedHub``), one ``Actions`` (one
audit log, one set of journals and node clients), and the count of sessions against ``max_sessions``.

A door asks for a console for an ``Identity`` and gets a ``Session`` (console.serve.session) whose app
sees the fleet through the hub and acts through a ``LocalActions`` carrying that identity. A viewer's
console is read-only (no mutating keys shown), and ``Actions`` refuses a viewer's intent anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from console.actions.audit import AuditLog
from console.actions.core import Actions
from console.actions.interrupt import Interrupt
from console.actions.journal import Journal
from console.actions.types import Plan, Result
from console.config import Inventory
from console.engine.reads import IOLoop
from console.identity import Identity
from console.local import LocalActions, LocalFeed
from console.ports import ProgressFn
from console.serve.hub import FeedHub
from console.serve.session import Output, Session, TerminalInfo

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 1.0  # snapshots a second to every console (the 1 Hz)


class ServedActions(LocalActions):
    """LocalActions whose running actions the server counts, so a stop lets them reach a safe point first."""

    def __init__(self, actions: Actions, identity: Identity, io: IOLoop, server: Server) -> None:
        super().__init__(actions, identity, io)
        self.server = server

    async def _execute(self, plan: Plan, progress: ProgressFn | None, interrupt: Interrupt) -> Result:
        # its own token: a stop of the server reaches it, one console's cancel reaches only it
        with self.server.running_action(interrupt):
            return await super()._execute(plan, progress, interrupt)


class Server:
    def __init__(self, inventory: Inventory, *, read_only: bool = False, max_sessions: int = 32,
                 demo_state: Path | None = None) -> None:
        self.inventory = inventory
        self.read_only = read_only
        self.max_sessions = max_sessions
        self.io = IOLoop("berth-serve-io")
        self.feed = LocalFeed(inventory, self.io, publish_interval=PUBLISH_INTERVAL)
        self.hub = FeedHub(self.feed)
        if demo_state is not None:  # the demo's records stay in its private directory (as `berth --demo`)
            self.actions = Actions(inventory, read_only=read_only,
                                   audit=AuditLog(Path(demo_state) / "audit.jsonl", demo=True),
                                   journal=Journal(Path(demo_state) / "migrations", root=Path(demo_state)))
        else:
            self.actions = Actions(inventory, read_only=read_only)
        self._lock = threading.Lock()
        self._active: set[object] = set()  # consoles and commands now running, for max_sessions
        self.sessions: set[Session] = set()
        self.closing: str | None = None
        self._running: set[Interrupt] = set()  # actions executing now (any session or command), by their token
        self._idle = threading.Condition(self._lock)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.feed.start()

    def stop(self) -> None:
        self.feed.stop()  # also closes the I/O loop: the actions' node clients with it

    # -- admission ------------------------------------------------------------------------

    def admit(self, token: object) -> str | None:
        """Count ``token`` as a running session; else the refusal to show."""
        with self._lock:
            if self.closing is not None:
                return f"berth serve is shutting down ({self.closing})"
            if len(self._active) >= self.max_sessions:
                return (f"berth serve: all {self.max_sessions} sessions are in use (max_sessions); "
                        "try again when someone leaves")
            self._active.add(token)
            return None

    def release(self, token: object) -> None:
        with self._lock:
            self._active.discard(token)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    # -- per identity ------------------------------------------------------------------------

    def may_act(self, who: Identity) -> bool:
        return not self.read_only and who.may_act

    def port(self, who: Identity) -> LocalActions:
        """The actions as ``who``: every intent is checked and audited as them by Actions. Under
        --read-only everyone is a viewer (so no console offers recovery on start either)."""
        if self.read_only and who.may_act:
            who = dataclasses.replace(who, role="viewer")
        return ServedActions(self.actions, who, self.io, self)

    def console(self, who: Identity, output: Output, terminal: TerminalInfo,
                on_end: Callable[[Session], None] | None = None) -> Session:
        """A console session for ``who`` (not started): the full app, read-only unless they may act."""
        view = self.hub.view()
        read_only = not self.may_act(who)

        def make_app() -> Any:
            from console.ui.app import BerthApp

            app = BerthApp(feed=view, inventory=self.inventory, actions=self.port(who), read_only=read_only)
            app.collector.active = False  # gc.freeze is the process's: the server settles once, not per session
            view.subscribe(app.deliver)
            return app

        def ended(session: Session) -> None:
            view.stop()
            with self._lock:
                self.sessions.discard(session)
            if on_end is not None:
                on_end(session)

        session = Session(f"{who.user}@{who.address or who.door}", make_app, output, terminal, ended)
        with self._lock:
            self.sessions.add(session)
        return session

    @contextlib.contextmanager
    def running_action(self, token: Interrupt) -> Iterator[None]:
        with self._lock:
            self._running.add(token)
            stopping = self.closing
        if stopping is not None:  # began while the server was stopping: stop it at its first safe point
            self.io.loop().call_soon_threadsafe(token.request, stopping)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(token)
                self._idle.notify_all()

    def stop_actions(self, reason: str, timeout: float = 60.0) -> int:
        """Refuse new sessions, ask running actions to stop at their next safe point (each finishes or
        rolls back its step, releases its lock and ends its audit record), and wait for them; how many
        were still running when ``timeout`` passed (they are then cut off, their records still ended)."""
        with self._lock:
            self.closing = reason
            running = list(self._running)
        if running:
            log.warning("%s: asking %d running action(s) to stop at their next safe point", reason, len(running))
            for token in running:
                self.io.loop().call_soon_threadsafe(token.request, reason)
        with self._lock:
            self._idle.wait_for(lambda: not self._running, timeout)
            return len(self._running)

    def end_all(self, reason: str, timeout: float = 5.0) -> None:
        """Close every console (from any thread) and wait for their apps to finish."""
        with self._lock:
            self.closing = reason
            sessions = list(self.sessions)
        for session in sessions:
            session.close()
        for session in sessions:
            session.join(timeout)
