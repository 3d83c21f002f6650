"""Real daemons that die, stall, lose their socket or slow down: Berth names the bad node, the others
keep updating, and the bad node comes back by itself.

Each test drives an in-process Fleet over the module's 3-node lab (one idle
container per node, sampled about once a second), injects one fault into
`lab-n1`, and measures:

- time to detect: from the fault to `lab-n1` shown down or degraded, with a reason;
- time to recover: from the daemon being healthy again to `lab-n1` shown up.

Meanwhile the other two nodes must stay up and their samples' `sampled_at`
must keep advancing. Timings are printed (`-s`) and collected in
tests/faults/fault_timings.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import faultkit
import pytest
from delayproxy import DelayProxy
from dockerlab import BUSYBOX_REF, Lab, LabNode

from console.config import Inventory
from console.fleet.model import FleetSnapshot, NodeState
from console.fleet.poller import Fleet

pytestmark = pytest.mark.lab

DETECT_WITHIN = 15.0  # a dead, frozen or socketless node is shown bad within this
RECOVER_WITHIN = 20.0  # ...and up again within this once its daemon is healthy
VICTIM = "lab-n1"


@dataclass
class Watch:
    """Every published snapshot's view of the healthy nodes, while a fault is on."""

    others: list[str]
    bad_states: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __call__(self, snap: FleetSnapshot) -> None:
        for name in self.others:
            n = snap.node(name)
            if n is not None and n.state is not NodeState.UP:
                self.bad_states.append((name, n.state.value, n.error))


def cids(lab: Lab) -> dict[str, str]:
    """node name -> id of its idle container."""
    return {p.node: p.id for p in lab.workload.values()}


def lab_inventory(lab: Lab, urls: dict[str, str] | None = None) -> Inventory:
    urls = urls or {}
    return faultkit.inventory([(n.name, urls.get(n.name, n.url)) for n in lab.nodes])


async def all_up_and_sampling(fleet: Fleet, ids: dict[str, str], timeout: float = 30.0) -> FleetSnapshot:
    since = time.time()
    return await faultkit.wait_for(
        fleet, lambda s: all(faultkit.up(s, n) and faultkit.sampled_since(s, c, since) for n, c in ids.items()),
        timeout, "every node up with fresh samples")


SAMPLING_MARGIN = 3.0  # a loaded 2-core box: the loop, the pump's 0.25 s tick, dockerd's <= 1 s collection


def sampled_within(fleet: Fleet, nodes: set[str]) -> float:
    """The longest legitimate wait for a fresh sample of an idle container on any of `nodes`,
    from the product's own cadence (console/fleet/poller.py) rather than a guess.

    An idle container drops to the idle cadence after IDLE_SAMPLES idle samples; that last streamed
    sample schedules the first one-shot `idle_interval * (1 + spread)` later, spread in [0, 1), so
    under two idle intervals. The idle loop notices on its next scan (1 s; bounded here by the
    heartbeat), and the one-shot's answer is bounded by the node's call timeout. A node with no idle
    cadence (idle_interval 0: TLS) streams at 1 Hz, which this bound covers too. A node that stops
    sampling altogether still fails the wait.
    """
    return max(2 * max(w.idle_interval, 1.0) + w.heartbeat + w.cfg.timeout
               for w in fleet.watchers if w.name in nodes) + SAMPLING_MARGIN


async def others_keep_sampling(fleet: Fleet, ids: dict[str, str], victim: str) -> None:
    """Every other node's container gets a sample newer than now, within the idle cadence's bound."""
    mark = time.time()
    ids = {n: c for n, c in ids.items() if n != victim}
    await faultkit.wait_for(
        fleet, lambda s: all(faultkit.up(s, n) and faultkit.sampled_since(s, c, mark) for n, c in ids.items()),
        sampled_within(fleet, set(ids)), "the other nodes keep sampling while one is bad")


async def exercise(fleet: Fleet, ids: dict[str, str], fault: str, inject: Callable[[], None],
                   restore: Callable[[], None], *, reason: tuple[str, ...], victim: str = VICTIM,
                   detect_within: float = DETECT_WITHIN) -> faultkit.Timing:
    """Inject, wait for the victim to be shown bad, check the others, restore, wait for recovery."""
    watch = Watch([n for n in ids if n != victim])
    await all_up_and_sampling(fleet, ids)
    fleet.subscribe(watch)
    started = time.monotonic()
    await asyncio.to_thread(inject)
    snap = await faultkit.wait_for(fleet, lambda s: faultkit.bad(s, victim), detect_within,
                                   f"{fault}: {victim} shown down or degraded")
    detect = time.monotonic() - started
    node = snap.node(victim)
    assert node is not None and node.error
    assert any(r in node.error for r in reason), f"{fault}: reason {node.error!r} names none of {reason}"
    await others_keep_sampling(fleet, ids, victim)
    # still shown bad while the fault lasts (no flapping back to up on stale data)
    assert faultkit.bad(fleet.publish(), victim), f"{fault}: {victim} flapped back while still faulty"

    await asyncio.to_thread(restore)
    healthy = time.monotonic()
    await faultkit.wait_for(fleet, lambda s: faultkit.up(s, victim), RECOVER_WITHIN, f"{fault}: {victim} back up")
    recover = time.monotonic() - healthy
    assert watch.bad_states == [], f"{fault}: healthy nodes were shown bad: {watch.bad_states[:3]}"
    return faultkit.Timing(fault, detect, recover, node.state.value, node.error)


