"""The Engine API contract Berth relies on, checked identically against simulated nodes and a real dockerd.

If a check passes on "real" and fails on "sim-*", the simulator lies; if it fails on
"real", Berth's assumptions about dockerd are wrong. Either way the demo and the
benchmarks would stop meaning anything.

"podman" is Debian's podman 4.3 compat service. Where its compat API is meant to match it is
held to the same checks; where it differs by design (headers, error texts and codes, stats
cadence and shapes, /top), the test states Podman's own behaviour under `if engine.podman:`,
so a change either way shows.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from contract_support import API, Engine, keys_of, wait_for

from console.engine.stats import (
    cpu_percent,
    cpu_percent_by_read,
    decode,
    decode_libpod,
    for_engine,
)
from console.fleet.poller import parse_time

MiB = 1024 * 1024


def test_ping_carries_the_engine_headers(engine: Engine, api: httpx.Client) -> None:
    for method, path in (("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", f"{API}/_ping")):
        r = api.request(method, path)
        assert r.status_code == 200
        assert r.headers["Api-Version"] == "1.41"
        if engine.podman:  # by design: Podman names itself, and Berth detects it by this header
            assert r.headers["Libpod-Api-Version"].startswith("4.")
            assert r.headers["Server"].startswith("Libpod/4.") and r.headers["Server"].endswith("(linux)")
            assert r.content == (b"" if method == "HEAD" else b"OK")
            continue
        assert "Libpod-Api-Version" not in r.headers
        assert r.headers["Server"].startswith("Docker/20.10") and r.headers["Server"].endswith("(linux)")
        assert r.headers["Ostype"] == "linux" and r.headers["Docker-Experimental"] == "false"
        assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.content == (b"" if method == "HEAD" else b"OK")


def test_info_and_version_have_the_keys_and_types_berth_reads(engine: Engine, api: httpx.Client) -> None:
    info = api.get(f"{API}/info").json()
    for key, kind in (("NCPU", int), ("MemTotal", int), ("ServerVersion", str), ("KernelVersion", str),
                      ("OperatingSystem", str), ("CgroupDriver", str), ("SystemTime", str), ("Containers", int),
                      ("ContainersRunning", int), ("ContainersPaused", int), ("ContainersStopped", int),
                      ("Name", str), ("ID", str), ("Labels", list), ("OSType", str), ("NEventsListener", int)):
        if engine.podman and key == "Labels":  # by design: null without engine labels (Berth does not read it)
            assert info[key] is None
            continue
        assert isinstance(info[key], kind), (key, info[key])
    assert info["CgroupVersion"] in ("1", "2") and info["CgroupVersion"] == engine.cgroup
    assert info["Containers"] == info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"]
    assert info["NCPU"] > 0 and info["MemTotal"] > 0
    system_time = parse_time(info["SystemTime"])
    assert system_time is not None and abs(system_time - time.time()) < 60
    version = api.get(f"{API}/version").json()
    if engine.podman:  # by design: Podman's own version, and its engine among the components
        assert version["ApiVersion"] == "1.41" and version["MinAPIVersion"] == "1.24"
        assert version["Version"].startswith("4.") and info["ServerVersion"] == version["Version"]
        assert "Podman Engine" in [c["Name"] for c in version["Components"]]
    else:
        assert version["ApiVersion"] == "1.41" and version["MinAPIVersion"] == "1.12"
        assert version["Version"].startswith("20.10") and isinstance(version["Components"], list)
    assert {"Version", "ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch", "KernelVersion",
            "BuildTime", "Platform", "Components"} <= version.keys()


def test_container_list_items_have_the_keys_and_types_berth_reads(
        engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    cid, name = engine.run(api, ["sleep", "100000"])
    cleanup.append(cid)
    items = api.get(f"{API}/containers/json", params={"all": "1"}).json()
    assert isinstance(items, list) and items
    expected = {"Id": str, "Names": list, "Image": str, "ImageID": str, "Command": str, "Created": int,
                "Ports": list, "Labels": dict, "State": str, "Status": str, "HostConfig": dict,
                "NetworkSettings": dict, "Mounts": list}
    if engine.podman:
        # By design: no HostConfig in Podman's listing (Berth reads none from it), a few extra keys,
        # and null NetworkSettings.Networks for a container on no network (Berth reads `or {}`).
        del expected["HostConfig"]
        for item in items:
            assert set(item) == set(expected) | {"Name", "Config", "NetworkingConfig", "Platform", "AdjustCPUShares"}
            assert item["NetworkSettings"]["Networks"] is None
    for item in items:
        assert set(item) >= set(expected)
        assert engine.podman or set(item) == set(expected)
        for key, kind in expected.items():
            assert isinstance(item[key], kind), (key, item[key])
        assert item["Names"][0].startswith("/")
        assert item["State"] in ("created", "running", "paused", "restarting", "removing", "exited", "dead")
    mine = next(i for i in items if i["Id"] == cid)
    assert mine["Names"] == [f"/{name}"] and mine["State"] == "running" and mine["Status"].startswith("Up ")
    assert mine["Labels"]["tenant"] == "contract" and mine["Command"] == "sleep 100000"
    # Podman qualifies short names: what it stores is docker.io/<name>
    assert mine["Image"] == ("docker.io/" if engine.podman else "") + "berth/busybox:test"
    filtered = api.get(f"{API}/containers/json",
                       params={"all": "1", "filters": json.dumps({"label": ["purpose=berth-test"], "name": [name]})})
    assert [i["Id"] for i in filtered.json()] == [cid]


def test_inspect_has_state_limits_config_and_networks(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    cid, name = engine.run(api, ["sleep", "100000"], NanoCpus=500_000_000, Memory=64 * MiB,
                           RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3})
    cleanup.append(cid)
    for ref in (cid, name, cid[:12]):
        doc = api.get(f"{API}/containers/{ref}/json").json()
        assert doc["Id"] == cid
    assert doc["Name"] == f"/{name}" and isinstance(doc["RestartCount"], int)
    state = doc["State"]
    assert state["Status"] == "running" and state["Running"] is True and state["OOMKilled"] is False
    assert isinstance(state["ExitCode"], int) and isinstance(state["Pid"], int) and state["Pid"] > 0
    started = parse_time(state["StartedAt"])
    assert started is not None and abs(started - time.time()) < 120
    assert parse_time(state["FinishedAt"]) is None  # the zero time
    hc = doc["HostConfig"]
    if engine.podman:
        # By design: Podman shows --cpus also as the quota it became (Berth takes NanoCpus first),
        # and the lab runs its containers on no network (see contract_support.Engine.run).
        assert (hc["NanoCpus"], hc["Memory"], hc["CpuQuota"], hc["CpuPeriod"]) == (500_000_000, 64 * MiB,
                                                                                  50_000, 100_000)
        assert hc["NetworkMode"] == "none" and doc["NetworkSettings"]["Networks"] == {}
    else:
        assert (hc["NanoCpus"], hc["Memory"], hc["CpuQuota"], hc["CpuPeriod"]) == (500_000_000, 64 * MiB, 0, 0)
        assert hc["NetworkMode"] == "default"
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    config = doc["Config"]
    assert config["Image"] == ("docker.io/" if engine.podman else "") + "berth/busybox:test"
    assert config["Cmd"] == ["sleep", "100000"]
    assert "PATH=/bin" in config["Env"] and config["Labels"] == {"tenant": "contract", "purpose": "berth-test"}
    if engine.podman:
        return
    assert isinstance(doc["NetworkSettings"]["Networks"], dict) and doc["NetworkSettings"]["Networks"]
    for ep in doc["NetworkSettings"]["Networks"].values():
        assert {"NetworkID", "EndpointID", "IPAddress", "Aliases", "IPAMConfig"} <= ep.keys()


def test_stats_decode_and_give_a_plausible_cpu_percent(engine: Engine, api: httpx.Client,
                                                        cleanup: list[str]) -> None:
    cid, _ = engine.run(api, ["sh", "-c", "while :; do :; done"], NanoCpus=500_000_000, Memory=64 * MiB)
    cleanup.append(cid)
    if engine.podman:
        _podman_stats(api, cid)
        return
    samples: list[dict[str, Any]] = []
    with api.stream("GET", f"{API}/containers/{cid}/stats", params={"stream": "1"}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            samples.append(json.loads(line))
            if len(samples) == 4:
                break
    decoded = [decode(s) for s in samples]
    pct = cpu_percent(decoded[2], decoded[3])  # past the first, partial second
    assert pct is not None and 0 < pct <= 50 * 1.15  # capped at half a core
    last = decoded[3]
    assert last.online_cpus == api.get(f"{API}/info").json()["NCPU"]
    assert last.mem_limit == 64 * MiB and 0 < last.mem_used <= last.mem_usage <= last.mem_limit
    mem_stats = samples[3]["memory_stats"]["stats"]
    if engine.cgroup == "1":
        assert "total_inactive_file" in mem_stats and "percpu_usage" in samples[3]["cpu_stats"]["cpu_usage"]
    else:
        assert "inactive_file" in mem_stats and "percpu_usage" not in samples[3]["cpu_stats"]["cpu_usage"]
    assert samples[0]["preread"] == "0001-01-01T00:00:00Z"
    assert samples[3]["preread"] == samples[2]["read"]
    one = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false", "one-shot": "true"}).json()
    assert one["preread"] == "0001-01-01T00:00:00Z" and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    decode(one)
    # A one-shot is a sample of the collector's round, and rounds are a second apart (dockerd
    # collects, then sleeps 1 s): a second one-shot right after is the next round's, by its own `read`.
    again = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false", "one-shot": "true"}).json()
    assert parse_time(again["read"]) - parse_time(one["read"]) > 0.5, (one["read"], again["read"])
    settled = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false"}).json()
    assert settled["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert keys_of(settled) == keys_of(samples[3])


def _podman_stats(api: httpx.Client, cid: str) -> None:
    """Podman, by design: its compat stream samples every 5 s whatever `interval` says, has no
    real one-shot (stream=false answers at once with zeroed precpu and Go's zero `preread`), and
    memory_stats is only usage and limit. Berth reads Podman's own stream (`interval=1`) and
    computes CPU by wall time; that is checked here, on the same burner as the dockerd case."""
    one = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false", "one-shot": "true"}).json()
    settled = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false"}).json()
    for doc in (one, settled):
        assert doc["preread"] == "0001-01-01T00:00:00Z" and doc["precpu_stats"]["cpu_usage"]["total_usage"] == 0
        assert set(doc["memory_stats"]) == {"usage", "limit"} and doc["memory_stats"]["limit"] == 64 * MiB
        sample = decode(doc)
        assert sample.cpu_total > 0 and sample.read_ns > 0
    samples = []
    with api.stream("GET", API + for_engine("podman").stream_path(cid)) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            samples.append(decode_libpod(json.loads(line)))
            if len(samples) == 3:
                break
    assert all(s is not None for s in samples)
    pct = cpu_percent_by_read(samples[1], samples[2])
    assert pct is not None and 0 < pct <= 50 * 1.15  # capped at half a core
    assert (samples[2].read_ns - samples[1].read_ns) / 1e9 < 2.5  # 1 s samples, as asked


def test_stats_of_a_stopped_container_are_the_empty_sample(engine: Engine, api: httpx.Client,
                                                             cleanup: list[str]) -> None:
    cid, _ = engine.run(api, ["sh", "-c", "exit 0"])
    cleanup.append(cid)
    wait_for(lambda: api.get(f"{API}/containers/{cid}/json").json()["State"]["Status"] == "exited")
    if engine.podman:
        # By design: an empty 200 on the compat endpoint, and all-zero reports without a time
        # stamp on Podman's own, which Berth reads as "no sample".
        compat = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false"})
        assert compat.status_code == 200 and compat.content == b""
        own = api.get(API + for_engine("podman").oneshot_path(cid)).json()
        assert own["Error"] is None and own["Stats"][0]["SystemNano"] == 0 and decode_libpod(own) is None
        return
    doc = api.get(f"{API}/containers/{cid}/stats", params={"stream": "false"}).json()
    assert doc["read"] == "0001-01-01T00:00:00Z" and doc["memory_stats"] == {} and doc["pids_stats"] == {}
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 0 and doc["id"] == cid
    sample = decode(doc)
    assert (sample.cpu_total, sample.system_cpu) == (0, 0)  # what the poller skips


def runs_command(api: httpx.Client, cid: str, command: str, engine: Engine | None = None) -> bool:
    """The container's /top lists a process whose command line is `command`."""
    r = api.get(f"{API}/containers/{cid}/top")
    if r.status_code != 200:
        return False
    top = r.json()
    if engine is not None and engine.podman:
        # By design: one column, "PID   USER     COMMAND", each row one string
        assert top["Titles"] == ["PID   USER     COMMAND"]
        return any(row[0].split(None, 2)[2:] == [command] for row in top["Processes"])
    column = top["Titles"].index("CMD")
    return any(row[column] == command for row in top["Processes"])


def test_events_after_a_start_and_stop(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    since = f"{time.time() - 1:.9f}"
    cid, name = engine.run(api, ["sleep", "100000"])
    cleanup.append(cid)
    # Stop only once `sleep` runs: docker-init blocks signals before it forks the command, so from then
    # on SIGTERM is forwarded. Sent earlier, it may be dropped, the stop times out and SIGKILLs, and
    # the events gain a second `kill`: a race of the test, not the contract.
    wait_for(lambda: runs_command(api, cid, "sleep 100000", engine))
    assert api.post(f"{API}/containers/{cid}/stop", params={"t": "5"}).status_code == 204
    assert api.post(f"{API}/containers/{cid}/stop").status_code == 304
    until = f"{time.time() + 0.5:.9f}"
    r = api.get(f"{API}/events", params={"since": since, "until": until,
                                         "filters": json.dumps({"container": [cid], "type": ["container"]})})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    # dockerd logs a `top` event for the readiness probe's /top (the sim does not); Berth ignores it
    events = [e for e in map(json.loads, r.text.splitlines()) if e["Action"] != "top"]
    if engine.podman:
        _podman_events(api, cid, name, since)
        return
    assert [e["Action"] for e in events] == ["create", "start", "kill", "die", "stop"]
    for e in events:
        assert list(e) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
        assert (e["status"], e["id"], e["from"], e["Type"], e["scope"]) == (
            e["Action"], cid, "berth/busybox:test", "container", "local")
        assert e["Actor"]["ID"] == cid and e["time"] == e["timeNano"] // 1_000_000_000
        attrs = e["Actor"]["Attributes"]
        assert (attrs["name"], attrs["image"], attrs["tenant"]) == (name, "berth/busybox:test", "contract")
    assert [e["timeNano"] for e in events] == sorted(e["timeNano"] for e in events)
    kill, die = events[2]["Actor"]["Attributes"], events[3]["Actor"]["Attributes"]
    assert kill["signal"] == "15" and die["exitCode"].isdigit()
    # since is inclusive to the nanosecond: resuming from the die event gives die and stop again
    resume = f"{events[3]['timeNano'] // 10**9}.{events[3]['timeNano'] % 10**9:09d}"
    again = api.get(f"{API}/events", params={"since": resume, "until": until,
                                             "filters": json.dumps({"container": [cid]})}).text.splitlines()
    assert [json.loads(x)["Action"] for x in again if json.loads(x)["Type"] == "container"] == ["die", "stop"]


def _podman_events(api: httpx.Client, cid: str, name: str, since: str) -> None:
    """Podman, by design: its own lifecycle steps (`init`, `cleanup`, `exec` for /top), the image as it
    stores it (docker.io/...), and extra attributes; and `die` is logged by its cleanup process,
    which may finish after the stop call returned (so this waits for it). What Berth reads holds:
    Action, Actor.ID, the name, the labels, `die` with `exitCode`, timeNano in order."""
    events: list[dict[str, Any]] = []

    def logged() -> bool:
        r = api.get(f"{API}/events", params={"since": since, "until": f"{time.time() + 0.5:.9f}",
                                             "filters": json.dumps({"container": [cid], "type": ["container"]})})
        events[:] = [e for e in map(json.loads, r.text.splitlines()) if e["Action"] != "top"]
        return "die" in [e["Action"] for e in events]

    wait_for(logged)
    actions = [e["Action"] for e in events]
    # As found: `exec`/`exec_died` for the /top probe, and `stop` only on some runs
    assert actions[:3] == ["create", "init", "start"] and "die" in actions, actions
    for e in events:
        assert {"status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"} <= set(e)
        assert (e["status"], e["id"], e["Type"]) == (e["Action"], cid, "container")
        assert e["Actor"]["ID"] == cid and e["time"] == e["timeNano"] // 1_000_000_000
        attrs = e["Actor"]["Attributes"]
        assert (attrs["name"], attrs["image"], attrs["tenant"]) == (name, "docker.io/berth/busybox:test", "contract")
    assert [e["timeNano"] for e in events] == sorted(e["timeNano"] for e in events)
    die = next(e for e in events if e["Action"] == "die")["Actor"]["Attributes"]
    assert die["exitCode"].isdigit() and die["containerExitCode"] == die["exitCode"]


def test_live_events_arrive_while_streaming(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    with engine.http() as watcher, watcher.stream(
            "GET", f"{API}/events", params={"filters": json.dumps({"type": ["container"], "event": ["create"]})}) as r:
        assert r.status_code == 200
        cid, name = engine.run(api, ["sleep", "100000"])
        cleanup.append(cid)
        first = json.loads(next(r.iter_lines()))
    assert first["Action"] == "create" and first["Actor"]["Attributes"]["name"] == name


def test_error_shapes_and_codes(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    def expect(r: httpx.Response, status: int, message: str | None = None) -> None:
        assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
        if message is not None:
            assert r.headers["Content-Type"] == "application/json"
            assert r.json() == {"message": message}

    if engine.podman:
        _podman_errors(engine, api, cleanup)
        return
    expect(api.get(f"{API}/containers/nope-contract/json"), 404, "No such container: nope-contract")
    expect(api.post(f"{API}/containers/nope-contract/start"), 404, "No such container: nope-contract")
    expect(api.get(f"{API}/no/such/endpoint"), 404, "page not found")
    expect(api.get(f"{API}/containers/json", params={"filters": json.dumps({"status": ["bogus"]})}), 400,
           "Invalid filter 'status=bogus'")
    expect(api.post(f"{API}/containers/create", params={"name": "x1"}, json={"Image": "nope:1"}), 404,
           "No such image: nope:1")
    expect(api.post(f"{API}/containers/create", params={"name": "b@d"}, json={"Image": "berth/busybox:test"}),
           400, "Invalid container name (b@d), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    cid, name = engine.run(api, ["sleep", "100000"])
    cleanup.append(cid)
    expect(api.post(f"{API}/containers/{cid}/start"), 304)
    expect(api.post(f"{API}/containers/create", params={"name": name}, json={"Image": "berth/busybox:test"}), 409,
           f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
           f"You have to remove (or rename) that container to be able to reuse that name.")
    expect(api.delete(f"{API}/containers/{cid}"), 409,
           f"You cannot remove a running container {cid}. Stop the container before attempting removal or "
           f"force remove")
    expect(api.post(f"{API}/containers/{cid}/unpause"), 500, f"Container {cid} is not paused")
    expect(api.post(f"{API}/containers/{cid}/pause"), 204)
    expect(api.post(f"{API}/containers/{cid}/pause"), 409, f"Container {cid} is already paused")
    expect(api.post(f"{API}/containers/{cid}/start"), 409, "cannot start a paused container, try unpause instead")
    expect(api.post(f"{API}/containers/{cid}/unpause"), 204)
    expect(api.post(f"{API}/containers/{cid}/kill", params={"signal": "BOGUS"}), 400, "Invalid signal: BOGUS")
    expect(api.post(f"{API}/containers/{cid}/kill"), 204)
    wait_for(lambda: not api.get(f"{API}/containers/{cid}/json").json()["State"]["Running"])
    expect(api.post(f"{API}/containers/{cid}/stop"), 304)
    expect(api.post(f"{API}/containers/{cid}/pause"), 409, f"Container {cid} is not running")
    expect(api.post(f"{API}/containers/{cid}/kill"), 409,
           f"Cannot kill container: {cid}: Container {cid} is not running")
    expect(api.get(f"{API}/containers/{cid}/top"), 409, f"Container {cid} is not running")
    expect(api.get(f"{API}/containers/{cid}/logs"), 400, "Bad parameters: you must choose at least one stream")
    expect(api.post(f"{API}/containers/{cid}/rename", params={"name": name}), 400,
           "Renaming a container with the same name as its current name")
    expect(api.get(f"{API}/networks/nope-contract"), 404, "network nope-contract not found")
    expect(api.delete(f"{API}/networks/host"), 403, "host is a pre-defined network and cannot be removed")
    expect(api.get("/v1.99/info"), 400, "client version 1.99 is too new. Maximum supported API version is 1.41")
    since, until = str(int(time.time())), str(int(time.time()) - 100)
    expect(api.get(f"{API}/events", params={"since": since, "until": until}), 400,
           f"`since` time ({since}) cannot be after `until` time ({until})")


def _podman_errors(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    """Podman, by design: errors are {"cause", "message", "response"} (Berth reads `message`),
    with its own words, and 500 for most state conflicts where dockerd says 409 or 400. The
    codes Berth acts on hold: 404 for a missing container, 304 for start/stop that are no-ops."""
    def expect(r: httpx.Response, status: int, message: str | None = None) -> None:
        assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
        if message is not None:
            body = r.json()
            assert set(body) == {"cause", "message", "response"} and body["response"] == status
            assert body["message"] == message, body

    expect(api.get(f"{API}/containers/nope-contract/json"), 404,
           'no container with name or ID "nope-contract" found: no such container')
    expect(api.post(f"{API}/containers/nope-contract/start"), 404,
           'no container with name or ID "nope-contract" found: no such container')
    expect(api.get(f"{API}/no/such/endpoint"), 404)
    expect(api.get(f"{API}/containers/json", params={"filters": json.dumps({"status": ["bogus"]})}), 500,
           "unknown container state: bogus: invalid argument")
    expect(api.post(f"{API}/containers/create", params={"name": "x1"}, json={"Image": "nope:1"}), 404,
           "no such image: docker.io/library/nope:1: image not known")
    cid, _ = engine.run(api, ["sleep", "100000"])
    cleanup.append(cid)
    expect(api.post(f"{API}/containers/{cid}/start"), 304)
    expect(api.delete(f"{API}/containers/{cid}"), 500,
           f"cannot remove container {cid} as it is running - running or paused containers cannot be removed "
           f"without force: container state improper")
    expect(api.post(f"{API}/containers/{cid}/pause"), 204)
    expect(api.post(f"{API}/containers/{cid}/pause"), 500, f'"{cid}" is already paused: container state improper')
    expect(api.post(f"{API}/containers/{cid}/unpause"), 204)
    expect(api.post(f"{API}/containers/{cid}/kill", params={"signal": "BOGUS"}), 500, "invalid signal: BOGUS")
    expect(api.post(f"{API}/containers/{cid}/kill"), 204)
    wait_for(lambda: not api.get(f"{API}/containers/{cid}/json").json()["State"]["Running"])
    expect(api.post(f"{API}/containers/{cid}/stop"), 304)
    expect(api.get(f"{API}/networks/nope-contract"), 404,
           "unable to find network with name or ID nope-contract: network not found")
    expect(api.get("/v1.99/info"), 200)  # no upper bound on the client's version


def test_an_isolation_network_round_trip(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    cid, name = engine.run(api, ["sleep", "100000"])
    cleanup.append(cid)
    net_name = f"iso-{cid[:8]}"
    r = api.post(f"{API}/networks/create", json={"Name": net_name, "Internal": True, "CheckDuplicate": True,
                                                  "Labels": {"berth.role": "isolation", "berth.target": cid[:12]}})
    assert r.status_code == 201 and set(r.json()) == {"Id", "Warning"}
    net = r.json()["Id"]
    if engine.podman:
        _podman_isolation_network(api, cid, net, net_name)
        return
    try:
        dup = api.post(f"{API}/networks/create", json={"Name": net_name, "CheckDuplicate": True})
        assert dup.status_code == 409 and dup.json() == {"message": f"network with name {net_name} already exists"}
        listed = api.get(f"{API}/networks", params={"filters": json.dumps({"label": [f"berth.target={cid[:12]}"]})})
        assert [n["Id"] for n in listed.json()] == [net]
        assert listed.json()[0]["Internal"] is True and listed.json()[0]["Labels"]["berth.role"] == "isolation"
        assert api.post(f"{API}/networks/{net}/connect",
                        json={"Container": cid, "EndpointConfig": {"Aliases": ["quarantined"]}}).status_code == 200
        again = api.post(f"{API}/networks/{net}/connect", json={"Container": cid})
        assert again.status_code == 403
        assert again.json() == {"message": f"endpoint with name {name} already exists in network {net_name}"}
        inspected = api.get(f"{API}/networks/{net_name}").json()
        assert list(inspected["Containers"]) == [cid]
        endpoint = api.get(f"{API}/containers/{cid}/json").json()["NetworkSettings"]["Networks"][net_name]
        assert endpoint["NetworkID"] == net and "quarantined" in endpoint["Aliases"]
        busy = api.delete(f"{API}/networks/{net}")
        assert busy.status_code == 403 and busy.json() == {
            "message": f"error while removing network: network {net_name} id {net} has active endpoints"}
        assert api.post(f"{API}/networks/{net}/disconnect", json={"Container": cid}).status_code == 200
    finally:
        api.post(f"{API}/networks/{net}/disconnect", json={"Container": cid, "Force": True})
        assert api.delete(f"{API}/networks/{net}").status_code == 204


def _podman_isolation_network(api: httpx.Client, cid: str, net: str, net_name: str) -> None:
    """Podman, by design: a duplicate is a 500 in its words; a container on no network cannot
    be connected at all (so Berth's isolation attaches only containers that have a network mode,
    as on dockerd, and on the lab's none-mode containers it only records and labels); removal of
    an unused network is a 204. The lab attaches nothing to Podman's bridge (no host NAT rules)."""
    try:
        dup = api.post(f"{API}/networks/create", json={"Name": net_name, "CheckDuplicate": True})
        assert dup.status_code == 500 and dup.json()["message"] == (
            f"network name {net_name} already used: network already exists")
        listed = api.get(f"{API}/networks", params={"filters": json.dumps({"label": [f"berth.target={cid[:12]}"]})})
        assert [n["Id"] for n in listed.json()] == [net]
        assert listed.json()[0]["Internal"] is True and listed.json()[0]["Labels"]["berth.role"] == "isolation"
        none_mode = api.post(f"{API}/networks/{net}/connect", json={"Container": cid})
        assert none_mode.status_code == 500 and "invalid network mode" in none_mode.json()["message"]
        assert api.get(f"{API}/networks/{net_name}").json()["Containers"] == {}
    finally:
        assert api.delete(f"{API}/networks/{net}").status_code == 204


def test_logs_are_multiplexed_for_non_tty_containers(engine: Engine, api: httpx.Client, cleanup: list[str]) -> None:
    cid, _ = engine.run(api, ["sleep", "100000"])
    cleanup.append(cid)
    r = api.get(f"{API}/containers/{cid}/logs", params={"stdout": "1", "stderr": "1", "tail": "10"})
    assert r.status_code == 200 and "Content-Type" not in r.headers
    data = r.content
    while data:  # a silent container has no frames; any frame must have the 8-byte header
        assert data[0] in (1, 2) and data[1:4] == b"\0\0\0"
        data = data[8 + int.from_bytes(data[4:8], "big"):]
    if engine.podman:  # by design: one column (see runs_command)
        assert runs_command(api, cid, "sleep 100000", engine)
        return
    top = api.get(f"{API}/containers/{cid}/top").json()
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any("sleep" in row[-1] for row in top["Processes"])
