"""The simulated daemon's state machine, event ring and stats, driven directly (no HTTP).

Time-based behaviour is driven by calling `tick(now)` with a chosen clock, so these
tests do not wait for the wall clock except for dockerd's 100 ms restart backoff.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from console.engine.stats import cpu_percent, decode
from console.sim import model
from console.sim.daemon import EVENT_RING, ApiError, NotModified, SimDaemon
from console.sim.model import plan_fleet


def daemon(cgroup: str = "1", containers: int = 12, seed: int = 4) -> SimDaemon:
    return SimDaemon(plan_fleet(3, containers, seed=seed, cgroup=cgroup).nodes[1])


def role_daemon(role: str) -> tuple[SimDaemon, str]:
    """The daemon of the node that hosts the (only) container with this role, and that container's id."""
    fleet = plan_fleet(4, 12, seed=4)
    node, spec = fleet.containers(role)[0]
    return SimDaemon(node), spec.id


def actions(d: SimDaemon, cid: str | None = None, kind: str = "container") -> list[str]:
    return [doc["Action"] for _, doc, _ in d.ring if doc["Type"] == kind and (cid is None or doc["Actor"]["ID"] == cid)]


def busybox(d: SimDaemon, name: str, cmd: list[str], **extra: Any) -> str:
    return d.create(name, {"Image": "berth/busybox:test", "Cmd": cmd, "Labels": {"tenant": "acme"}, **extra})["Id"]


# -- events -------------------------------------------------------------------


async def test_since_is_inclusive_to_the_nanosecond_and_until_bounds_the_past() -> None:
    d = daemon()
    cid = busybox(d, "ev", ["sleep", "1000"])
    await d.start_container(cid)
    await d.pause_container(cid)
    await d.unpause_container(cid)
    stamps = [ns for ns, doc, _ in d.ring if doc["Type"] == "container"]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    accept = d.event_filter({"type": ["container"]})
    second = stamps[1]
    assert len(d.past_events(second, None, accept)) == len(stamps) - 1  # since == an event's time: included
    assert len(d.past_events(second + 1, None, accept)) == len(stamps) - 2
    assert len(d.past_events(stamps[0], second, accept)) == 2  # until is inclusive too
    assert d.past_events(None, None, accept) == []  # no since/until: only live events


async def test_the_ring_keeps_the_last_256_events_and_since_cannot_reach_past_it() -> None:
    d = daemon()
    cid = busybox(d, "churn", ["sleep", "1000"])
    await d.start_container(cid)
    first_ns = d.ring[0][0]
    for _ in range(200):
        await d.pause_container(cid)
        await d.unpause_container(cid)
    assert len(d.ring) == EVENT_RING == 256
    everything = d.past_events(0, None, d.event_filter({}))
    assert len(everything) == 256
    assert d.ring[0][0] > first_ns  # the create/start events fell out of the ring
    # A reader resuming from before the ring's start gets the ring, not the events it lost.
    assert len(d.past_events(first_ns, None, d.event_filter({}))) == 256
    assert orjson.loads(everything[0])["Action"] in ("pause", "unpause")


