"""BerthApp: the console. Snapshots in, intents out, through the two ports of console.ports.

The app sees the core only as a ``FleetFeed`` (snapshots, inspect, logs) and an
``ActionsPort`` (plan, start, rank, recover; each intent carries the port's identity):
``console.local`` implements them in this process, a remote viewer over a connection.
`run_app(args)` is what `berth` runs: resolve the inventory (a ConfigError is one line
on stderr and exit 2, before Textual starts), start the feed, run the app, stop the feed.
Tests build `BerthApp(feed=None, ...)` and push snapshots with `apply_snapshot` or
`post_message(SnapshotArrived(snap))`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Input

from console.actions.redact import mask_text
from console.actions.types import ActionError
from console.config import AlertThresholds, ConfigError, Inventory
from console.fmt import printable
from console.fleet.alerts import Alert, derive_alerts
from console.fleet.model import ContainerSnapshot, FleetSnapshot, NodeSnapshot, TenantSnapshot
from console.ports import ActionsPort, FleetFeed
from console.ui import commandline, operations, registry, themes
from console.ui.cells import Context
from console.ui.collector import Collector
from console.ui.inflight import InFlightMixin
from console.ui.markup import escape
from console.ui.messages import Activity, NeedSnapshot, OpenDetail, RunCommandLine
from console.ui.screens.alerts import AlertsScreen
from console.ui.screens.audit import AuditScreen
from console.ui.screens.detail import DetailScreen
from console.ui.screens.dialogs import ConfirmScreen, PickNodeScreen, TypedConfirmScreen
from console.ui.screens.fleet import FleetScreen
from console.ui.screens.help import HelpScreen
from console.ui.screens.logs import LogsScreen
from console.ui.screens.recovery import RecoveryScreen

log = logging.getLogger(__name__)

NOC_ROTATE_SECONDS = 15.0
# Actions that open a one-line input: the keys typed after them belong to that input (see on_event).
INPUT_OPENERS = frozenset({"filter", "command_line", "search"})
DANGEROUS = {"stop", "isolate", "migrate", "drain", "cordon", "finalize"}


class SnapshotArrived(Message):
    """A new fleet snapshot; a newer one replaces an unprocessed older one (Toolong's can_replace)."""

    def __init__(self, snapshot: FleetSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotArrived)


class ActionProgress(Message):
    def __init__(self, label: str, progress: Any) -> None:
        super().__init__()
        self.label = label
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ActionProgress) and message.label == self.label


def describe(target: Any) -> str:
    if isinstance(target, ContainerSnapshot):
        return f"{target.name} on {target.node}"
    if isinstance(target, NodeSnapshot):
        return f"node {target.name}"
    return str(target)


