"""Command line: `berth` opens the console; subcommands share the global options.

Global options are accepted before or after the subcommand (`berth --inventory X status`
and `berth status --inventory X` mean the same), so runbooks can be written either way.
Errors are one line on stderr and exit status 2 (usage, config) — never a traceback. A state file
(audit log, journal) that is unsafe to write (console/safefs.py) is refused with exit status 3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from console import __version__
from console.config import ConfigError, Inventory, inventory_from_contexts, resolve_inventory
from console.fmt import printable
from console.safefs import StateFileError

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace], int]


class PrintableStream:
    """stdout or stderr of a headless command: what it writes reaches the terminal printable.

    Tables, plans, progress, audit lines and errors all carry engine text (names, labels, daemon
    messages); this is their one exit, so none can print an escape sequence or a bidi override.
    The commands' own newlines and tabs are kept; JSON output is already escaped (fmt.json_safe).
    """

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(printable(text, keep="\n\t"))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding...
        return getattr(self.raw, name)


class UsageError(Exception):
    """A bad command line or config: one line, exit 2."""


# Where --help and --version text goes: this terminal, or a remote caller's channel (console.serve).
HELP_OUTPUT: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar("berth_help_output", default=None)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump, exit 2
        raise UsageError(f"{self.prog}: {message}")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        super()._print_message(message, HELP_OUTPUT.get() or file)


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument("--inventory", "-i", metavar="PATH", default=d,
                        help="inventory TOML (default: $BERTH_INVENTORY, ~/.config/berth/inventory.toml, "
                             "then DOCKER_HOST / docker context)")
    parser.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="refuse every mutating action")
    parser.add_argument("--theme", metavar="NAME", default=d, help="console theme (dark, light, noc)")
    parser.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="log debug details to stderr")
    from console.metrics.cli import add_read_options

    add_read_options(parser, suppress)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="berth", description="Terminal operations console for Docker on bare metal.")
    parser.add_argument("--version", action="version", version=f"berth {__version__}")
    _global_options(parser, suppress=False)
    parser.add_argument("--noc", action="store_true", help="wall-screen mode: read-only, rotating panes")
    parser.add_argument("--demo", action="store_true", help="run against an embedded simulated fleet")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _global_options(p, suppress=True)
        p.set_defaults(handler=handler)
        return p

    p = command("status", cmd_status, "print the fleet once (or --watch) and exit")
    p.add_argument("--json", action="store_true", help="one JSON object with nodes, containers, tenants")
    p.add_argument("--watch", action="store_true", help="print a one-line fleet summary every interval")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between --watch lines (default 2)")
    p.add_argument("--timeout", type=float, default=15.0,
                   help="longest wait for one complete stats round (default 15 s)")

    p = command("inventory", cmd_inventory, "inventory helpers")
    p.add_argument("action", choices=["from-contexts", "show"],
                   help="from-contexts: print an inventory with one node per docker context; "
                        "show: print the resolved inventory's nodes")

    for register in _extensions():
        register(command)
    return parser


def _extensions() -> list[Callable[[Callable[..., argparse.ArgumentParser]], None]]:
    """Subcommands that live with their nouns (actions, sim) register themselves here."""
    out = []
    for module in ("console.actions.cli", "console.sim.cli", "console.metrics.cli", "console.serve.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        out.append(mod.register)
    return out


def load_inventory_for(args: argparse.Namespace) -> Inventory:
    return resolve_inventory(args.inventory)


def cmd_status(args: argparse.Namespace) -> int:
    from console.status import run_status

    if getattr(args, "prometheus", None):
        from console.metrics.cli import cmd_status_prometheus

        return cmd_status_prometheus(args)
    inventory = load_inventory_for(args)
    try:
        return asyncio.run(run_status(inventory, as_json=args.json, watch=args.watch,
                                      interval=args.interval, timeout=args.timeout))
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_inventory(args: argparse.Namespace) -> int:
    if args.action == "from-contexts":
        sys.stdout.write(inventory_from_contexts())
        return EXIT_OK
    inventory = load_inventory_for(args)
    print(f"# {inventory.source}")
    for node in inventory.nodes:
        print(f"{node.name}\t{node.url}")
    return EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    from console.ui.app import run_app

    return run_app(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    saved = sys.stdout, sys.stderr
    try:
        args = parser.parse_args(argv)
        for name, default in (("inventory", None), ("theme", None), ("read_only", False), ("verbose", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
        handler: Handler = getattr(args, "handler", cmd_console)
        if handler is not cmd_console:  # the console draws its own screen: its text is made safe per widget
            sys.stdout, sys.stderr = PrintableStream(sys.stdout), PrintableStream(sys.stderr)  # type: ignore[assignment]
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                            format="berth: %(levelname)s %(name)s: %(message)s")
        return handler(args)
    except UsageError as exc:
        print(printable(str(exc)), file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"berth: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except StateFileError as exc:  # refused before anything changed: nothing is written through it
        print(f"berth: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: one line for the operator, the traceback with -v
        if "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv):
            raise
        print(f"berth: internal error: {type(exc).__name__}: {printable(str(exc))} (run with -v for details)",
              file=sys.stderr)
        return 70
    finally:
        sys.stdout, sys.stderr = saved
