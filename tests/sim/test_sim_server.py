"""The simulated node over HTTP: headers, routing, streams, errors and outages, as a client sees them."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from console.config import NodeConfig
from console.engine.client import EngineClient
from console.engine.errors import NodeUnreachable, NotFound, ProtocolError
from console.engine.stats import cpu_percent, decode
from console.fleet.poller import parse_time
from console.sim.fleet import SimFleet

Http = Callable[..., httpx.Client]


def running_id(client: httpx.Client) -> str:
    items = client.get("/v1.41/containers/json").json()
    return next(c["Id"] for c in items if c["Labels"].get("com.example.tier") != "batch")


def test_ping_answers_with_the_engine_headers(http: Http) -> None:
    c = http("sim-01")
    for method in ("GET", "HEAD"):
        r = c.request(method, "/_ping")
        assert r.status_code == 200
        assert r.headers["Api-Version"] == "1.41"
        assert r.headers["Server"].startswith("Docker/20.10")
        assert r.headers["Docker-Experimental"] == "false" and r.headers["Ostype"] == "linux"
        assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert r.content == (b"OK" if method == "GET" else b"")
    assert c.get("/v1.41/_ping").text == "OK"


def test_versioned_and_unversioned_paths_and_the_version_check(http: Http) -> None:
    c = http("sim-02")
    plain, versioned = c.get("/info").json(), c.get("/v1.41/info").json()
    assert plain.keys() == versioned.keys() and plain["ID"] == versioned["ID"]
    assert c.get("/v1.41/version").json()["ApiVersion"] == "1.41"
    r = c.get("/v1.45/info")
    assert r.status_code == 400 and r.json() == {"message": "client version 1.45 is too new. "
                                                            "Maximum supported API version is 1.41"}
    assert c.get("/v1.11/info").status_code == 400
    r = c.get("/v1.41/nope")
    assert r.status_code == 404 and r.json() == {"message": "page not found"}
    assert "Api-Version" not in r.headers  # dockerd's router 404 carries no engine headers
    assert c.post("/v1.41/containers/json").status_code == 404


def test_info_describes_the_node(http: Http, fleet: SimFleet) -> None:
    for spec in fleet.layout.nodes:
        info = http(spec.name).get("/v1.41/info").json()
        assert (info["Name"], info["NCPU"], info["MemTotal"], info["CgroupVersion"]) == (
            spec.name, spec.ncpu, spec.mem_total, spec.cgroup)
        assert info["Containers"] == len(spec.containers)
        assert info["Containers"] == info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"]


def test_list_filters(http: Http, fleet: SimFleet) -> None:
    c = http("sim-01")
    every = c.get("/v1.41/containers/json", params={"all": "1"}).json()
    running = c.get("/v1.41/containers/json").json()
    assert {x["State"] for x in running} <= {"running", "paused", "restarting"}
    assert len(every) >= len(running)
    created = [x["Created"] for x in every]
    assert created == sorted(created, reverse=True)  # newest first, like dockerd
    tenant = fleet.layout.hot_tenant
    by_label = c.get("/v1.41/containers/json", params={"all": "1", "filters": json.dumps({"label": [f"tenant={tenant}"]})})
    assert by_label.json() and all(x["Labels"]["tenant"] == tenant for x in by_label.json())
    old_style = c.get("/v1.41/containers/json", params={"filters": json.dumps({"status": {"exited": True}})}).json()
    assert all(x["State"] == "exited" for x in old_style)  # the status filter implies all=1
    name = every[0]["Names"][0]
    assert [x["Names"][0] for x in c.get("/v1.41/containers/json", params={
        "all": "1", "filters": json.dumps({"name": [f"^{name}$"]})}).json()] == [name]
    r = c.get("/v1.41/containers/json", params={"filters": json.dumps({"status": ["bogus"]})})
    assert r.status_code == 400 and r.json() == {"message": "Invalid filter 'status=bogus'"}
    r = c.get("/v1.41/containers/json", params={"filters": "garbage"})
    assert r.status_code == 500 and "invalid character 'g'" in r.json()["message"]


def test_stats_stream_sends_a_sample_a_second_that_berth_decodes(http: Http, fleet: SimFleet) -> None:
    c = http("sim-01")
    cid = running_id(c)
    samples = []
    with c.stream("GET", f"/v1.41/containers/{cid}/stats") as r:
        assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked"
        for line in r.iter_lines():
            samples.append(json.loads(line))
            if len(samples) == 3:
                break
    assert samples[0]["preread"] == "0001-01-01T00:00:00Z"
    assert samples[1]["preread"] == samples[0]["read"]
    assert samples[1]["precpu_stats"] == samples[0]["cpu_stats"]
    # The cadence by the samples' own `read` (the sim's tick time), not by when this thread, sharing
    # the GIL with the in-process sim, got to read them. The ticks are fixed-rate, so one late tick
    # shortens the next gap as much as it lengthened its own: bounds of half and twice and a half.
    reads = [parse_time(x["read"]) for x in samples]
    gap = reads[2] - reads[1]
    assert 0.5 * fleet.tick < gap < 2.5 * fleet.tick, f"samples read {gap:.2f}s apart, the tick is {fleet.tick}s"
    pct = cpu_percent(decode(samples[1]), decode(samples[2]))
    assert pct is not None and 0 <= pct <= samples[2]["cpu_stats"]["online_cpus"] * 100


def test_stats_one_shot_is_the_next_round_and_stream_false_waits_for_a_second_sample(http: Http) -> None:
    """Told apart by the sim's ticks, seen on a stream opened beside them, not by a stopwatch: as
    dockerd's collector does while anyone streams, a one-shot answers with the next round's
    sample (no precpu); stream=false answers with the next two rounds' samples."""
    c = http("sim-02")
    cid = running_id(c)
    with c.stream("GET", f"/v1.41/containers/{cid}/stats") as r:
        lines = r.iter_lines()
        ticks = [json.loads(next(lines))["read"]]  # a tick's sample that came before both requests
        one = c.get(f"/v1.41/containers/{cid}/stats", params={"stream": "false", "one-shot": "true"}).json()
        two = c.get(f"/v1.41/containers/{cid}/stats", params={"stream": "false"}).json()
        while parse_time(ticks[-1]) < parse_time(two["read"]) and len(ticks) < 20:
            ticks.append(json.loads(next(lines))["read"])
    assert one["preread"] == "0001-01-01T00:00:00Z" and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert one["read"] in ticks[1:], f"one-shot: not a round after the request: {one['read']} vs {ticks}"
    assert two["precpu_stats"]["cpu_usage"]["total_usage"] > 0 and two["preread"] != "0001-01-01T00:00:00Z"
    assert two["preread"] in ticks[1:] and two["read"] in ticks[1:], (
        f"stream=false: not two ticks after the request: {two['preread']}, {two['read']} vs {ticks}")
    assert ticks.index(two["read"]) == ticks.index(two["preread"]) + 1  # consecutive ticks
    assert ticks.index(two["preread"]) > ticks.index(one["read"])  # asked after the one-shot was answered