async def fresh_samples_after(fleet: Fleet, cid: str, timeout: float = 15.0) -> float:
    mark, started = time.time(), time.monotonic()
    await faultkit.wait_for(fleet, lambda s: faultkit.sampled_since(s, cid, mark), timeout,
                            f"{cid[:12]} streams stats again")
    return time.monotonic() - started


# -- the faults ------------------------------------------------------------------


async def test_sigkilled_daemon_is_shown_down_and_comes_back_when_restarted(healthy_lab: Lab) -> None:
    node = healthy_lab.node(VICTIM)

    def restart_container() -> None:  # without live-restore, the daemon's restart stopped it
        with closing(node.client()) as client:
            client.containers.get(cids(healthy_lab)[VICTIM]).start()

    async with Fleet(lab_inventory(healthy_lab)) as fleet:
        # recovery is timed from the restarted daemon answering /_ping (node.start returns then)
        timing = await exercise(fleet, cids(healthy_lab), "dockerd SIGKILLed, then restarted", node.kill,
                                node.start, reason=("connection refused", "no socket", "connection lost"))
        assert timing.state == "down"
        await asyncio.to_thread(restart_container)
        again = await fresh_samples_after(fleet, cids(healthy_lab)[VICTIM])
    faultkit.record(faultkit.Timing(timing.fault, timing.detect, timing.recover, timing.state, timing.reason,
                                    f"samples again {again:.1f}s after up"))


async def test_frozen_daemon_is_shown_down_within_the_timeout_and_recovers_when_thawed(healthy_lab: Lab) -> None:
    """SIGSTOP: the kernel still accepts connections, nothing answers. Only a bounded call can tell."""
    node = healthy_lab.node(VICTIM)
    async with Fleet(lab_inventory(healthy_lab)) as fleet:
        timing = await exercise(fleet, cids(healthy_lab), "dockerd SIGSTOPped (frozen), then SIGCONT", node.freeze,
                                node.thaw, reason=("no answer within", "no complete answer within", "timed out"))
        assert timing.state == "down"
        again = await fresh_samples_after(fleet, cids(healthy_lab)[VICTIM])
    faultkit.record(faultkit.Timing(timing.fault, timing.detect, timing.recover, timing.state, timing.reason,
                                    f"samples again {again:.1f}s after up"))


async def test_removed_socket_is_shown_down_and_recovers_when_the_socket_is_back(healthy_lab: Lab) -> None:
    """The socket file is unlinked while dockerd runs: nobody can connect any more, though Berth's
    open connections still work. The node must not keep looking healthy on borrowed connections."""
    node = healthy_lab.node(VICTIM)
    hidden = Path(f"{node.sock}.hidden")

    def unlink() -> None:
        os.link(node.sock, hidden)  # keep the inode so the test can put the same socket back
        os.unlink(node.sock)

    def relink() -> None:
        os.link(hidden, node.sock)
        hidden.unlink()

    async with Fleet(lab_inventory(healthy_lab)) as fleet:
        timing = await exercise(fleet, cids(healthy_lab), "unix socket unlinked while dockerd runs, then restored",
                                unlink, relink, reason=("no socket at",))
        again = await fresh_samples_after(fleet, cids(healthy_lab)[VICTIM])
    faultkit.record(faultkit.Timing(timing.fault, timing.detect, timing.recover, timing.state, timing.reason,
                                    f"samples again {again:.1f}s after up"))


async def test_latency_on_a_tcp_node_slow_is_degraded_not_down_and_very_slow_is_down(healthy_lab: Lab) -> None:
    """lab-n1 reached over tcp://127.0.0.1 through a delay line (userspace; see the netem test).

    300 ms each way is a slow WAN link, not a fault: the node stays up and keeps sampling.
    1.5 s each way (3 s per call: over slow_after, under the 5 s call timeout) is degraded, "slow".
    3.5 s each way (7 s per call) exceeds the call timeout: down. Removing the delay brings it back.
    """
    node = healthy_lab.node(VICTIM)
    with DelayProxy(str(node.sock)) as proxy:
        inv = lab_inventory(healthy_lab, {VICTIM: proxy.url})
        async with Fleet(inv) as fleet:
            await latency_phases(fleet, cids(healthy_lab), proxy_delay=lambda d: setattr(proxy, "delay", d),
                                 label="userspace delay line")


