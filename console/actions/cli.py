"""Action subcommands: the same Actions the TUI uses, with a plan printed and confirmed first.

Exit status: 0 done; 1 the action ran and failed (the daemon's words, rolled back where it
applies); 2 bad command line or inventory; 3 refused before anything changed (read-only console,
pre-flight refusal, ambiguous or unknown target, not confirmed, an audit log or journal that is
unsafe to write: console/safefs.py). Never a traceback.

Without a terminal on stdin the plan is not confirmable: scripts pass ``--yes``. Bulk actions
(drain) make the operator type the node name rather than "y".

The same verbs run for a remote caller (`ssh berth-host restart web`, console.serve): then output
goes to that caller's channel (``Caller``), the actions are the server's, and the identity is the
caller's, so the refusals and the audit records are theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from console.config import resolve_inventory
from console.actions.audit import AuditLog
from console.actions.core import Actions
from console.actions.redact import mask, mask_text
from console.actions.types import ActionError, Plan, Progress, ReadOnlyError, Result
from console.engine.errors import EngineError
from console.fmt import size
from console.identity import Identity

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3

Command = Callable[..., argparse.ArgumentParser]

SIMPLE_HELP = {
    "restart": "restart a container",
    "stop": "stop a container",
    "start": "start a container",
    "pause": "pause (freeze) a container",
    "unpause": "unpause a container",
}
TARGET_HELP = "NODE/CONTAINER, or a container name or id prefix unique across the fleet"


def register(command: Command) -> None:
    for name, text in SIMPLE_HELP.items():
        p = command(name, cmd_action, text)
        _container_args(p)
        if name in ("stop", "restart"):
            p.add_argument("--timeout", "-t", type=int, metavar="SECONDS", help="grace period before SIGKILL")
    p = command("isolate", cmd_action, "quarantine a container: internal network only, no restart escape")
    _container_args(p)
    p.add_argument("--freeze", action="store_true", help="also pause it")
    p.add_argument("--cpus", type=float, metavar="N", help="cap CPU to N cores")
    p.add_argument("--memory", metavar="SIZE", help="cap memory (e.g. 256m, 1GiB)")
    p = command("unisolate", cmd_action, "undo isolate: restore networks, restart policy and limits")
    _container_args(p)
    p = command("migrate", cmd_action, "move a container to another node (live pre-copy, short switch)")
    _container_args(p)
    p.add_argument("--to", metavar="NODE", help="destination node (default: the best fit)")
    p.add_argument("--allow-bind", action="store_true", help="move even with host bind mounts (data not copied)")
    p.add_argument("--image-by-id", action="store_true",
                   help="when the target's tag of the image names another image, create the copy from the exact "
                        "image by id (it loses its name there)")
    p.add_argument("--remove-source", action="store_true", help="remove the stopped source after success")
    p.add_argument("--finalize", action="store_true", help="remove the kept stopped source of an earlier migration")
    p = command("drain", cmd_action, "migrate every container off a node (cordons it first)")
    _node_args(p)
    p.add_argument("--concurrency", type=int, default=1, metavar="N", help="migrations at a time (default 1)")
    p.add_argument("--continue-on-error", action="store_true", help="go on after a failed migration")
    for name, text in (("cordon", "mark a node as taking no new containers"), ("uncordon", "undo cordon")):
        p = command(name, cmd_action, text)
        _node_args(p)
    p = command("recover", cmd_recover, "list what interrupted actions left (unfinished migrations, orphan locks, "
                "unended audit records); finish, roll back or clear it")
    p.add_argument("target", metavar="ID", nargs="?", help="the migration's or action's audit id (as listed)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--finish", action="store_const", const="finish", dest="mode",
                     help="complete the move (only once the final copy was done)")
    how.add_argument("--rollback", action="store_const", const="rollback", dest="mode",
                     help="undo it: target side removed, the source as it was")
    how.add_argument("--clear", action="store_const", const="clear", dest="mode",
                     help="remove orphan locks and close unended audit records as interrupted (all, or ID's)")
    _common(p)
    p = command("audit", cmd_audit, "show the audit log of actions")
    p.add_argument("--json", action="store_true", help="one JSON object per action")
    p.add_argument("--limit", type=int, metavar="N", help="only the last N actions")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (scripts)")
    p.add_argument("--reason", metavar="TEXT", help="why (recorded in the audit log)")
    p.add_argument("--break-stale", action="store_true", help="break a lock older than 30 minutes")
    p.epilog = "exit status: 0 done, 1 failed, 2 usage, 3 refused (read-only, pre-flight, not confirmed)"


def _container_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    _common(p)


def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="NODE", help="node name from the inventory")
    _common(p)


@dataclass(frozen=True)
class Caller:
    """Where a verb's output goes and how it asks for a confirmation: this terminal, or a remote
    caller's session. ``ask`` is None when there is nobody to ask (no terminal)."""

    out: TextIO
    err: TextIO
    ask: Callable[[str], str] | None

    @classmethod
    def here(cls) -> Caller:
        return cls(sys.stdout, sys.stderr, input if sys.stdin.isatty() else None)