async def test_event_filters_match_like_dockerd() -> None:
    d = daemon()
    a = busybox(d, "alpha", ["sleep", "1000"])
    b = d.create("beta", {"Image": "berth/busybox:test", "Cmd": ["sleep", "9"], "Labels": {"tenant": "globex"}})["Id"]
    await d.start_container(a)
    await d.start_container(b)

    def past(f: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [orjson.loads(r) for r in d.past_events(0, None, d.event_filter(f))]

    assert {e["Actor"]["Attributes"]["name"] for e in past({"container": ["alp"]})} == {"alpha"}  # name prefix
    assert {e["Actor"]["ID"] for e in past({"container": [b[:10]]})} == {b}  # id prefix
    assert {e["Action"] for e in past({"event": ["start"]})} == {"start"}
    assert {e["Type"] for e in past({"type": ["network"]})} == {"network"}
    assert {e["Actor"]["Attributes"]["name"] for e in past({"label": ["tenant=globex"]})} == {"beta"}
    assert past({"label": ["tenant"], "type": ["network"]}) == []


async def test_container_event_shape_and_attributes() -> None:
    d = daemon()
    cid = busybox(d, "shape", ["sleep", "1000"])
    await d.start_container(cid)
    await d.kill_container(cid, "KILL")
    die = next(orjson.loads(raw) for _, doc, raw in d.ring if doc["Action"] == "die")
    assert list(die) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert die["Actor"]["Attributes"] == {"exitCode": "137", "image": "berth/busybox:test", "name": "shape",
                                          "tenant": "acme"}
    assert die["time"] == die["timeNano"] // 1_000_000_000


# -- state machine ------------------------------------------------------------


async def test_start_stop_pause_answers_like_dockerd() -> None:
    d = daemon()
    cid = busybox(d, "sm", ["sleep", "1000"])
    assert d.inspect(cid)["State"]["Status"] == "created"
    with pytest.raises(NotModified):
        await d.stop_container(cid, None)  # stop a created container: 304
    with pytest.raises(ApiError) as err:
        await d.pause_container(cid)
    assert (err.value.status, err.value.message) == (409, f"Container {cid} is not running")
    await d.start_container(cid)
    with pytest.raises(NotModified):
        await d.start_container(cid)
    await d.pause_container(cid)
    with pytest.raises(ApiError) as err:
        await d.pause_container(cid)
    assert (err.value.status, err.value.message) == (409, f"Container {cid} is already paused")
    with pytest.raises(ApiError) as err:
        await d.start_container(cid)
    assert (err.value.status, err.value.message) == (409, "cannot start a paused container, try unpause instead")
    with pytest.raises(ApiError) as err:
        await d.remove(cid, force=False)
    assert err.value.status == 409 and "paused" in err.value.message
    await d.unpause_container(cid)
    with pytest.raises(ApiError) as err:
        await d.unpause_container(cid)
    assert (err.value.status, err.value.message) == (500, f"Container {cid} is not paused")
    await d.stop_container(cid, 1)
    state = d.inspect(cid)["State"]
    assert state["Status"] == "exited" and not state["Running"] and state["FinishedAt"] != "0001-01-01T00:00:00Z"
    with pytest.raises(ApiError) as err:
        await d.kill_container("sm", "KILL")
    assert (err.value.status, err.value.message) == (409, f"Cannot kill container: sm: Container {cid} is not running")
    assert actions(d, cid) == ["create", "start", "pause", "unpause", "kill", "die", "stop"]
    assert actions(d, kind="network")[-2:] == ["connect", "disconnect"]


async def test_stop_of_a_paused_container_unpauses_it_first_and_a_restart_emits_restart_last() -> None:
    d = daemon()
    cid = busybox(d, "rs", ["sleep", "1000"])
    await d.start_container(cid)
    await d.pause_container(cid)
    await d.stop_container(cid, 1)
    assert actions(d, cid) == ["create", "start", "pause", "kill", "unpause", "die", "stop"]
    await d.restart_container(cid, 1)
    assert actions(d, cid)[-2:] == ["start", "restart"]
    await d.restart_container(cid, 1)
    assert actions(d, cid)[-5:] == ["kill", "die", "stop", "start", "restart"]


async def test_a_container_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    d = daemon()
    cid = busybox(d, "stubborn", ["sleep", "1000"])
    d.containers[cid].graceful = False
    await d.start_container(cid)
    t0 = time.monotonic()
    await d.stop_container(cid, 1)
    assert 0.9 < time.monotonic() - t0 < 3
    assert d.inspect(cid)["State"]["ExitCode"] == 137
    kills = [doc["Actor"]["Attributes"]["signal"] for _, doc, _ in d.ring if doc["Action"] == "kill"]
    assert kills == ["15", "9"]


async def test_sigterm_exits_a_handling_container_and_leaves_no_timer_for_its_next_run() -> None:
    d = daemon()
    cid = busybox(d, "term", ["sleep", "1000"])
    await d.start_container(cid)
    await d.kill_container(cid, "TERM")
    assert d.inspect(cid)["State"]["Running"]  # it takes a moment to shut down
    assert (await asyncio.wait_for(d.wait_container(cid, "not-running"), 2))["StatusCode"] == 143
    await d.start_container(cid)
    await d.kill_container(cid, "SIGTERM")
    await d.kill_container(cid, "KILL")  # before the TERM handler finished
    await d.start_container(cid)
    await asyncio.sleep(0.5)  # longer than any TERM delay
    assert d.inspect(cid)["State"]["Status"] == "running"


async def test_names_ids_and_prefixes_resolve_like_dockerd() -> None:
    d = daemon()
    cid = busybox(d, "lookup", ["sleep", "1000"])
    assert d.lookup("lookup").id == cid
    assert d.lookup("/lookup").id == cid
    assert d.lookup(cid[:12]).id == cid
    with pytest.raises(ApiError) as err:
        d.lookup("nope")
    assert (err.value.status, err.value.message) == (404, "No such container: nope")
    with pytest.raises(ApiError) as err:
        d.create("lookup", {"Image": "berth/busybox:test", "Cmd": ["true"]})
    assert err.value.status == 409 and f'"/lookup" is already in use by container "{cid}"' in err.value.message
    with pytest.raises(ApiError) as err:
        d.create("b@d", {"Image": "berth/busybox:test", "Cmd": ["true"]})
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        d.create("x1", {"Image": "nope:1"})
    assert (err.value.status, err.value.message) == (404, "No such image: nope:1")


async def test_scripted_commands_exit_like_the_real_thing() -> None:
    d = daemon()
    quick = busybox(d, "quick", ["sh", "-c", "exit 3"])
    nap = busybox(d, "nap", ["sleep", "0.3"])
    await d.start_container(quick)
    await d.start_container(nap)
    assert (await d.wait_container(quick, "not-running"))["StatusCode"] == 3
    assert d.inspect(nap)["State"]["Running"]
    assert (await asyncio.wait_for(d.wait_container(nap, "not-running"), 3))["StatusCode"] == 0
    assert d.inspect(nap)["State"]["Status"] == "exited"


async def test_rename_and_update_emit_events_and_check_conflicts() -> None:
    d = daemon()
    cid = busybox(d, "old", ["sleep", "1000"])
    busybox(d, "taken", ["sleep", "1000"])
    d.rename(cid, "new")
    assert d.inspect(cid)["Name"] == "/new"
    rename = next(doc for _, doc, _ in d.ring if doc["Action"] == "rename")
    assert rename["Actor"]["Attributes"]["oldName"] == "/old"
    with pytest.raises(ApiError) as err:
        d.rename(cid, "taken")
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        d.rename(cid, "new")
    assert err.value.status == 400
    assert d.update(cid, {"NanoCpus": 500_000_000, "Memory": 64 << 20, "MemorySwap": 128 << 20}) == {"Warnings": None}
    hc = d.inspect(cid)["HostConfig"]
    assert (hc["NanoCpus"], hc["Memory"]) == (500_000_000, 64 << 20)
    with pytest.raises(ApiError) as err:
        d.update(cid, {"CpuQuota": 50_000})
    assert err.value.status == 400 and "NanoCPUs has already been set" in err.value.message


# -- behaviours ---------------------------------------------------------------


async def test_the_restart_loop_dies_and_is_restarted_by_its_policy() -> None:
    d, cid = role_daemon(model.CRASHLOOP)
    c = d.containers[cid]
    before = c.restart_count
    d.tick(c.run_started + c.crash_after + 0.5)
    assert c.state == "restarting" and c.exit_code == 1
    assert d.inspect(cid)["State"]["Restarting"] and d.inspect(cid)["State"]["Running"]
    await asyncio.sleep(0.3)  # dockerd's first backoff step: 100 ms
    assert c.state == "running" and c.restart_count == before + 1
    assert actions(d, cid)[-2:] == ["die", "start"]  # no "restart" event for policy restarts


async def test_a_leaking_container_is_oom_killed_and_restarted() -> None:
    d, cid = role_daemon(model.LEAK)
    c = d.containers[cid]
    now = time.time()
    for k in range(400):
        d.tick(now + k)
        if c.state != "running":
            break
    assert actions(d, cid)[-2:] == ["oom", "die"]
    state = d.inspect(cid)["State"]
    assert state["OOMKilled"] and state["ExitCode"] == 137 and state["Status"] == "restarting"
    await asyncio.sleep(0.3)
    assert c.state == "running" and d.inspect(cid)["State"]["OOMKilled"]  # dockerd keeps it until the next exit


async def test_the_oom_killed_container_is_down_with_its_evidence() -> None:
    d, cid = role_daemon(model.OOMED)
    state = d.inspect(cid)["State"]
    assert (state["Status"], state["OOMKilled"], state["ExitCode"]) == ("exited", True, 137)
    assert d.inspect(cid)["HostConfig"]["RestartPolicy"]["Name"] == "no"


async def test_the_unhealthy_container_turns_unhealthy_after_its_retries() -> None:
    d, cid = role_daemon(model.UNHEALTHY)
    c = d.containers[cid]
    interval = c.healthcheck["Interval"] / 1e9 if c.healthcheck else 0
    now = time.time()
    for k in range(1, 5):
        d.tick(now + k * interval + 0.1)
    health = d.inspect(cid)["State"]["Health"]
    assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 3
    assert "health_status: unhealthy" in actions(d, cid)
    assert d.list_containers(True, {"health": ["unhealthy"]})[0]["Id"] == cid


# -- stats ---------------------------------------------------------------------


@pytest.mark.parametrize("cgroup", ["1", "2"])
def test_stats_samples_decode_and_give_the_modelled_cpu(cgroup: str) -> None:
    d = daemon(cgroup)
    c = next(c for c in d.containers.values() if c.state == "running" and c.load.cpu_base > 0.2)
    now = time.time()
    d.tick(now)
    first = decode(d.stats_sample(c, now))
    cores = c.usage  # what the container gets until the next tick
    d.tick(now + 1.0)
    doc = d.stats_sample(c, now + 1.0)
    second = decode(doc)
    pct = cpu_percent(first, second)
    assert pct is not None and abs(pct - cores * 100) < 2.0  # one clock tick of rounding
    assert second.mem_used < second.mem_usage <= second.mem_limit
    stats = doc["memory_stats"]["stats"]
    if cgroup == "1":
        assert "total_inactive_file" in stats and "cache" in stats and "max_usage" in doc["memory_stats"]
        assert len(doc["cpu_stats"]["cpu_usage"]["percpu_usage"]) == d.spec.ncpu
    else:
        assert "inactive_file" in stats and "anon" in stats and "file" in stats
        assert "total_inactive_file" not in stats and "max_usage" not in doc["memory_stats"]
        assert "percpu_usage" not in doc["cpu_stats"]["cpu_usage"]


def test_system_cpu_advances_by_all_cpus_in_clock_ticks() -> None:
    d = daemon()
    now = time.time()
    delta = d.system_cpu(now + 1.0) - d.system_cpu(now)
    assert abs(delta - d.spec.ncpu * 1e9) <= d.spec.ncpu * 1e7
    assert d.system_cpu(now) % 10_000_000 == 0


def test_a_saturated_node_shares_its_cpus() -> None:
    fleet = plan_fleet(3, 30, seed=2)
    d = SimDaemon(fleet.node(fleet.hot_node))
    now = time.time()
    for k in range(5):
        d.tick(now + k)
    used = sum(c.usage for c in d.containers.values() if c.state == "running")
    assert d.spec.ncpu * 0.9 < used <= d.spec.ncpu


def test_stopped_containers_give_the_empty_sample() -> None:
    d, cid = role_daemon(model.OOMED)
    doc = d.stats_sample(d.containers[cid], time.time())
    assert doc["read"] == "0001-01-01T00:00:00Z" and doc["memory_stats"] == {} and doc["pids_stats"] == {}
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 0