def test_events_stream_live_and_the_listener_goes_away_with_the_client(http: Http) -> None:
    c = http("sim-03")
    got: list[dict] = []
    with c.stream("GET", "/v1.41/events", params={"filters": json.dumps({"type": ["container"]})}) as r:
        assert r.headers["Content-Type"] == "application/json"
        assert c.get("/v1.41/info").json()["NEventsListener"] == 1
        cid = c.post("/v1.41/containers/create", params={"name": "live-ev"},
                     json={"Image": "berth/busybox:test", "Cmd": ["sleep", "100"]}).json()["Id"]
        for line in r.iter_lines():
            got.append(json.loads(line))
            break
    assert got[0]["Action"] == "create" and got[0]["id"] == cid
    deadline = time.monotonic() + 3
    while c.get("/v1.41/info").json()["NEventsListener"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.get("/v1.41/info").json()["NEventsListener"] == 0
    assert c.delete(f"/v1.41/containers/{cid}").status_code == 204


def test_events_since_until_validation(http: Http) -> None:
    c = http("sim-03")
    now = int(time.time())
    r = c.get("/v1.41/events", params={"since": str(now), "until": str(now - 100)})
    assert r.status_code == 400
    assert r.json() == {"message": f"`since` time ({now}) cannot be after `until` time ({now - 100})"}
    r = c.get("/v1.41/events", params={"since": "abc", "until": "1"})
    assert r.status_code == 500 and r.json() == {"message": 'strconv.ParseInt: parsing "abc": invalid syntax'}
    t0 = time.monotonic()
    r = c.get("/v1.41/events", params={"since": str(now - 60), "until": f"{time.time() + 1:.3f}"})
    # streams until `until` (1 s from now), then ends on its own: the call returns, and not early
    assert r.status_code == 200 and time.monotonic() - t0 > 0.5


def test_logs_use_the_multiplexed_stream_format(http: Http, fleet: SimFleet) -> None:
    c = http("sim-01")
    cid = running_id(c)
    r = c.get(f"/v1.41/containers/{cid}/logs", params={"stdout": "1", "stderr": "1", "tail": "5", "timestamps": "1"})
    assert r.status_code == 200
    data, frames = r.content, []
    while data:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        assert stream in (1, 2) and data[1:4] == b"\0\0\0"
        frames.append(data[8:8 + size])
        data = data[8 + size:]
    assert 0 < len(frames) <= 5
    assert all(f.endswith(b"\n") and f[:4].isdigit() and b"Z " in f for f in frames)
    r = c.get(f"/v1.41/containers/{cid}/logs")
    assert r.status_code == 400 and r.json() == {"message": "Bad parameters: you must choose at least one stream"}


def test_top_and_actions_on_unknown_containers(http: Http) -> None:
    c = http("sim-01")
    cid = running_id(c)
    top = c.get(f"/v1.41/containers/{cid}/top").json()
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"] and top["Processes"]
    aux = c.get(f"/v1.41/containers/{cid}/top", params={"ps_args": "aux"}).json()
    assert aux["Titles"][:3] == ["USER", "PID", "%CPU"]
    for method, path in (("GET", "/json"), ("POST", "/start"), ("GET", "/stats?stream=0"), ("DELETE", "")):
        r = c.request(method, f"/v1.41/containers/nope-x{path}")
        assert r.status_code == 404 and r.json() == {"message": "No such container: nope-x"}
    r = c.post("/v1.41/containers/nope-x/kill")
    assert r.status_code == 404 and r.json() == {"message": "Cannot kill container: nope-x: No such container: nope-x"}


def test_networks_create_connect_disconnect_remove(http: Http) -> None:
    c = http("sim-02")
    cid = running_id(c)
    body = {"Name": "iso-test", "Internal": True, "CheckDuplicate": True,
            "Labels": {"berth.role": "isolation", "berth.target": cid[:12]}}
    r = c.post("/v1.41/networks/create", json=body)
    assert r.status_code == 201 and r.json()["Warning"] == ""
    net = r.json()["Id"]
    assert c.post("/v1.41/networks/create", json=body).json() == {"message": "network with name iso-test already exists"}
    listed = c.get("/v1.41/networks", params={"filters": json.dumps({"label": ["berth.role"]})}).json()
    assert [n["Name"] for n in listed] == ["iso-test"] and listed[0]["Internal"] is True
    r = c.post(f"/v1.41/networks/{net}/connect",
               json={"Container": cid, "EndpointConfig": {"Aliases": ["quarantine"],
                                                          "IPAMConfig": {"IPv4Address": "172.31.9.9"}}})
    assert r.status_code == 200
    again = c.post(f"/v1.41/networks/{net}/connect", json={"Container": cid})
    assert again.status_code == 403
    inspected = c.get("/v1.41/networks/iso-test").json()
    assert cid in inspected["Containers"]
    ep = c.get(f"/v1.41/containers/{cid}/json").json()["NetworkSettings"]["Networks"]["iso-test"]
    assert ep["IPAddress"] == "172.31.9.9" and "quarantine" in ep["Aliases"] and ep["NetworkID"] == net
    r = c.delete(f"/v1.41/networks/{net}")
    assert r.status_code == 403 and "has active endpoints" in r.json()["message"]
    assert c.post(f"/v1.41/networks/{net}/disconnect", json={"Container": cid}).status_code == 200
    r = c.post(f"/v1.41/networks/{net}/disconnect", json={"Container": cid})
    assert r.status_code == 500 and r.json()["message"] == f"container {cid} is not connected to network iso-test"
    assert c.delete(f"/v1.41/networks/{net}").status_code == 204
    assert c.get(f"/v1.41/networks/{net}").json() == {"message": f"network {net} not found"}
    assert c.delete("/v1.41/networks/bridge").json() == {"message": "bridge is a pre-defined network and cannot "
                                                                    "be removed"}
    since = f"{time.time() - 30:.3f}"
    events = c.get("/v1.41/events", params={"since": since, "until": f"{time.time():.3f}",
                                             "filters": json.dumps({"network": ["iso-test"]})}).text.splitlines()
    assert [json.loads(e)["Action"] for e in events] == ["create", "connect", "disconnect", "destroy"]


def test_flapping_refuse_reset_and_hang() -> None:
    with SimFleet(nodes=1, containers_per_node=2, seed=1, in_process=True) as f:
        node = f.node("sim-01")
        path = str(f.sockets["sim-01"])
        client = httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://docker", timeout=1.0)
        with client:
            assert client.get("/_ping").status_code == 200
            f.call(lambda: node.server.go_down("refuse"))
            with pytest.raises(httpx.ConnectError):
                client.get("/_ping")
            s = socket.socket(socket.AF_UNIX)
            with pytest.raises(ConnectionRefusedError):
                s.connect(path)  # the stale socket file of a crashed daemon
            s.close()
            f.call(node.server.go_up)
            assert client.get("/_ping").status_code == 200
            f.call(lambda: node.server.go_down("reset"))
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                client.get("/_ping")
            f.call(lambda: node.server.go_down("hang"))
            with pytest.raises(httpx.ReadTimeout):
                client.get("/_ping")
            f.call(node.server.go_up)
            assert client.get("/_ping").status_code == 200


async def test_berths_engine_client_works_against_a_sim_node(fleet: SimFleet) -> None:
    client = EngineClient(NodeConfig(name="sim-01", url=fleet.urls["sim-01"]))
    try:
        assert await client.ping() == "1.41"
        info = await client.info()
        items = await client.containers(all=True)
        assert len(items) == info["Containers"]
        doc = await client.inspect(items[0]["Names"][0].lstrip("/"))
        assert doc["Id"] == items[0]["Id"]
        with pytest.raises(NotFound):
            await client.inspect("does-not-exist")
        sample = decode(await client.stats_once(next(i["Id"] for i in items if i["State"] == "running")))
        assert sample.online_cpus == info["NCPU"] and sample.mem_usage > 0
    finally:
        await client.aclose()


async def test_berths_client_sees_a_down_node_as_unreachable() -> None:
    with SimFleet(nodes=1, containers_per_node=1, seed=2, in_process=True) as f:
        node = f.node("sim-01")
        client = EngineClient(NodeConfig(name="sim-01", url=f.urls["sim-01"], timeout=1.0))
        try:
            await client.ping()
            await asyncio.to_thread(f.call, lambda: node.server.go_down("refuse"))
            await client.reset()
            with pytest.raises(NodeUnreachable):
                await client.ping()
            await asyncio.to_thread(f.call, lambda: node.server.go_down("reset"))
            await asyncio.to_thread(f.call, node.server.go_up)
            await asyncio.to_thread(f.call, lambda: node.server.go_down("reset"))
            await client.reset()
            with pytest.raises((ProtocolError, NodeUnreachable)):
                await client.info()
        finally:
            await client.aclose()
