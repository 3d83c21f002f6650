"""`berth serve`: the command. Reads the inventory and its `[serve]`/`[[user]]` tables, makes the host
key on first start, binds the doors (a taken port is one line and exit 2, before the poller starts),
then serves until SIGTERM or SIGINT, which end every session with a message.

Doors: ``ssh`` (console.serve.ssh) and ``metrics`` (Prometheus exposition of the same poller's
snapshots, console.metrics). The browser door (``web``) is not built yet: asking for it stops
`berth serve` with exit 2 rather than leaving a wall screen dark without saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("serve", cmd_serve, "serve the console to a team over SSH: one poller, roles by key, "
                                    "every action audited with who did it")
    p.add_argument("--ssh", metavar="HOST:PORT", help="SSH front door (overrides [serve] ssh)")
    p.add_argument("--web", metavar="HOST:PORT", help="browser front door (not built yet: refused)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="Prometheus /metrics of the shared poller "
                                                          "(overrides [serve] metrics)")
    p.add_argument("--shard", metavar="K/N", help="watch only shard K of N of the inventory's nodes, split by a "
                                                  "hash of their names (console.metrics.shard)")
    p.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                   help="serve the embedded simulated fleet ([serve] and [[user]] still come from --inventory)")


class _ServeLog(logging.StreamHandler):  # type: ignore[type-arg]
    pass


def _log_setup() -> None:
    """The server's own log (logins, refusals, sessions) on stderr, whatever -v says for the rest."""
    logger = logging.getLogger("console.serve")
    if not any(isinstance(h, _ServeLog) for h in logger.handlers):
        handler = _ServeLog(sys.__stderr__)
        handler.setFormatter(logging.Formatter("berth serve: %(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _say(text: str) -> None:
    print(f"berth serve: {text}", file=sys.__stderr__, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from console.cli import UsageError
    from console.config import resolve_inventory
    from console.serve.config import ServeConfig, load_serve, parse_listen

    demo = None
    demo_state: Path | None = None
    if getattr(args, "demo", False):
        from console.ui.app import _start_demo

        started = _start_demo()
        if isinstance(started, str):
            print(f"berth: {started}", file=sys.stderr)
            return EXIT_USAGE
        demo = started
        inventory, demo_state = demo.inventory, demo.state
        source = args.inventory or os.environ.get("BERTH_INVENTORY")
        config = load_serve(source) if source else ServeConfig()
    else:
        inventory = resolve_inventory(args.inventory)
        config = load_serve(inventory.path) if inventory.path is not None else ServeConfig()
    try:
        if getattr(args, "shard", None):
            from console.metrics.shard import parse_shard, shard_inventory

            try:
                inventory = shard_inventory(inventory, parse_shard(args.shard))
            except ValueError as exc:
                raise UsageError(f"berth serve: --shard: {exc}") from None
        overrides: dict[str, Any] = {}
        for name in ("ssh", "web", "metrics"):
            value = getattr(args, name, None)
            if value is not None:
                try:
                    overrides[name] = parse_listen(value)
                except ValueError as exc:
                    raise UsageError(f"berth serve: --{name} {exc}") from None
        settings = {f: getattr(config, f) for f in config.__dataclass_fields__}
        settings.update(overrides)
        config = ServeConfig(**settings)
        if config.web is not None:
            raise UsageError(f"berth serve: web = {str(config.web)!r}: the browser door is not built in this "
                             "version (ssh and metrics are); remove it or leave it unset")
        if config.ssh is None:
            raise UsageError("berth serve: nothing to serve: set ssh = \"HOST:PORT\" in [serve] or pass "
                             "--ssh HOST:PORT")
        if not config.users:
            where = config.source if config.source != "<inventory>" else "the inventory (--inventory PATH)"
            raise UsageError(f"berth serve: no [[user]] in {where}: nobody could log in")
        return _serve(args, inventory, config, demo_state)
    finally:
        if demo is not None:
            demo.close()


def _serve(args: argparse.Namespace, inventory: Any, config: Any, demo_state: Path | None) -> int:
    from console.serve.hostkey import fingerprint, load_or_create
    from console.serve.server import Server
    from console.serve.ssh import SSHDoor
    from console.ui.collector import Collector

    _log_setup()
    host_key, made = load_or_create(config.host_key)
    server = Server(inventory, read_only=bool(args.read_only), max_sessions=config.max_sessions,
                    demo_state=demo_state)
    door = SSHDoor(server, config, config.ssh, host_key)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        try:
            bound = await door.start()
        except OSError as exc:
            print(f"berth: cannot listen on {config.ssh} (ssh): {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        exposition = None
        if config.metrics is not None:
            from console.metrics import start_exposition

            try:
                exposition = start_exposition(lambda: server.feed.latest, config.metrics.host, config.metrics.port,
                                              stale_after=inventory.alerts.stale_after,
                                              shard=getattr(args, "shard", None) or "")
            except OSError as exc:
                await door.close("could not start")
                print(f"berth: cannot listen on {config.metrics} (metrics): {exc.strerror or exc}", file=sys.stderr)
                return EXIT_USAGE
        server.start()
        stop = asyncio.Event()
        reason: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            reason.append(sig.name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, sig)
        mode = "read-only for everyone" if server.read_only else "viewers read, operators act"
        _say(f"ssh on {bound} (host key {fingerprint(host_key)}{', new' if made else ''}; "
             f"{config.host_key}), {len(config.users)} user(s), {mode}, fleet: {inventory.source or 'demo'}")
        if exposition is not None:
            _say(f"metrics on {exposition.url} (no authentication: keep it on loopback or behind a proxy)")
        settle = loop.create_task(_settle_when_complete(server, Collector()))
        await stop.wait()
        settle.cancel()
        why = f"stopped ({reason[0]})" if reason else "stopped"
        _say(f"{why}: ending {server.active} session(s)")
        await door.close(why)
        if exposition is not None:
            exposition.close()
        return EXIT_OK

    try:
        return asyncio.run(main())
    finally:
        server.stop()
        sys.stdout = sys.__stdout__  # the session apps swapped it while they ran
        sys.stderr = sys.__stderr__


async def _settle_when_complete(server: Any, collector: Any) -> None:
    """Freeze the long-lived objects once the fleet is known (console.ui.collector, once per process)."""
    while True:
        snap = server.feed.latest
        if snap is not None and snap.complete:
            await asyncio.get_running_loop().run_in_executor(None, collector.settle)
            return
        await asyncio.sleep(1.0)