class _Here:
    """``Actions`` on this event loop as one identity: the ActionsPort shape the verbs use."""

    def __init__(self, actions: Actions, who: Identity) -> None:
        self.actions = actions
        self.identity = who

    async def plan(self, action: str, target: Any, **params: Any) -> Plan:
        return await self.actions.plan(action, target, who=self.identity, **params)

    async def execute(self, plan: Plan, progress: Callable[[Progress], None] | None = None) -> Result:
        return await self.actions.execute(plan, progress, who=self.identity)


def _err(text: str, err: TextIO | None = None) -> None:
    """One line on stderr. Daemon messages can quote a command or a header: masked by the rule
    the audit log uses (as is everything _say prints)."""
    try:
        print(f"berth: {mask_text(' '.join(str(text).split()))}", file=err or sys.stderr, flush=True)
    except OSError:  # the terminal went away (SIGHUP): the audit log still says how it ended
        pass


def _say(text: str, out: TextIO | None = None) -> None:
    try:
        print(mask_text(text), file=out or sys.stdout, flush=True)
    except OSError:
        pass


def _params(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("reason", "timeout", "freeze", "cpus", "memory", "to", "allow_bind", "image_by_id", "remove_source",
            "finalize", "concurrency", "continue_on_error", "break_stale", "mode")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) not in (None, False)}


