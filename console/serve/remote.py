"""`ssh berth-host status --json`: the command-line verbs for a remote caller, run in the server.

The same parser and the same code as `berth` (console.cli, console.actions.cli), with three
differences that make it the server's: output goes to the caller's channel (``Caller``), the fleet
figures come from the shared poller (no Engine API connection of the caller's own), and actions run
through the server's ``Actions`` as the caller's identity, so a viewer is refused there (exit 3, one
line naming the role) and every record in the audit log names who, with which key, from where.

Options that would reach into the server (``--inventory``, ``--demo``, ``--theme``, ``--noc``) and
verbs that are not the fleet's (``sim``, ``serve``, ``inventory``) are refused with exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import time

import orjson

from console import fmt
from console.actions.cli import (
    EXIT_USAGE,
    Caller,
    print_audit,
    print_unfinished,
    run_action,
)
from console.identity import Identity
from console.serve.server import Server

SERVED = ("status", "audit", "recover", "restart", "stop", "start", "pause", "unpause", "isolate", "unisolate",
          "migrate", "drain", "cordon", "uncordon")
REFUSED_OPTIONS = (("--inventory", "inventory"), ("--demo", "demo"), ("--theme", "theme"), ("--noc", "noc"))


def _err(caller: Caller, text: str) -> None:
    print(f"berth: {text}", file=caller.err, flush=True)


def run_command(command: str, server: Server, who: Identity, caller: Caller) -> int:
    """Run one command line as ``who``; its exit status (0 done, 1 failed, 2 usage, 3 refused)."""
    from console.cli import HELP_OUTPUT, PrintableStream, UsageError, build_parser

    # what `berth` does for its own terminal: engine text reaches the caller's terminal printable
    caller = Caller(PrintableStream(caller.out), PrintableStream(caller.err), caller.ask)  # type: ignore[arg-type]

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        _err(caller, f"cannot parse the command line: {exc}")
        return EXIT_USAGE
    if argv and argv[0] == "berth":  # `ssh host berth status` reads naturally too
        argv = argv[1:]
    if not argv:
        _err(caller, f"give a command ({', '.join(SERVED)}); ssh without one opens the console")
        return EXIT_USAGE
    verb = next((a for a in argv if not a.startswith("-")), None)
    token = HELP_OUTPUT.set(caller.out)
    try:
        if verb is not None and verb not in SERVED:
            _err(caller, f"{verb!r} is not served over ssh (served: {', '.join(SERVED)})")
            return EXIT_USAGE
        try:
            args = build_parser().parse_args(argv)
        except UsageError as exc:
            print(exc, file=caller.err, flush=True)
            return EXIT_USAGE
        except SystemExit as exc:  # --help, --version: printed to the caller already
            return int(exc.code or 0) if isinstance(exc.code, int) else 0
        chosen = [opt for opt, attr in REFUSED_OPTIONS if getattr(args, attr, None)]
        if chosen:
            _err(caller, f"{chosen[0]} is the server's to choose, not a remote caller's")
            return EXIT_USAGE
        if getattr(args, "command", None) is None:
            _err(caller, f"give a command ({', '.join(SERVED)}); ssh without one opens the console")
            return EXIT_USAGE
        return _dispatch(args, server, who, caller)
    finally:
        HELP_OUTPUT.reset(token)


def _dispatch(args: argparse.Namespace, server: Server, who: Identity, caller: Caller) -> int:
    verb = args.command
    if verb == "status":
        return _status(args, server, caller)
    if verb == "audit":
        return print_audit(server.actions.audit.read(args.limit), bool(args.json), caller.out)
    if verb == "recover" and args.target is None and args.mode == "clear":
        args.target = "*"  # as `berth recover --clear`: every orphan
    elif verb == "recover" and args.target is None:
        if args.mode:
            _err(caller, "recover: give the migration ID to --finish or --rollback (`recover` lists them)")
            return EXIT_USAGE
        return _list_unfinished(server, caller)
    if verb == "recover" and not args.mode:
        _err(caller, f"recover {args.target}: say --finish or --rollback")
        return EXIT_USAGE
    if not str(getattr(args, "target", "") or "").strip():
        _err(caller, f"{verb}: no target given (usage: {verb} TARGET)")
        return EXIT_USAGE
    if getattr(args, "read_only", False):
        _err(caller, f"read-only: {verb} refused (asked with --read-only)")
        return 3
    return asyncio.run(run_action(verb, args, server.port(who), caller))


def _list_unfinished(server: Server, caller: Caller) -> int:
    """The journals, orphan locks and unended records, read by the server's own Actions (on its loop)."""
    records, errors = server.actions.journal.entries()
    orphans = asyncio.run_coroutine_threadsafe(server.actions.orphans(), server.io.loop()).result(120)
    return print_unfinished(records, errors, orphans, caller)


def _status(args: argparse.Namespace, server: Server, caller: Caller) -> int:
    """`status` from the shared poller: the newest complete snapshot (waiting up to --timeout for the
    first), printed exactly as `berth status` prints it."""
    from console.status import render_tables, summary_line, to_json

    deadline = time.monotonic() + max(0.0, float(args.timeout))
    snap = server.feed.latest
    while (snap is None or not snap.complete) and time.monotonic() < deadline:
        time.sleep(0.1)
        snap = server.feed.latest
    if snap is None:
        _err(caller, f"no fleet snapshot yet after {args.timeout:g}s")
        return 1
    out = caller.out
    if args.watch:
        while True:
            print(summary_line(snap), file=out, flush=True)  # a closed channel raises BrokenPipeError
            time.sleep(max(0.2, float(args.interval)))
            snap = server.feed.latest or snap
    if args.json:
        out.write(fmt.json_safe(orjson.dumps(to_json(snap), option=orjson.OPT_INDENT_2).decode()) + "\n")
    else:
        out.write(render_tables(snap) + "\n")
        if not snap.complete:
            out.write(f"note: stats incomplete after {args.timeout:g}s; figures shown are what arrived\n")
    out.flush()
    return 0 if all(n.up for n in snap.nodes) else 1