class BerthApp(InFlightMixin, App[int]):
    TITLE = "berth"
    CSS_PATH = str(themes.css_path())
    BINDINGS = registry.bindings()
    COMMAND_PALETTE_BINDING = "ctrl+p"

    def __init__(self, feed: FleetFeed | None = None, inventory: Inventory | None = None, *,
                 read_only: bool = False, theme: str | None = None, noc: bool = False,
                 actions: ActionsPort | None = None, actions_unavailable: str = "actions unavailable (no inventory)",
                 clock: Callable[[], float] = time.time, rotate_every: float = NOC_ROTATE_SECONDS) -> None:
        """``inventory`` gives the alert thresholds; ``actions`` None: every action key answers
        ``actions_unavailable``. A port that refuses everything (a viewer) makes the console read-only."""
        super().__init__()
        self.feed = feed
        self.inventory = inventory
        self.noc = noc
        self.actions = actions
        self.actions_unavailable = actions_unavailable
        self.read_only = read_only or noc or (actions is not None and actions.read_only)
        self.clock = clock
        self.rotate_every = rotate_every
        self.thresholds: AlertThresholds = inventory.alerts if inventory is not None else AlertThresholds()
        self.snapshot: FleetSnapshot | None = None
        self.alerts: list[Alert] = []
        self.last_activity = ""
        self._running_actions: set[str] = set()  # progress for a finished action is late: drop it
        # label -> (its last progress line without the time, elapsed then, monotonic time then):
        # the line is redrawn every second so a long step (a 10 s stop, a drain's copy) ticks
        self._progress: dict[str, tuple[str, float, float]] = {}
        self._hint_shown = False
        self._ticking = False  # the activity line shows a running action's progress (it ticks)
        self.warmed = False  # a complete round was seen: "warming up" is not shown again
        self.monotonic: Callable[[], float] = time.monotonic
        self._init_flights()  # actions in flight: quitting asks first (console/ui/inflight.py)
        for t in themes.load_themes().values():
            self.register_theme(t)
        self.theme = self.resolve_theme(theme or ("noc" if noc else themes.DEFAULT_THEME))
        self.fleet = FleetScreen(noc=noc)
        self.collector = Collector()
        self._deferred: FleetSnapshot | None = None  # a snapshot waiting for the keys ahead of it
        self._accepting = False  # mounted: snapshots are posted to the message queue from now on
        self._focus: set[str] = set()  # container ids last reported on screen (see _report_focus)

    # -- lifecycle ---------------------------------------------------------------

    def resolve_theme(self, name: str) -> str:
        if name in self.available_themes:
            return name
        raise ValueError(f"unknown theme {name!r} (available: {', '.join(self.theme_names())})")

    def theme_names(self) -> list[str]:
        ours = [t for t in themes.CYCLE if t in self.available_themes]
        return ours + sorted(t for t in self.available_themes if t not in ours)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(themes.VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        self.push_screen(self.fleet)
        self.call_after_refresh(self.collector.settle)
        self._accepting = True
        if self.feed is not None:
            if self.feed.is_started:
                # started before the app (run_app does, so the nodes connect while Textual starts;
                # a server's feed runs for every session): what it published meanwhile is its latest
                latest = self.feed.latest
                if latest is not None:
                    self.apply_snapshot(latest)
            else:
                self._start_feed()
        self.set_interval(1.0, self._tick)
        if self.actions is not None and self.actions.identity.may_act:  # a viewer is offered no recovery
            self._find_unfinished(on_start=True)
        if self.noc and self.rotate_every > 0:
            self.set_interval(self.rotate_every, self.rotate)

    @work(thread=True, group="feed")
    def _start_feed(self) -> None:
        if self.feed is not None:
            self.feed.start()

    def on_unmount(self) -> None:
        self.collector.uninstall()

    def deliver(self, snapshot: FleetSnapshot) -> None:
        """Called on the fleet thread: hand over through the (thread-safe) message queue. Before
        the app is mounted there is no queue to use: on_mount takes the feed's latest instead."""
        if self._accepting:
            self.post_message(SnapshotArrived(snapshot))

    # -- keys ------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Open an input (`/`, `:`, logs `/`) before the next key is routed.

        Textual routes each key to the focused widget as it arrives and resolves a key's binding
        later, when the key has bubbled back up; so in a burst (fast typing, a laggy SSH link)
        the keys after `/` were already on their way to the table, and ran its bindings: `s`
        stop, `t` theme, `q` quit. Here the binding of an input-opening key runs at once, and
        the action focuses its input synchronously, so every key after it lands in the input.
        """
        if isinstance(event, events.Key) and not event.is_forwarded and self.screen_stack \
                and not isinstance(self.focused, Input):
            opener = self._input_opener(event.key)
            if opener is not None:
                namespace, action = opener
                self.app_focus = True
                if await self.run_action(action, namespace):
                    return
        await super().on_event(event)

    def _input_opener(self, key: str) -> tuple[Any, str] | None:
        """The (namespace, action) the key would run, when that action opens an input."""
        for namespace, bindings in self.screen._modal_binding_chain:
            for binding in bindings.key_to_bindings.get(key, ()):
                name = binding.action.rpartition(".")[2].partition("(")[0]
                if name in INPUT_OPENERS:
                    return namespace, binding.action
                return None  # the first binding for the key wins, as in Textual's own dispatch
        return None

    # -- snapshots -----------------------------------------------------------------

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        """Keys already queued go first: then the snapshot is applied after their frame (the newest by then)."""
        if self._deferred is not None:
            self._deferred = message.snapshot
        elif self.message_queue_size:
            self._deferred = message.snapshot
            self.call_after_refresh(self._apply_deferred)
        else:
            self.apply_snapshot(message.snapshot)

    def _apply_deferred(self) -> None:
        snap, self._deferred = self._deferred, None
        if snap is not None:
            self.apply_snapshot(snap)

    def context(self, now: float | None = None) -> Context:
        now = self.clock() if now is None else now
        th = self.thresholds
        snap = self.snapshot
        offset = max(0.0, now - snap.taken_at) if snap is not None else 0.0
        nodes = snap.nodes if snap is not None else ()
        old = frozenset(n.name for n in nodes if n.data_age is not None and n.data_age + offset > th.stale_after)
        stale = old | frozenset(n.name for n in nodes if not n.up)
        unknown = old | frozenset(n.name for n in nodes if not n.live)
        return Context(now=now, stale_after=th.stale_after, cpu_warn=th.cpu_density, mem_warn=th.mem_density,
                       cpu_commit_warn=th.cpu_committed, mem_commit_warn=th.mem_committed, stale_nodes=stale,
                       unknown_nodes=unknown, age_offset=offset)

    def apply_snapshot(self, snap: FleetSnapshot) -> None:
        """Apply one snapshot to every view in one batch: one repaint per snapshot."""
        self.snapshot = snap
        self.warmed = self.warmed or snap.complete
        if not self.fleet.is_mounted or self.return_code is not None or self._closing or self.fleet._closing:
            return  # not drawn yet, or quitting (exit, or a test's run ending): the screens are going away
        ctx = self.context()
        self.alerts = derive_alerts(snap, self.thresholds, ctx.now)
        with self.batch_update():
            self.fleet.apply(snap, self.alerts, ctx, mode=self.mode_text(), stale_after=self.thresholds.stale_after)
            screen = self.screen
            if screen is not self.fleet and isinstance(screen, DetailScreen):
                screen.apply(snap, ctx, self.mode_text())
        if snap.complete and self.collector.settles < self.collector.max_settles:
            self.call_after_refresh(self.collector.settle)  # the fleet is known: freeze its state
        self._report_focus()

    def _report_focus(self) -> None:
        """Tell the poller which containers are on screen: they keep the full sample rate however
        idle (idle ones elsewhere drop to the node's stats_idle_interval)."""
        if self.feed is None:
            return
        ids: set[str] = set()
        screen = self.screen
        if isinstance(screen, DetailScreen):
            ids.add(screen.container.id)
        elif screen is self.fleet:
            pane = self.fleet.panes["containers"]
            if pane.display:
                ids.update(c.id for c in pane.table.visible_rows() if isinstance(c, ContainerSnapshot))
        if ids != self._focus:
            self._focus = ids
            self.feed.focus(frozenset(ids))

    def _tick(self) -> None:
        """Ages move even when no snapshot arrives; a stalled feed must look stale, not live."""
        self._tick_progress()
        snap = self.snapshot
        if snap is None or not self.fleet.is_mounted:
            return
        if self.clock() - snap.taken_at > 2.0:
            self.apply_snapshot(snap)

    def mode_text(self) -> str:
        if self.noc:
            return "  [reverse $accent] NOC [/]"
        if self.read_only:
            return "  [reverse $alert-warning] READ-ONLY [/]"
        return ""

    def rotate(self) -> None:
        if self.screen is self.fleet:
            order = ("hosts", "containers", "tenants")
            self.fleet.show_pane(order[(order.index(self.fleet.current) + 1) % len(order)])

    # -- feedback ----------------------------------------------------------------

    def activity(self, text: str, *, error: bool = False, ok: bool = False, hint: bool = False) -> None:
        """One line above the footer (and a toast): refusals, progress, results; daemon errors in it
        are masked by the rule the audit log uses. A `hint` (select a container first) is about the
        view it was given in: it goes when the operator moves on."""
        text = mask_text(text)
        self.last_activity = text
        self._hint_shown = hint
        self._ticking = False  # another message owns the line now: the progress tick leaves it be
        if self.fleet.is_mounted:
            line = self.fleet.query_one("#activity")
            line.update(printable(text))  # type: ignore[attr-defined]  # a plain Static: no markup
            line.display = bool(text)
            line.set_class(error, "-error")
            line.set_class(ok, "-ok")
        if error:
            self.notify(escape(text), severity="error", timeout=6)
        elif ok:
            self.notify(escape(text), timeout=4)

    def on_action_progress(self, message: ActionProgress) -> None:
        if message.label not in self._running_actions:
            return
        p = message.progress
        detail = getattr(p, "detail", "") or ""
        elapsed = getattr(p, "elapsed", None)
        done = getattr(p, "bytes_done", None)
        text = f"{message.label}: {getattr(p, 'phase', p)}"
        if detail:
            text += f" — {detail}"
        if done:
            text += f" ({done / 1024**2:.1f} MiB)"
        since = self._progress.get(message.label)
        if elapsed is None:  # an action that does not time itself: from its first line
            elapsed = since[1] + self.monotonic() - since[2] if since else 0.0
        self._progress[message.label] = (text, float(elapsed), self.monotonic())
        self._show_progress(message.label)

    def progress_started(self, label: str, text: str) -> None:
        """An action is running: its line ticks from now (before its first progress report)."""
        self._running_actions.add(label)
        self._progress[label] = (text, 0.0, self.monotonic())
        self._show_progress(label)

    def _show_progress(self, label: str) -> None:
        text, elapsed, at = self._progress[label]
        self.activity(f"{text} {elapsed + self.monotonic() - at:.0f}s")
        self._ticking = True

    def _tick_progress(self) -> None:
        for label in list(self._progress):
            if label not in self._running_actions:
                del self._progress[label]  # finished: its result line stays as it is
        if self._progress and self._ticking:
            self._show_progress(next(reversed(self._progress)))

    # -- navigation actions ------------------------------------------------------------

    def _to_fleet(self) -> None:
        while self.screen is not self.fleet and len(self.screen_stack) > 1:
            self.pop_screen()

    async def action_quit(self) -> None:
        """q, ctrl+q: with an action in flight, ask first (wait, cancel safely, leave for recover)."""
        self.request_quit(0)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action in _REGISTRY_ACTIONS:
            return False
        if self.read_only and action in _MUTATING_ACTIONS:
            return False  # read-only and NOC: mutating keys are neither shown nor bound (k9s' Dangerous)
        if action == "logs" and isinstance(self.screen, LogsScreen):
            return False
        return True

    def action_show_pane(self, kind: str) -> None:
        self._to_fleet()
        self.fleet.show_pane(kind)
        self.clear_hint()

    def clear_hint(self) -> None:
        if self._hint_shown:
            self.activity("")

    async def action_back(self) -> None:
        self.clear_hint()
        if self.screen is self.fleet:
            self.fleet.back()
        elif len(self.screen_stack) > 1:
            self.pop_screen()

    def action_filter(self) -> None:
        self._to_fleet()
        self.fleet.open_input("filter")

    def action_command_line(self) -> None:
        self._to_fleet()
        self.fleet.open_input("command")

    def action_sort(self, key: str) -> None:  # the cursor goes to the top, as in k9s (Pane.set_sort)
        self._to_fleet()
        self.fleet.pane.set_sort(key)
        self.fleet._update_titles()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.read_only))

    def action_alerts(self) -> None:
        self.push_screen(AlertsScreen(self.alerts), self.jump_to)

    def on_alert_strip_opened(self, message: Message) -> None:
        self.action_alerts()

    def action_cycle_theme(self) -> None:
        names = [t for t in themes.CYCLE if t in self.available_themes]
        current = names.index(self.theme) if self.theme in names else -1
        self.set_theme(names[(current + 1) % len(names)])

    def set_theme(self, name: str) -> None:
        try:
            self.theme = self.resolve_theme(name)
        except ValueError as exc:
            self.activity(str(exc), error=True)
            return
        self.activity(f"theme {self.theme}")
        if self.snapshot is not None:
            self.apply_snapshot(self.snapshot)

    def action_show_audit(self) -> None:
        self.push_screen(AuditScreen(self.actions, self.actions_unavailable))

    def action_logs(self) -> None:
        target = self.current_target("container")
        if target is None:
            self.activity("logs: select a container first", error=True, hint=True)
            return
        tty = False
        if isinstance(self.screen, DetailScreen) and self.screen.inspect_doc:
            tty = bool((self.screen.inspect_doc.get("Config") or {}).get("Tty"))
        self.push_screen(LogsScreen(target, self.crumb_for(target), self.feed, tty=tty))

    # -- what screens ask (console/ui/messages.py) ---------------------------------------

    def on_need_snapshot(self, message: NeedSnapshot) -> None:
        if self.snapshot is not None:
            self.apply_snapshot(self.snapshot)

    def on_activity(self, message: Activity) -> None:
        self.activity(message.text, error=message.error, ok=message.ok)

    def on_open_detail(self, message: OpenDetail) -> None:
        self.open_detail(message.container)

    def on_run_command_line(self, message: RunCommandLine) -> None:
        self.run_command_line(message.line)

    def open_detail(self, container: ContainerSnapshot) -> None:
        self.push_screen(DetailScreen(container, self.crumb_for(container), self.feed))

    def crumb_for(self, container: ContainerSnapshot) -> str:
        return self.fleet.breadcrumb() or "Containers"

    def jump_to(self, alert: Alert | None) -> None:
        if alert is None:
            return
        self._to_fleet()
        kind = {"node": "hosts", "container": "containers", "tenant": "tenants"}.get(alert.subject_kind)
        if kind is None:
            return
        if not self.fleet.focus_row(kind, alert.subject):
            self.activity(f"{alert.subject} is no longer in the fleet", error=True)

    def run_command_line(self, text: str) -> None:
        cmd = commandline.parse(text)
        if cmd.verb == "pane":
            self.action_show_pane(cmd.arg)
        elif cmd.verb in ("node", "tenant"):
            self._to_fleet()
            if not self.fleet.scope_to(cmd.verb, cmd.arg):
                self.activity(f"no {cmd.verb} named {cmd.arg!r} (or more than one starts so)", error=True)
        elif cmd.verb == "theme":
            self.set_theme(cmd.arg)
        elif cmd.verb == "sort":
            self.action_sort(cmd.arg)
        elif cmd.verb == "filter":
            self._to_fleet()
            self.fleet.pane.set_filter(cmd.arg)
        elif cmd.verb == "alerts":
            self.action_alerts()
        elif cmd.verb == "audit":
            self.action_show_audit()
        elif cmd.verb == "help":
            self.action_help()
        elif cmd.verb == "quit":
            self.request_quit(0)
        else:
            self.activity(cmd.arg, error=True)

    # -- palette -------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Titles and help are Textual markup to the palette: every one is escaped (a `[/]` in the
        `/` key's help, or a tenant named `[b]`, would crash it or vanish)."""
        for c in registry.COMMANDS:
            if c.id == "palette" or (c.mutating and self.read_only):
                continue
            yield SystemCommand(escape(c.label if c.group != "Act" else f"{c.label} (action)"),
                                escape(f"{c.help}  [{c.key_text}]"), partial(self.run_action, c.action))
        for name in self.theme_names():
            yield SystemCommand(escape(f"Theme: {name}"), "Switch the colour theme", partial(self.set_theme, name))
        if self.snapshot is not None:
            for n in self.snapshot.nodes:
                yield SystemCommand(escape(f"Node: {n.name}"), escape(f"Containers on {n.name} ({n.state.value})"),
                                    partial(self.run_command_line, f"node {n.name}"))
            for t in self.snapshot.tenants:
                yield SystemCommand(escape(f"Tenant: {t.name}"), escape(f"Containers of tenant {t.name}"),
                                    partial(self.run_command_line, f"tenant {t.name}"))
        yield from super().get_system_commands(screen)

    # -- unfinished migrations ---------------------------------------------------------------

    def action_recover(self) -> None:
        if self.actions is None:
            self.activity(f"recover: {self.actions_unavailable}", error=True)
            return
        self._find_unfinished(on_start=False)

    @work(thread=True, group="recovery", exclusive=True)
    def _find_unfinished(self, on_start: bool) -> None:
        """Read the journal off the UI thread; on start, say nothing when there is nothing."""
        if self.actions is None:
            return
        records, errors = self.actions.unfinished()
        if records or errors or not on_start:
            self.call_from_thread(self._offer_recovery, records, errors)

    def _offer_recovery(self, records: list[Any], errors: list[str]) -> None:
        self.push_screen(RecoveryScreen(records, errors), self._recovery_chosen)

    def _recovery_chosen(self, choice: tuple[str, str] | None) -> None:
        if choice is None:
            return
        audit_id, mode = choice
        if self.read_only:
            mode_name = "NOC mode" if self.noc else "read-only mode"
            self.activity(f"recover {audit_id} refused: {mode_name}, no mutating action is allowed", error=True)
            return
        self.run_recovery_flow(audit_id, mode)

    @work(group="actions")
    async def run_recovery_flow(self, audit_id: str, mode: str) -> None:
        actions = self.actions
        if actions is None:
            return
        verb = "finish" if mode == "finish" else "roll back"
        try:
            plan = await actions.plan("recover", audit_id, mode=mode)
        except ActionError as exc:
            self.activity(f"recover {audit_id} refused: {exc}", error=True)
            return
        ok = await self.push_screen_wait(ConfirmScreen(f"{verb.capitalize()} migration {audit_id}?",
                                                       list(plan.summary), danger=True, confirm=verb.capitalize()))
        if not ok:
            self.activity(f"recover {audit_id} cancelled")
            return
        label = f"recover {audit_id}"
        self.progress_started(label, f"{label}: started")
        try:
            result = await self.run_tracked(label, plan, lambda p: self.post_message(ActionProgress(label, p)))
            if result is None:
                return
        except ActionError as exc:
            self.activity(f"{label} failed: {exc}", error=True)
            return
        finally:
            self._running_actions.discard(label)
            self.refresh_after("recover", None, {})
        mark = "✔" if result.ok else "✖"
        self.activity(f"{mark} {label}: {result.message} (audit {result.audit_id})", ok=result.ok,
                      error=not result.ok)

    # -- mutating actions ----------------------------------------------------------------

    def current_target(self, needs: str) -> Any | None:
        """What the key applies to, read once at key-press time."""
        screen = self.screen
        row: Any = None
        if isinstance(screen, DetailScreen | LogsScreen):
            row = screen.container
        elif screen is self.fleet:
            row = self.fleet.selected()
        if needs == "container":
            return row if isinstance(row, ContainerSnapshot) else None
        if needs == "node":
            if isinstance(row, NodeSnapshot):
                return row
            if isinstance(row, ContainerSnapshot) and self.snapshot is not None:
                return self.snapshot.node(row.node)
            return None
        return row

    def action_act(self, command: str) -> None:
        spec = registry.BY_ID[command]
        target = self.current_target(spec.needs)
        if target is None:
            if isinstance(self.fleet.selected(), TenantSnapshot):
                self.activity(f"{command}: select a container or host, not a tenant", error=True, hint=True)
            else:
                self.activity(f"{command}: select a {spec.needs} first", error=True, hint=True)
            return
        verb = operations.verb_for(command, target)
        label = describe(target)
        if self.read_only:
            mode = "NOC mode" if self.noc else "read-only mode"
            self.activity(f"{verb} {label} refused: {mode}, no mutating action is allowed", error=True)
            return
        if self.actions is None:
            self.activity(f"{verb} {label}: {self.actions_unavailable}", error=True)
            return
        self.run_action_flow(command, verb, target)

    @work(group="actions")
    async def run_action_flow(self, command: str, verb: str, target: Any) -> None:
        actions = self.actions
        if actions is None:
            return
        label = describe(target)
        where = operations.target_for(target)
        try:
            if command == "migrate":
                self.activity(f"migrate {label}: ranking target nodes…")
                ranked = await actions.rank_targets(where)
                if not ranked:
                    self.activity(f"migrate {label}: no node can take it", error=True)
                    return
                self.activity("")  # ranked: the picker says the rest
                dest = await self.push_screen_wait(PickNodeScreen(f"Migrate {label} to…", ranked))
                if dest is None:
                    self.activity(f"migrate {label} cancelled")
                    return
                plan = await actions.plan("migrate", where, to=dest)
            elif command == "finalize":  # remove the stopped source a migration kept (CLI: --finalize)
                plan = await actions.plan("migrate", where, finalize=True)
            else:
                plan = await actions.plan(verb, where)
        except ActionError as exc:
            self.activity(f"{verb} {label} refused: {exc}", error=True)
            return
        summary = list(plan.summary)
        # The plan's summary states what it acts on (container, node, tenant, effect): add ours only
        # when it names nothing, or the target is shown twice (cordon: "node sim-01" and "node: sim-01").
        names_target = any(line.startswith(("container:", "node:")) for line in summary)
        lines = summary if names_target or len(summary) >= 3 else self._target_lines(target) + ["", *summary]
        title = f"{verb.capitalize()} {label}?"
        if command == "drain":
            ok = await self.push_screen_wait(TypedConfirmScreen(title, lines, expected=target.name))
        else:
            ok = await self.push_screen_wait(ConfirmScreen(title, lines, danger=command in DANGEROUS,
                                                           confirm=verb.capitalize()))
        if not ok:
            self.activity(f"{verb} {label} cancelled")
            return
        progress_label = f"{verb} {label}"

        def progress(p: Any) -> None:
            self.post_message(ActionProgress(progress_label, p))

        self.progress_started(progress_label, f"{verb} {label}: started")
        try:
            result = await self.run_tracked(progress_label, plan, progress)
            if result is None:  # left for `berth recover` on the way out
                return
        except ActionError as exc:
            self.activity(f"{verb} {label} failed: {exc}", error=True)
            return
        finally:
            self._running_actions.discard(progress_label)
            # done, failed or rolled back: what the object looks like now, not at the next poll
            self.refresh_after(command, target, plan.params)
        message = result.message or "done"
        extra = []
        if result.downtime is not None and "downtime" not in message:
            extra.append(f"downtime {result.downtime:.1f}s")  # once: the message may already say it
        if result.audit_id:
            extra.append(f"audit {result.audit_id}")
        suffix = f" ({', '.join(extra)})" if extra else ""
        if result.ok:
            self.activity(f"✔ {verb} {label}: {message}{suffix}", ok=True)
        else:
            self.activity(f"✖ {verb} {label}: {message}{suffix}", error=True)

    def refresh_after(self, command: str, target: Any, params: Mapping[str, Any]) -> None:
        """Ask the poller to re-read what an action touched, now (FleetFeed.refresh)."""
        if self.feed is None:
            return
        requests: list[tuple[str, str | None]]
        if isinstance(target, ContainerSnapshot):
            requests = [(target.node, target.id)]
            dest = params.get("to")
            if isinstance(dest, str) and dest != target.node:
                requests.append((dest, None))
        elif isinstance(target, NodeSnapshot) and command != "drain":
            requests = [(target.name, None)]
        else:  # drain and recover move containers between nodes: re-read them all
            requests = [(n.name, None) for n in (self.snapshot.nodes if self.snapshot is not None else ())]
        for node, container_id in requests:
            self.feed.refresh(node, container_id)

    def _target_lines(self, target: Any) -> list[str]:
        if isinstance(target, ContainerSnapshot):
            return [f"container  {target.name} ({target.short_id})", f"node       {target.node}",
                    f"tenant     {target.tenant}", f"state      {target.state}"]
        if isinstance(target, NodeSnapshot):
            d = target.density
            return [f"node       {target.name} ({target.state.value})",
                    f"containers {d.running} running of {d.containers}"]
        return [str(target)]


