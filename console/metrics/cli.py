"""`berth metrics` (a poller serving /metrics, nothing else) and `berth prometheus rules`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

EXIT_OK, EXIT_USAGE = 0, 2


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    from console.metrics.exposition import DEFAULT_LISTEN

    p = command("metrics", cmd_metrics, "poll the fleet and serve its figures to Prometheus at /metrics "
                "until stopped")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address of the /metrics endpoint (default {DEFAULT_LISTEN}; port 0: any free port)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="watch only shard K of N: the inventory's nodes split stably by a hash of their names")

    p = command("prometheus", cmd_prometheus, "Prometheus helpers")
    p.add_argument("action", choices=["rules", "shards"],
                   help="rules: print an alerting rules file equivalent to the console's alert strip, built from "
                        "the inventory's [alerts] thresholds; shards: print which shard (of --shards N) "
                        "watches each node")
    p.add_argument("--shards", type=int, default=None, metavar="N", help="with `shards`: the number of shards")


def cmd_metrics(args: argparse.Namespace) -> int:
    from console.cli import load_inventory_for
    from console.fleet.runner import FleetThread
    from console.metrics.exposition import parse_listen, start_exposition
    from console.metrics.shard import parse_shard, shard_inventory

    try:
        listen = parse_listen(args.listen)
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        print(f"berth metrics: {exc}", file=sys.stderr)
        return EXIT_USAGE
    inventory = load_inventory_for(args)
    if shard is not None:
        inventory = shard_inventory(inventory, shard)
    fleet = FleetThread(inventory, lambda _snapshot: None)
    try:
        server = start_exposition(lambda: fleet.latest, listen.host, listen.port,
                                  stale_after=inventory.alerts.stale_after, shard=str(shard or ""))
    except OSError as exc:
        print(f"berth metrics: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        fleet.start()
        names = ", ".join(n.name for n in inventory.nodes) or "none"
        print(f"berth metrics: serving {server.url} for {len(inventory.nodes)} nodes"
              + (f" (shard {shard})" if shard else "") + f": {names}", flush=True)
        if not server.address.loopback:
            print(f"berth metrics: note: {server.address} is not loopback and /metrics has no authentication; "
                  "firewall it or put a TLS proxy in front", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        fleet.stop()
    return EXIT_OK


def cmd_prometheus(args: argparse.Namespace) -> int:
    from console.cli import load_inventory_for

    if args.action == "rules":
        from console.metrics.rules import render_rules

        inventory = load_inventory_for(args)
        sys.stdout.write(render_rules(inventory.alerts))
        return EXIT_OK
    from console.metrics.shard import shard_of

    if not args.shards or args.shards < 1:
        print("berth prometheus shards: give --shards N (N >= 1)", file=sys.stderr)
        return EXIT_USAGE
    inventory = load_inventory_for(args)
    for node in inventory.nodes:
        print(f"{node.name}\t{shard_of(node.name, args.shards)}/{args.shards}")
    return EXIT_OK