async def latency_phases(fleet: Fleet, ids: dict[str, str], proxy_delay: Callable[[float], None],
                         label: str, *, down_phase: bool = True) -> None:
    await all_up_and_sampling(fleet, ids)
    # 300 ms each way: no false alarm
    await asyncio.to_thread(proxy_delay, 0.3)
    watch = Watch([VICTIM])
    fleet.subscribe(watch)
    cid = ids[VICTIM]
    mark = time.time()
    await asyncio.sleep(12.0)  # watching for a false alarm: longer than one list interval (10 s)
    snap = fleet.publish()
    assert faultkit.up(snap, VICTIM) and watch.bad_states == [], f"300 ms latency raised {watch.bad_states[:2]}"
    assert faultkit.sampled_since(snap, cid, mark), "samples stopped at 300 ms latency"
    faultkit.record(faultkit.Timing(f"latency 300 ms each way ({label})", None, None, "up", "no alarm",
                                    "stays up for 12 s, samples keep coming"))

    # 1.5 s each way: every call takes over slow_after (2 s) but finishes within the 5 s timeout
    degraded = await exercise(fleet, ids, f"latency 1.5 s each way ({label})", lambda: proxy_delay(1.5),
                              lambda: proxy_delay(0.0), reason=("slow",), detect_within=25.0)
    faultkit.record(faultkit.Timing(degraded.fault, degraded.detect, degraded.recover, degraded.state,
                                    degraded.reason, "bound 25 s: slowness shows on the 10 s listing"))
    assert degraded.state == "degraded"

    if not down_phase:
        return
    # 3.5 s each way: calls exceed the 5 s timeout
    down = await exercise(fleet, ids, f"latency 3.5 s each way ({label})", lambda: proxy_delay(3.5),
                          lambda: proxy_delay(0.0), reason=("no answer within", "no complete answer within"))
    faultkit.record(down)
    assert down.state == "down"


# -- kernel netem ------------------------------------------------------------------

# Per test process, so two runs on one host do not collide (interface names: at most 15 characters).
NETNS = f"berth-faults-{os.getpid()}"
VETH_HOST, VETH_NS = f"bfh{os.getpid() % 10**6}", f"bfn{os.getpid() % 10**6}"
HOST_IP, NS_IP = f"10.231.{os.getpid() % 250}.1", f"10.231.{os.getpid() % 250}.2"


def netem_unavailable() -> str | None:
    if shutil.which("ip") is None or shutil.which("tc") is None or shutil.which("nsenter") is None:
        return "needs ip, tc and nsenter (iproute2, util-linux)"
    probe = f"{NETNS}-probe"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True, timeout=10)
        subprocess.run(["ip", "-n", probe, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=10)
        got = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                              "delay", "1ms"], capture_output=True, text=True, timeout=10, check=False)
        if got.returncode != 0:
            return f"tc netem unavailable in this kernel ({got.stderr.strip() or got.returncode})"
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"network namespaces unavailable ({exc})"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10, check=False)


class NetnsNode(LabNode):
    """A lab node whose dockerd lives in a network namespace and also listens on tcp://NS_IP:2375."""

    def command(self) -> list[str]:
        return ["nsenter", f"--net=/var/run/netns/{NETNS}", *super().command(), "--host", f"tcp://{NS_IP}:2375"]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def netem_delay(seconds: float) -> None:
    """Delay every packet `seconds` in each direction of the veth pair."""
    for dev, ns in ((VETH_HOST, None), (VETH_NS, NETNS)):
        cmd = ["tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", f"{int(seconds * 1000)}ms"]
        sh(*(["ip", "netns", "exec", ns, *cmd] if ns else cmd))