_REGISTRY_ACTIONS = {c.action.partition("(")[0] for c in registry.COMMANDS}
_MUTATING_ACTIONS = {c.action.partition("(")[0] for c in registry.COMMANDS if c.mutating}
assert not _MUTATING_ACTIONS & {c.action.partition("(")[0] for c in registry.COMMANDS if not c.mutating}, \
    "an action name shared by mutating and read-only commands cannot be unbound in read-only mode"


# ---------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class Demo:
    """The running demo: its simulated fleet's inventory and a private state directory (0700) for
    its audit log and journals, so nothing it does lands beside the real fleet's records."""

    inventory: Inventory
    state: Path
    close: Callable[[], None]  # stops the fleet and removes the state directory; idempotent


def _start_demo() -> Demo | str:
    """The in-process simulated incident fleet (no Docker, no root), or a one-line reason."""
    from console.config import load_inventory
    from console.safefs import private_tempdir
    from console.sim.fleet import SimError, start_demo_fleet

    try:
        path, stop_fleet = start_demo_fleet()
    except (SimError, OSError) as exc:
        return f"--demo could not start its simulated fleet: {exc}"
    try:
        state, remove_state = private_tempdir("berth-demo-state-")
    except OSError as exc:
        stop_fleet()
        return f"--demo could not make its private state directory: {exc}"

    def close() -> None:
        try:
            stop_fleet()
        finally:
            remove_state()

    try:
        return Demo(load_inventory(path), state, close)
    except ConfigError:
        close()
        raise


