"""A simulated fleet behind the real Docker Engine API: for the demo, the benchmarks and contract tests.

model   deterministic layout and load (seeded): tenants, limits, the hot tenant, the incident characters
daemon  one node's state machine: containers, networks, events ring, restart policies, OOM, health
samples stats documents for cgroup v1 and v2 hosts
server  the Engine API over HTTP/1.1 on a unix socket (asyncio + h11), outages (refuse, reset, hang)
node    one node = daemon + server (+ flapping); `python -m console.sim.node`
fleet   SimFleet (a process per node, or all in-process), start_demo_fleet(), the inventory
cli     `berth sim`;  bench: `python -m console.sim.bench` (CPU of one node under N stats streams)

Nothing is imported here, so a node process loads only what it serves with.
"""