@pytest.fixture
def netns_node(healthy_lab: Lab) -> Iterator[tuple[LabNode, str]]:
    """A dockerd in its own network namespace behind a veth pair, with one idle container."""
    reason = netem_unavailable()
    if reason:
        pytest.skip(f"NETEM SKIPPED: {reason}; the userspace delay-line test covers latency")
    node = NetnsNode(VICTIM, Path(healthy_lab.base) / "netns")
    try:
        sh("ip", "netns", "add", NETNS)
        sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        sh("ip", "link", "set", VETH_NS, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", VETH_HOST)
        sh("ip", "link", "set", VETH_HOST, "up")
        sh("ip", "-n", NETNS, "addr", "add", f"{NS_IP}/30", "dev", VETH_NS)
        sh("ip", "-n", NETNS, "link", "set", VETH_NS, "up")
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        node.start()
        node.import_image(healthy_lab.image_tar)
        with closing(node.client()) as client:
            c = client.containers.run(BUSYBOX_REF, faultkit.IDLE, name="idle-netns", detach=True, init=True)
        yield node, str(c.id)
    finally:
        node.destroy()
        subprocess.run(["ip", "link", "del", VETH_HOST], capture_output=True, timeout=10, check=False)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, timeout=10, check=False)


async def test_netem_latency_on_a_tcp_node_in_its_own_network_namespace(
        healthy_lab: Lab, netns_node: tuple[LabNode, str]) -> None:
    """The delay-line test's phases with kernel netem on a veth pair, where the kernel has sch_netem.

    dockerd runs in its own network namespace (entered with nsenter, so its mounts stay the host's)
    and listens on tcp://10.231.x.2:2375, plain tcp on a private veth: `insecure = true`. Plain tcp
    makes dockerd 20.10 wait 15 s at start (its own warning), hence a slow fixture."""
    _, cid = netns_node
    ids = {**cids(healthy_lab), VICTIM: cid}
    inv = faultkit.inventory([(VICTIM, f"tcp://{NS_IP}:2375", "insecure = true"),
                              *((n.name, n.url) for n in healthy_lab.nodes if n.name != VICTIM)])
    async with Fleet(inv) as fleet:
        # the timeout phase is the delay line's; here: no false alarm at 300 ms, degraded at 1.5 s
        await latency_phases(fleet, ids, netem_delay, "kernel netem on a veth pair", down_phase=False)


# -- the UI while a node is frozen -------------------------------------------------------


async def test_ui_keys_stay_fast_while_a_node_is_frozen(healthy_lab: Lab) -> None:
    """Pilot key presses through BerthApp fed by a real FleetThread (as `berth` runs it): latency
    while a node is frozen, against a healthy baseline."""
    pytest.importorskip("textual")
    try:
        from console.fleet.runner import FleetThread
        from console.ui.app import BerthApp
    except ImportError as exc:  # the UI is written by another engineer; say so rather than fail
        pytest.skip(f"UI not importable yet: {exc}")
    inv = lab_inventory(healthy_lab)
    app = BerthApp(feed=None, inventory=inv, read_only=True)
    feed = FleetThread(inv, app.deliver)
    app.feed = feed
    node = healthy_lab.node(VICTIM)
    keys = ["2", "down", "down", "up", "1", "down", "3", "1"]
    try:
        async with asyncio.timeout(150), app.run_test(size=(160, 48)) as pilot:
            await wait_app(pilot, lambda: app.snapshot is not None and all(
                n.up for n in app.snapshot.nodes), 30, "all nodes up in the app")
            baseline = await press_all(pilot, keys * 3)
            await asyncio.to_thread(node.freeze)
            try:
                # while Berth's calls to the frozen node hang, then once it is shown down
                frozen = await press_all(pilot, keys * 2)
                await wait_app(pilot, lambda: app.snapshot is not None and not app.snapshot.node(VICTIM).up,
                               DETECT_WITHIN, "frozen node shown in the app")
                frozen += await press_all(pilot, keys)
            finally:
                await asyncio.to_thread(node.thaw)
    finally:
        feed.stop()
    p95, base95 = statistics.quantiles(frozen, n=20)[-1], statistics.quantiles(baseline, n=20)[-1]
    faultkit.record(faultkit.Timing("UI key latency with a frozen node (Pilot)", None, None, "-",
                                    f"p95 {p95 * 1000:.0f} ms, max {max(frozen) * 1000:.0f} ms",
                                    f"healthy baseline p95 {base95 * 1000:.0f} ms, max {max(baseline) * 1000:.0f} ms"))
    # A loop blocked by the frozen node would show whole call timeouts (5 s) per key; pane switches
    # legitimately take a few hundred ms under Pilot on a loaded 2-core CI box.
    med, base_med = statistics.median(frozen), statistics.median(baseline)
    assert med < 2 * base_med + 0.25, f"keys slower with a frozen node: median {med:.3f}s vs {base_med:.3f}s"
    assert max(frozen) < 3.0


async def wait_app(pilot: object, cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await pilot.pause(0.1)  # type: ignore[attr-defined]


async def press_all(pilot: object, keys: list[str]) -> list[float]:
    out = []
    for key in keys:
        started = time.perf_counter()
        await pilot.press(key)  # type: ignore[attr-defined]
        out.append(time.perf_counter() - started)
    return out