def connect_app(args: argparse.Namespace, inventory: Inventory, demo_state: Path | None = None) -> BerthApp:
    """The console for ``inventory`` on this process's own ports (console.local), the feed subscribed
    but not started; ValueError for a bad theme. ``demo_state``: the demo's private state directory."""
    from console import identity, local

    read_only = bool(getattr(args, "read_only", False)) or bool(getattr(args, "noc", False))
    feed: FleetFeed
    if getattr(args, "prometheus", None):  # the fleet from PromQL; actions still only to local nodes
        from console.metrics.cli import reader_from
        from console.metrics.feed import PromFeed

        feed = PromFeed(reader_from(args), inventory)
        io = feed.io
    else:
        feed = local.LocalFeed(inventory)
        io = feed.io
    actions: ActionsPort | None = None
    unavailable = "actions unavailable"
    try:
        actions = local.local_actions(inventory, identity.local(), io, read_only=read_only, demo_state=demo_state)
    except Exception as exc:  # a broken actions setup must not take the console down
        log.exception("console.actions failed to start")
        unavailable = f"actions unavailable ({type(exc).__name__}: {exc})"
    try:
        app = BerthApp(feed=feed, inventory=inventory, read_only=read_only, theme=getattr(args, "theme", None),
                       noc=bool(getattr(args, "noc", False)), actions=actions, actions_unavailable=unavailable)
    except ValueError:
        feed.stop()
        raise
    feed.subscribe(app.deliver)
    return app


def run_app(args: argparse.Namespace) -> int:
    closer: Callable[[], None] | None = None
    demo_state: Path | None = None
    try:
        if getattr(args, "demo", False):
            demo = _start_demo()
            if isinstance(demo, str):
                print(f"berth: {demo}", file=sys.stderr)
                return 2
            inventory, closer, demo_state = demo.inventory, demo.close, demo.state
        else:
            from console.config import resolve_inventory

            inventory = resolve_inventory(getattr(args, "inventory", None))
    except ConfigError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            app = connect_app(args, inventory, demo_state)
        except ValueError as exc:  # unknown theme
            print(f"berth: {exc}", file=sys.stderr)
            return 2
        feed = app.feed
        assert feed is not None
        feed.start()  # the nodes connect while Textual starts up; on_mount takes what arrived
        # A closed terminal (SIGHUP) or a kill (SIGTERM) must still run the closers below,
        # or the demo's simulated nodes and their temp dir outlive us.
        # With an action in flight it is cancelled at its next safe point first (console/ui/inflight.py).
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, _: app.call_later(app.quit_on_signal, signal.Signals(signum).name))
        try:
            app.run()
        finally:
            feed.stop()
        return app.return_code or 0
    finally:
        if closer is not None:
            closer()
