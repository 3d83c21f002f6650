"""Endpoints that lie: every misbehaviour becomes a node error with a clear reason, in bounded time
and memory, and the healthy node beside it keeps updating.

One Fleet watches a well-behaved fake node and one fake node per scenario at
once (a fleet with many broken nodes is the realistic case, and it keeps the
run short); each scenario's verdict is checked by its own test.  The fake
nodes run in a child process (tests/faults/hostile_server.py), so Berth's RSS
and timing are measured alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import faultkit
import psutil
import pytest
from hostile_server import HUGE, HostileProcess, container_id

from console.config import Inventory
from console.engine import client as engine_client
from console.fleet.model import NodeState
from console.fleet.poller import Fleet, NodeWatcher

MiB = 1024 * 1024
DETECT_WITHIN = 15.0
LINE_SECONDS = 3.0  # MAX_LINE_SECONDS for this run: a trickling stream is cut after this long
NODE_TIMEOUT = 2.0  # per-call timeout of the hostile fake nodes (the inventory's `timeout`)
GOOD_SETTLE = 3.0  # seconds the good node is watched after every case has shown its verdict
DOWN, DEGRADED = NodeState.DOWN, NodeState.DEGRADED


@dataclass(frozen=True)
class Case:
    scenario: str
    state: NodeState
    reason: str  # must appear in the node's error text
    timeout: float = NODE_TIMEOUT  # per-call timeout: long enough to read 64 MiB on a busy box where needed


CASES = [
    Case("ping-no-api-version", DOWN, "no API-Version header: not a Docker Engine API"),
    Case("ping-old-api", DOWN, "daemon API 1.30 is older than the minimum 1.41"),
    Case("ping-500-json", DOWN, "500 daemon is shutting down"),
    Case("ping-redirect", DOWN, "unexpected redirect to http://attacker.invalid/_ping"),
    Case("ping-huge-streamed", DOWN, "body exceeds the"),
    Case("ping-trickle", DOWN, f"no complete answer within {NODE_TIMEOUT:g}s"),
    Case("list-invalid-json", DOWN, "GET /containers/json: invalid JSON"),
    Case("list-html", DOWN, "text/html"),
    Case("list-wrong-shape", DOWN, "expected a JSON array, got dict"),
    Case("list-500-json", DOWN, "500 containerd: connection refused"),
    Case("list-502-text", DOWN, "502 upstream connect error"),
    Case("list-503-empty", DOWN, "503"),
    Case("list-redirect", DOWN, "unexpected redirect to http://attacker.invalid/containers/json"),
    Case("list-huge-declared", DOWN, f"body of {HUGE} bytes exceeds the {engine_client.MAX_JSON_BYTES}-byte limit"),
    Case("list-huge-streamed", DOWN, f"body exceeds the {engine_client.MAX_JSON_BYTES}-byte limit", timeout=30),
    Case("list-trickle", DOWN, f"no complete answer within {NODE_TIMEOUT:g}s"),
    Case("list-reset", DOWN, "GET /containers/json: connection lost while reading"),
    Case("events-endless-line", DEGRADED, f"GET /events: stream line exceeds {engine_client.MAX_LINE_BYTES} bytes"),
    Case("events-not-json", DEGRADED, "GET /events: invalid JSON in stream"),
    Case("events-trickle", DEGRADED, f"GET /events: stream line incomplete after {LINE_SECONDS:g}s"),
    Case("events-truncated", DEGRADED, "GET /events: stream ended in the middle of a line"),
    Case("stats-not-stats", DEGRADED, "bad stats sample"),
    Case("stats-endless-line", DEGRADED, f"stream line exceeds {engine_client.MAX_LINE_BYTES} bytes"),
    Case("stats-trickle", DEGRADED, f"stream line incomplete after {LINE_SECONDS:g}s"),
    Case("stats-truncated", DEGRADED, "stream ended in the middle of a line"),
    Case("stats-cut", DEGRADED, "stream ended in the middle of a line"),
    Case("stats-500-json", DEGRADED, "HTTP 500: cgroup stats: no such file or directory"),
]
# A case's first error may carry another reason (say a stats complaint before the listing's); the
# run waits for every case's expected verdict, up to the slowest case's call timeout and a margin.
RUN_WITHIN = max(DETECT_WITHIN, *(c.timeout for c in CASES)) + 5.0


@dataclass
class Seen:
    """What the run saw of one node."""

    first_bad: float | None = None  # seconds after start
    errors: dict[tuple[NodeState, str], float] = field(default_factory=dict)  # (state, error) -> first seen at
    states: set[NodeState] = field(default_factory=set)


@dataclass
class Run:
    seen: dict[str, Seen]
    good_gaps: list[float]  # seconds between successive new samples of the good node's container
    good_states: set[NodeState]
    rss_growth: int
    elapsed: float


def _node(scenario: str) -> str:
    return f"h-{scenario}"


@pytest.fixture(scope="module")
def hostile_run() -> Iterator[Run]:
    """Given one good and one fake node per scenario in a single Fleet, watch until every bad node
    has been shown with its case's expected state and reason (or RUN_WITHIN passed), then
    GOOD_SETTLE more for the good node. The good node has the default call timeout: nothing here
    is about its timeout, and one listing slowed by the loaded box must not fail it."""
    nodes = {"good": "ok", **{_node(c.scenario): c.scenario for c in CASES}}
    mp = pytest.MonkeyPatch()
    mp.setattr(engine_client, "MAX_LINE_SECONDS", LINE_SECONDS)
    try:
        with HostileProcess(nodes) as servers:
            timeouts = {_node(c.scenario): c.timeout for c in CASES}
            # the good node keeps the default timeout (no `timeout` line)
            inv = faultkit.inventory([(n, servers.url(n), *([f"timeout = {timeouts[n]:g}"] if n in timeouts else ()))
                                      for n in nodes])
            yield asyncio.run(_watch(inv, container_id("good")))
    finally:
        mp.undo()


async def _watch(inv: Inventory, good_cid: str) -> Run:
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = asyncio.Event()
    sampler = asyncio.create_task(faultkit.rss_peak(stop, peak))
    seen = {n.name: Seen() for n in inv.nodes if n.name != "good"}
    pending = {_node(c.scenario): c for c in CASES}  # cases not yet shown with their expected verdict
    gaps: list[float] = []
    good_states: set[NodeState] = set()
    async with Fleet(inv) as fleet:
        await faultkit.wait_for(fleet, lambda s: faultkit.up(s, "good"), 10, "good node up")
        start = time.monotonic()
        last_sample, last_change = None, start
        settle_until = None
        while True:
            now = time.monotonic()
            snap = fleet.publish()
            for n in snap.nodes:
                if n.name == "good":
                    good_states.add(n.state)
                    continue
                s = seen[n.name]
                s.states.add(n.state)
                if n.state in (DOWN, DEGRADED) and n.error:
                    s.errors.setdefault((n.state, n.error), now - start)
                    if s.first_bad is None:
                        s.first_bad = now - start
                    case = pending.get(n.name)
                    if case is not None and n.state is case.state and case.reason in n.error:
                        del pending[n.name]
            c = faultkit.container(snap, good_cid)
            if c is not None and c.sampled_at != last_sample:
                if last_sample is not None:
                    gaps.append(now - last_change)
                last_sample, last_change = c.sampled_at, now
            if settle_until is None and (not pending or now - start > RUN_WITHIN):
                settle_until = now + GOOD_SETTLE
            if settle_until is not None and now > settle_until:
                break
            await asyncio.sleep(0.05)
        gaps.append(time.monotonic() - last_change)
        elapsed = time.monotonic() - start
    stop.set()
    await sampler
    return Run(seen, gaps, good_states, peak[0] - base, elapsed)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.scenario)
def test_hostile_endpoint_is_shown_as_a_node_error_with_a_clear_reason(hostile_run: Run, case: Case) -> None:
    seen = hostile_run.seen[_node(case.scenario)]
    assert seen.first_bad is not None, f"{case.scenario}: never shown down or degraded; states {seen.states}"
    assert seen.first_bad < DETECT_WITHIN
    matching = {err: at for (st, err), at in seen.errors.items() if st is case.state and case.reason in err}
    assert matching, (f"{case.scenario}: expected {case.state.value} with {case.reason!r}; "
                      f"saw {sorted((st.value, e) for st, e in seen.errors)}")
    for (_, err) in seen.errors:
        assert "internal error" not in err, f"{case.scenario}: a bug, not a reason: {err}"
    err, at = min(matching.items(), key=lambda kv: kv[1])
    faultkit.record(faultkit.Timing(f"hostile: {case.scenario}", at, None, case.state.value, err))


def test_the_good_node_kept_updating_beside_all_hostile_ones(hostile_run: Run) -> None:
    assert hostile_run.good_states == {NodeState.UP}
    # samples every 0.5 s; a gap of more than 3 s means a hostile node starved the good one
    assert max(hostile_run.good_gaps) < 3.0, f"longest gap between good samples {max(hostile_run.good_gaps):.2f}s"
    assert len(hostile_run.good_gaps) >= hostile_run.elapsed / 1.5


def test_memory_stays_bounded_while_hostile_nodes_stream_200_mib(hostile_run: Run) -> None:
    """Three nodes stream endless bodies at once (ping, list, events and stats lines): Berth keeps
    at most one bounded body per request (64 MiB JSON, 4 MiB line), so far less than they send."""
    print(f"\nRSS growth with {len(CASES)} hostile nodes: {hostile_run.rss_growth / MiB:.0f} MiB")
    assert hostile_run.rss_growth < 3 * engine_client.MAX_JSON_BYTES


async def test_a_node_streaming_endless_bodies_costs_one_bounded_body_not_one_per_retry() -> None:
    """Given a healthy fake node that turns into one streaming 200 MiB JSON bodies, Berth retries it
    every few seconds; each attempt is cut at the 64 MiB limit and freed at once (not left for the
    cyclic GC with the traceback), so RSS grows by about one body however many retries happen.
    Switched back to a good daemon, the node is up again by itself."""
    with HostileProcess({"good": "ok", "huge": "ok"}) as servers:
        inv = faultkit.inventory([(n, servers.url(n)) for n in ("good", "huge")])
        async with Fleet(inv) as fleet:
            await faultkit.wait_for(fleet, lambda s: faultkit.up(s, "good") and faultkit.up(s, "huge"), 10)
            base = psutil.Process().memory_info().rss
            peak, stop = [base], asyncio.Event()
            sampler = asyncio.create_task(faultkit.rss_peak(stop, peak))
            servers.set_scenario("huge", "list-huge-streamed")
            started = time.monotonic()
            # the next listing (every 10 s) or a reconnect meets the endless body
            snap = await faultkit.wait_for(fleet, lambda s: faultkit.bad(s, "huge"), 20, "huge shown down")
            detect = time.monotonic() - started
            attempts = servers.stats("huge")["requests"].get("/containers/json", 0)
            while servers.stats("huge")["requests"].get("/containers/json", 0) < attempts + 3:
                await asyncio.sleep(0.2)  # three more full 64 MiB attempts (backoff 0.5, 1, 2 s...)
                assert time.monotonic() - started < 40
            stop.set()
            await sampler
            growth = peak[0] - base
            servers.set_scenario("huge", "ok")
            healthy = time.monotonic()
            await faultkit.wait_for(fleet, lambda s: faultkit.up(s, "huge"), 15, "huge back up")
            recover = time.monotonic() - healthy
    node = snap.node("huge")
    assert node is not None and node.error
    assert f"body exceeds the {engine_client.MAX_JSON_BYTES}-byte limit" in node.error
    faultkit.record(faultkit.Timing("hostile: endless 200 MiB /containers/json, then healed", detect, recover,
                                    node.state.value, node.error, f"RSS growth {growth / MiB:.0f} MiB"))
    assert growth < engine_client.MAX_JSON_BYTES + 32 * MiB, f"RSS grew {growth / MiB:.0f} MiB"


async def test_events_of_unknown_types_and_garbage_fields_are_ignored_and_real_ones_still_apply() -> None:
    """Given a node whose event stream mixes plugin events, unknown actions, non-object lines and
    fields of the wrong type with one real rename: the node stays up, nothing is invented, and the
    rename (the only source of the new name: the listing runs once an hour here) is applied."""
    with HostileProcess({"good": "ok", "odd": "events-garbage"}) as servers:
        inv = faultkit.inventory([(n, servers.url(n)) for n in ("good", "odd")])
        states: set[NodeState] = set()
        fleet = Fleet(inv, watcher_factory=partial(NodeWatcher, list_interval=3600))
        fleet.subscribe(lambda s: states.add(faultkit.state(s, "odd")))
        async with fleet:
            snap = await faultkit.wait_for(
                fleet, lambda s: any(c.name == "renamed-by-event" for c in s.containers_on("odd")), 10,
                "the real rename applied after the garbage")
            await asyncio.sleep(1.0)  # any late effect of the garbage would show in the next snapshots
            snap = fleet.publish()
    assert states <= {NodeState.CONNECTING, NodeState.UP}, states
    assert [c.id for c in snap.containers_on("odd")] == [container_id("odd")]
    assert faultkit.up(snap, "good") and faultkit.up(snap, "odd")


async def test_a_node_whose_info_lies_about_numbers_does_not_stop_the_fleet_publishing() -> None:
    """/info says NCPU is "lots": that node is down with the reason, and the fleet keeps publishing
    (a ValueError out of one node's snapshot used to kill the publisher for every node)."""
    with HostileProcess({"good": "ok", "liar": "info-garbage-numbers"}) as servers:
        inv = faultkit.inventory([(n, servers.url(n)) for n in ("good", "liar")])
        async with Fleet(inv) as fleet:
            await asyncio.sleep(3.0)  # let the liar connect
            mark = time.time()
            snap = await faultkit.wait_for(
                fleet, lambda s: faultkit.up(s, "good") and faultkit.sampled_since(s, container_id("good"), mark),
                10, "the good node keeps updating")
            assert fleet.latest is not None and fleet.latest.taken_at >= mark  # the publisher is alive
    node = snap.node("liar")
    assert node is not None and node.state is NodeState.DOWN
    assert "GET /info: field NCPU is not a count: 'lots'" in (node.error or ""), node.error


async def test_a_node_degraded_by_a_bad_event_stream_is_up_again_once_the_stream_is_healthy() -> None:
    """A quiet node brings no event to clear an old complaint: it must be up again once its event
    stream has reopened cleanly (it once stayed degraded with the stale reason forever)."""
    with HostileProcess({"good": "ok", "flaky": "events-not-json"}) as servers:
        inv = faultkit.inventory([(n, servers.url(n)) for n in ("good", "flaky")])
        async with Fleet(inv) as fleet:
            await faultkit.wait_for(fleet, lambda s: faultkit.state(s, "flaky") is DEGRADED, 10, "flaky degraded")
            servers.set_scenario("flaky", "ok")
            healed = time.monotonic()
            await faultkit.wait_for(fleet, lambda s: faultkit.up(s, "flaky"), 10, "flaky up again")
    faultkit.record(faultkit.Timing("hostile: bad event stream, then healed", None, time.monotonic() - healed,
                                    "degraded", "events: invalid JSON in stream"))


async def test_a_stats_stream_cut_again_and_again_keeps_the_node_degraded_long_enough_to_be_seen() -> None:
    """A stream cut after every couple of samples: a good sample once cleared the complaint at
    once, so the node was degraded for 1-4 ms per cycle, between two snapshots, and nobody saw it.
    Every change of the node's state is recorded (the watcher's own on_change), so the measure does
    not depend on when snapshots happen to be taken: a spell degraded by the stats stream must last
    at least a second, two publish intervals."""
    with HostileProcess({"good": "ok", "flap": "stats-flapping"}) as servers:
        inv = faultkit.inventory([(n, servers.url(n)) for n in ("good", "flap")])
        fleet = Fleet(inv)
        watcher = next(w for w in fleet.watchers if w.name == "flap")
        changes: list[tuple[float, bool]] = []  # (when, degraded because of the stats stream)

        def stats_degraded() -> bool:
            return watcher.state is DEGRADED and "stats of" in (watcher.error or "")

        inner = watcher.on_change

        def record(*args: object) -> None:
            if not changes or changes[-1][1] != stats_degraded():
                changes.append((time.monotonic(), stats_degraded()))
            inner(*args)

        watcher.on_change = record
        async with fleet:
            await faultkit.wait_for(fleet, lambda s: any(bad for _, bad in changes), 15,
                                    "flap degraded by its stats stream at least once")
            await asyncio.sleep(4.0)  # two more cut-and-reconnect cycles
            changes.append((time.monotonic(), stats_degraded()))
    spells = [b[0] - a[0] for a, b in zip(changes, changes[1:], strict=False) if a[1]]
    assert spells and max(spells) >= 1.0, f"degraded spells {[round(x, 3) for x in spells]} s"
