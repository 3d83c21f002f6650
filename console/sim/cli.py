"""`berth sim`: run a simulated fleet behind the real Engine API until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

EXIT_OK, EXIT_USAGE = 0, 2


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("sim", cmd_sim, "run a simulated fleet of Docker Engine API nodes (demo, benchmarks)")
    p.add_argument("--nodes", type=int, default=5, help="number of nodes (default 5)")
    p.add_argument("--containers-per-node", type=int, default=25, metavar="M",
                   help="containers per node (default 25)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same fleet (default 0)")
    p.add_argument("--dir", default=None, help="where node sockets and inventory.toml go (default: a temp dir)")
    p.add_argument("--cgroup", choices=("1", "2", "mixed"), default="mixed",
                   help="cgroup flavour of the nodes' stats (default mixed: alternating v1/v2)")
    p.add_argument("--tenants", type=int, default=5, help="number of tenants (default 5)")
    p.add_argument("--api-version", default="1.41", metavar="1.N",
                   help="newest Engine API the nodes serve, with that version's shapes for clients asking for "
                        "it (1.41 to 1.52; default 1.41, dockerd 20.10)")
    p.add_argument("--flap", default="120:20", metavar="UP:DOWN[:MODE]|off",
                   help="the last node (of 3 or more) is up UP s, then down DOWN s, repeatedly; MODE refuse "
                        "(default), reset or hang (default 120:20)")


def cmd_sim(args: argparse.Namespace) -> int:
    from console.sim.daemon import parse_sim_api_version
    from console.sim.fleet import SimError, SimFleet, run_until_signalled
    from console.sim.node import parse_flap

    try:
        flap = parse_flap(args.flap)
        api_version = parse_sim_api_version(args.api_version)
        if args.nodes < 1 or args.containers_per_node < 0:
            raise ValueError("--nodes must be >= 1 and --containers-per-node >= 0")
        fleet = SimFleet(args.nodes, args.containers_per_node, args.seed, args.dir, in_process=False,
                         cgroup=args.cgroup, tenants=args.tenants, flap=flap, api_version=api_version)
        fleet.start()
    except (ValueError, SimError, OSError) as exc:
        print(f"berth sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    layout = fleet.layout
    print(f"simulated fleet: {len(layout.nodes)} nodes, {sum(len(n.containers) for n in layout.nodes)} containers, "
          f"seed {args.seed}, API {api_version}; hot tenant {layout.hot_tenant} on {layout.hot_node}", flush=True)
    for node in layout.nodes:
        extra = f"  (flaps {args.flap})" if node.flap else ""
        print(f"  {node.name}  {node.ncpu} CPUs  cgroup v{node.cgroup}  {fleet.urls[node.name]}{extra}")
    print(f"inventory: {fleet.inventory_path}")
    print(f"run:       berth --inventory {shlex.quote(str(fleet.inventory_path))}")
    print("Ctrl-C stops the fleet.", flush=True)
    return run_until_signalled(fleet, out=lambda line: print(line, file=sys.stderr, flush=True))