def _confirm(plan: Plan, ask: Callable[[str], str] = input) -> bool:
    if plan.bulk:
        answer = ask(f"Type the node name ({plan.target.node}) to go ahead: ")
        return answer.strip() == plan.target.node
    answer = ask("Go ahead? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _progress_line(p: Progress, out: TextIO | None = None) -> None:
    moved = f" ({size(p.bytes_done)})" if p.bytes_done else ""
    _say(f"[{p.elapsed:6.1f}s] {p.phase}: {p.detail}{moved}", out)


async def _ask(plan: Plan, ask: Callable[[str], str] = input) -> bool:
    """The confirmation prompt on a daemon thread: a signal while it waits must not wait for Enter."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def settle(value: bool | None, exc: BaseException | None) -> None:
        if not answer.done():
            answer.set_exception(exc) if exc is not None else answer.set_result(bool(value))

    def work() -> None:
        try:
            value = _confirm(plan, ask)
        except BaseException as exc:  # noqa: BLE001 - EOFError and the like are re-raised in the loop
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=work, name="berth-confirm", daemon=True).start()
    return await answer


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Signals:
    """SIGINT, SIGTERM and SIGHUP (a dropped SSH session) alike: before the action begins, stop at once
    (nothing changed); while it runs, ask it to stop at its next safe point, which finishes or rolls back
    the step in hand, releases the lock and ends the audit record; a second signal stops at once (the
    audit record still ends, as interrupted, and `berth recover` lists what is left)."""

    def __init__(self, actions: Actions, action: str) -> None:
        self.actions, self.action = actions, action
        self.task = asyncio.current_task()
        self.running = False
        self.received: int | None = None
        self.loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self.loop.add_signal_handler(sig, self._on, sig)

    def _on(self, sig: signal.Signals) -> None:
        first = self.received is None
        self.received = self.received or int(sig)
        if self.running and first:
            self.actions.interrupt.request(sig.name)
            _err(f"{sig.name}: stopping {self.action} at its next safe point (again to stop at once)")
        elif self.task is not None:
            self.task.cancel()

    def close(self) -> None:
        for sig in SIGNALS:
            self.loop.remove_signal_handler(sig)

    @property
    def status(self) -> int:
        return 128 + (self.received or signal.SIGINT)


class _NoSignals:
    """A remote caller's command runs on a server thread: its signals are the server's, not its own."""

    running = False
    received: int | None = None

    @property
    def status(self) -> int:
        return 128 + signal.SIGINT


def cmd_action(args: argparse.Namespace) -> int:
    action = args.command
    if not str(getattr(args, "target", "") or "").strip():
        _err(f"{action}: no target given (usage: berth {action} TARGET)")
        return EXIT_USAGE
    if getattr(args, "read_only", False):
        _err(f"read-only console: {action} refused (started with --read-only)")
        return EXIT_REFUSED

    inventory = resolve_inventory(args.inventory)
    return asyncio.run(_run(action, args, inventory))


async def _run(action: str, args: argparse.Namespace, inventory: Any) -> int:
    actions = Actions(inventory, read_only=bool(getattr(args, "read_only", False)))
    signals = _Signals(actions, action)
    try:
        return await run_action(action, args, _Here(actions, actions.identity), Caller.here(), signals)
    finally:
        signals.close()
        await actions.aclose()


async def run_action(action: str, args: argparse.Namespace, port: Any, caller: Caller,
                     signals: _Signals | _NoSignals | None = None) -> int:
    """Plan, print, confirm, run and report one action through ``port`` (an ActionsPort: its identity
    is who asks, refused there when it may not act); the exit status as documented above."""
    out, err = caller.out, caller.err
    signals = signals or _NoSignals()
    try:
        try:
            plan = await port.plan(action, args.target, **_params(args))
        except ReadOnlyError as exc:
            _err(str(exc), err)
            return EXIT_REFUSED
        except ActionError as exc:
            _err(str(exc), err)
            return EXIT_REFUSED
        _say(f"{action} {plan.target.label}", out)
        for line in plan.summary:
            _say(f"  {line}", out)
        if not args.yes:
            if caller.ask is None:
                _err(f"{action} needs confirmation: no terminal on stdin, pass --yes to go ahead", err)
                return EXIT_REFUSED
            try:
                confirmed = await _ask(plan, caller.ask)
            except EOFError:
                confirmed = False
            if not confirmed:
                _err(f"{action} not confirmed: nothing changed", err)
                return EXIT_REFUSED
        verbose = action in ("migrate", "drain", "recover") or bool(getattr(args, "verbose", False))
        started = time.monotonic()
        if signals.received:  # a signal between the prompt and here: nothing has begun
            raise asyncio.CancelledError
        signals.running = True
        result = await port.execute(plan, (lambda p: _progress_line(p, out)) if verbose else None)
        signals.running = False
        if result.ok:
            _say(f"{result.message} [{time.monotonic() - started:.1f}s, audit {result.audit_id}]", out)
            return signals.status if signals.received else EXIT_OK
        _err(f"{result.message} (audit {result.audit_id})", err)
        if signals.received:
            return signals.status
        return EXIT_REFUSED if result.refused else EXIT_FAILED
    except asyncio.CancelledError:
        if signals.running:
            _err(f"{action} stopped at once by a second signal: the audit records it as interrupted; "
                 f"`berth recover` lists what it left", err)
        else:
            _err(f"{action}: interrupted before anything changed", err)
        return signals.status
    except ReadOnlyError as exc:
        _err(str(exc), err)
        return EXIT_REFUSED
    except (ActionError, EngineError) as exc:
        _err(str(exc), err)
        return EXIT_FAILED


def cmd_recover(args: argparse.Namespace) -> int:
    """Without an ID: list (read-only is fine). With one: plan, confirm, run, like every action."""
    if args.target is None:
        if args.mode == "clear":
            args.target = "*"
            return cmd_action(args)
        if args.mode:
            _err("recover: give the migration ID to --finish or --rollback (`berth recover` lists them)")
            return EXIT_USAGE

        return asyncio.run(_list_unfinished(resolve_inventory(args.inventory)))
    if not args.mode:
        _err(f"recover {args.target}: say --finish or --rollback")
        return EXIT_USAGE
    return cmd_action(args)


async def _list_unfinished(inventory: Any) -> int:
    """Unfinished migrations (journals), then orphan locks and unended audit records; nodes that cannot be
    asked about their locks are said on stdout, as part of the listing."""
    async with Actions(inventory, read_only=True) as actions:
        records, errors = actions.journal.entries()
        orphans = await actions.orphans()
    return print_unfinished(records, errors, orphans, Caller.here())


def print_unfinished(records: list[Any], errors: list[Any], orphans: Any, caller: Caller) -> int:
    """`berth recover` without an ID: what is left to finish or clear, and what could not be checked."""
    from console.actions.core import describe_dangling

    out = caller.out

    def say(text: str) -> None:
        _say(text, out)

    for err in errors:
        _err(f"unreadable migration journal {err}", caller.err)
    status = EXIT_FAILED if errors else EXIT_OK
    if not records and not orphans.locks and not orphans.records:
        if not errors:
            say("nothing to recover: no unfinished migrations, orphan locks or unfinished actions")
        for node, why in orphans.unchecked.items():
            say(f"locks on {node} not checked: {why}")
        return status
    if records:
        say("unfinished migrations:")
    for r in records:
        running = f"  (still running: pid {r.pid})" if r.alive() else ""
        say(f"  {r.describe()}{running}")
        if r.outcome:
            say(f"      last known: {r.outcome}")
    if records:
        say("  finish or undo one with: berth recover ID --finish | --rollback")
    if orphans.locks:
        say("orphan locks:")
        for lk in orphans.locks:
            say(f"  {lk.describe()}")
    if orphans.records:
        say("unfinished actions (begun, never ended, their Berth gone):")
        for e in orphans.records:
            say(f"  {describe_dangling(e)}")
    if orphans.locks or orphans.records:
        say("  clear them with: berth recover --clear  (or berth recover ID --clear)")
    for node, why in orphans.unchecked.items():
        say(f"locks on {node} not checked: {why}")
    return status


def _who(entry: dict[str, Any]) -> str:
    """'alice', or for a remote door 'alice (ssh SHA256:... from 10.0.0.5)'."""
    ident = entry.get("identity") or {}
    if not ident or ident.get("door") in (None, "local"):
        return str(entry.get("who"))
    how = " ".join(str(x) for x in (ident.get("door"), ident.get("fingerprint")) if x)
    src = f" from {ident['address']}" if ident.get("address") else ""
    return f"{entry.get('who')} ({how}{src})"


def cmd_audit(args: argparse.Namespace) -> int:
    return print_audit(AuditLog().read(args.limit), bool(args.json), sys.stdout)


def print_audit(entries: list[dict[str, Any]], as_json: bool, out: TextIO) -> int:
    """`berth audit`: one line (or JSON object) per action, who did it included."""
    if as_json:
        for e in entries:
            print(json.dumps(mask(e), default=str), file=out)  # records from before a masking rule: masked now
        return EXIT_OK
    if not entries:
        print("no actions recorded", file=out)
        return EXIT_OK
    for e in entries:
        t = e.get("target") or {}
        where = t.get("node", "?") if not t.get("id") else f"{t.get('node')}/{t.get('name')}"
        if (e.get("params") or {}).get("to"):
            where += f" -> {e['params']['to']}"
        status = "running" if e.get("ok") is None else ("ok" if e.get("ok") else (
            "refused" if (e.get("details") or {}).get("refused") else "FAILED"))
        if e.get("status"):
            status = f"{status} ({e['status']})" if e.get("ok") else str(e["status"]).upper()
        dur = f"{e['duration']:.1f}s" if isinstance(e.get("duration"), int | float) else "-"
        down = (e.get("details") or {}).get("downtime")
        extra = f" downtime {down:.2f}s" if isinstance(down, int | float) else ""
        err = f" — {e['error']}" if e.get("error") else ""
        print(mask_text(f"{e.get('at')}  {_who(e)}  {e.get('action')} {where}  {status} {dur}{extra}{err}"),
              file=out)
    return EXIT_OK
