"""`berth metrics` (a poller serving /metrics, nothing else) and `berth prometheus rules`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from console.config import resolve_inventory

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
    from console.fleet.runner import FleetThread
    from console.metrics.exposition import parse_listen, start_exposition
    from console.metrics.shard import parse_shard, shard_inventory

    try:
        listen = parse_listen(args.listen)
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        print(f"berth metrics: {exc}", file=sys.stderr)
        return EXIT_USAGE
    inventory = resolve_inventory(args.inventory)
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

    if args.action == "rules":
        from console.metrics.rules import render_rules

        inventory = resolve_inventory(args.inventory)
        sys.stdout.write(render_rules(inventory.alerts))
        return EXIT_OK
    from console.metrics.shard import shard_of

    if not args.shards or args.shards < 1:
        print("berth prometheus shards: give --shards N (N >= 1)", file=sys.stderr)
        return EXIT_USAGE
    inventory = resolve_inventory(args.inventory)
    for node in inventory.nodes:
        print(f"{node.name}\t{shard_of(node.name, args.shards)}/{args.shards}")
    return EXIT_OK


# -- reading fleets back from Prometheus -----------------------------------------------------------

TOKEN_ENV, PASSWORD_ENV = "BERTH_PROMETHEUS_TOKEN", "BERTH_PROMETHEUS_PASSWORD"


def add_read_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """`--prometheus URL` and its credentials, for the console and `status` (global options)."""
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument("--prometheus", metavar="URL", default=d,
                        help="read the fleet from Prometheus (the berth_* series of every shard) instead of "
                             "polling the nodes; actions still go to nodes in the local inventory")
    parser.add_argument("--prometheus-token-file", metavar="PATH", default=d,
                        help=f"bearer token for --prometheus, read from this file (or ${TOKEN_ENV})")
    parser.add_argument("--prometheus-user", metavar="USER", default=d,
                        help=f"basic auth user for --prometheus; the password from ${PASSWORD_ENV}")
    parser.add_argument("--prometheus-ca", metavar="PATH", default=d,
                        help="CA bundle that verifies an https --prometheus (default: the system's)")
    parser.add_argument("--prometheus-insecure", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="do not verify the TLS certificate of --prometheus (anyone on the path can "
                             "read and forge the fleet)")


class ReadOptionError(ValueError):
    """A bad --prometheus option: one line."""


def reader_from(args: argparse.Namespace, env: dict[str, str] | None = None) -> Any:
    """A PromReader for ``args.prometheus`` with its credentials; ReadOptionError says what is wrong."""
    import os
    import urllib.parse
    from pathlib import Path

    from console.metrics.promql import PromAuth, PromReader

    env = dict(os.environ) if env is None else env
    url = str(args.prometheus).strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReadOptionError(f"--prometheus {url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ReadOptionError(f"--prometheus {url!r} must not have a query or fragment")
    token = env.get(TOKEN_ENV) or None
    token_file = getattr(args, "prometheus_token_file", None)
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ReadOptionError(f"--prometheus-token-file {token_file}: {exc.strerror or exc}") from None
        if not token:
            raise ReadOptionError(f"--prometheus-token-file {token_file} is empty")
    user = getattr(args, "prometheus_user", None)
    password = env.get(PASSWORD_ENV)
    if parts.username is not None:  # https://user:pass@host works too, kept out of the URL we print
        user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if user is not None and password is None:
        raise ReadOptionError(f"--prometheus-user {user}: set ${PASSWORD_ENV} to its password")
    if token and user is not None:
        raise ReadOptionError("--prometheus: give a bearer token or a user, not both")
    ca = getattr(args, "prometheus_ca", None)
    if ca and not Path(ca).is_file():
        raise ReadOptionError(f"--prometheus-ca {ca}: no such file")
    insecure = bool(getattr(args, "prometheus_insecure", False))
    if (token or user is not None) and parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1",
                                                                                          "::1"):
        raise ReadOptionError(f"--prometheus {url!r}: credentials over plain http would travel in clear; "
                              "use https://")
    return PromReader(url, PromAuth(token=token, user=user, password=password, ca=Path(ca) if ca else None,
                                    verify=not insecure))


def cmd_status_prometheus(args: argparse.Namespace) -> int:
    """`berth status --prometheus URL [--json|--watch]`: the same output, built from PromQL."""
    import asyncio

    try:
        reader = reader_from(args)
    except ReadOptionError as exc:
        print(f"berth status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_status(reader, args))
    except KeyboardInterrupt:
        return EXIT_OK


async def _status(reader: Any, args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from console import fmt
    from console.metrics.promql import PromError
    from console.status import incomplete_line, render_tables, summary_line, to_json

    try:
        snap = await reader.snapshot()
        if not snap.nodes:
            print(f"berth status: prometheus {reader.url} has no berth_* series: is a `berth metrics` shard "
                  "scraped by it?", file=sys.stderr)
            return 1
        if args.watch:
            while True:
                print(summary_line(snap), flush=True)
                await asyncio.sleep(args.interval)
                snap = await reader.snapshot()
        # as `berth status`: running containers on live nodes without a CPU figure make the result partial
        missing = [{"node": c.node, "id": c.id, "name": c.name, "reason": "no CPU sample in Prometheus"}
                   for c in sorted(snap.containers, key=lambda c: (c.node, c.name))
                   if c.running and not c.stale and c.cpu_percent is None]
        if args.json:
            doc = to_json(snap)
            doc["incomplete"] = missing
            sys.stdout.write(fmt.json_safe(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()) + "\n")
        else:
            sys.stdout.write(render_tables(snap) + "\n")
        if missing:
            print(incomplete_line(missing), file=sys.stderr, flush=True)
        return 0 if all(n.up for n in snap.nodes) and not missing else 1
    except PromError as exc:
        print(f"berth status: {exc}", file=sys.stderr)
        return 1
    finally:
        await reader.aclose()
