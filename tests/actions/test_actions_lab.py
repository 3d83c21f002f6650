"""Actions against real dockerd nodes: every check goes through the Engine API (docker SDK)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from action_helpers import dk, names, read_file, run
from docker.types import LogConfig
from dockerlab import BUSYBOX_REF, Lab

from console.actions import ActionError, Actions, AuditLog, ReadOnlyError
from console.config import Inventory
from console.fleet.poller import Fleet

pytestmark = pytest.mark.lab
N1, N2, N3 = "lab-n1", "lab-n2", "lab-n3"
ROOT = Path(__file__).resolve().parents[2]


# -- simple actions ------------------------------------------------------------------------------

async def test_stop_start_pause_unpause_restart_each_reach_the_daemon(lab: Lab, actions: Actions,
                                                                     audit: AuditLog) -> None:
    c = run(lab, N1, "svc")
    started = c.attrs["State"]["StartedAt"]
    for action, expect in (("stop", "exited"), ("start", "running"), ("pause", "paused"),
                           ("unpause", "running"), ("restart", "running")):
        result = await actions.execute(await actions.plan(action, "svc"))
        assert result.ok, result.message
        c.reload()
        assert c.status == expect, action
    assert c.attrs["State"]["StartedAt"] != started
    recorded = audit.read()
    assert [e["action"] for e in recorded] == ["stop", "start", "pause", "unpause", "restart"]
    assert all(e["ok"] and e["who"] == "tester@lab" for e in recorded)


async def test_plan_refuses_what_cannot_apply(lab: Lab, actions: Actions) -> None:
    run(lab, N1, "svc")
    with pytest.raises(ActionError, match="already running"):
        await actions.plan("start", "svc")
    with pytest.raises(ActionError, match="not paused"):
        await actions.plan("unpause", f"{N1}/svc")


async def test_daemon_failure_is_a_result_with_the_daemons_words(lab: Lab, actions: Actions,
                                                                 audit: AuditLog) -> None:
    dk(lab, N1).containers.create(BUSYBOX_REF, ["/no/such/binary"], name="broken", network_mode="none")
    result = await actions.execute(await actions.plan("start", "broken"))
    assert not result.ok
    assert "start lab-n1/broken failed" in result.message and "no such file" in result.message.lower()
    [entry] = audit.read()
    assert entry["ok"] is False and "no such file" in entry["error"].lower()


# -- resolving targets ---------------------------------------------------------------------------

async def test_targets_by_node_name_id_prefix_and_ambiguity(lab: Lab, actions: Actions) -> None:
    a = run(lab, N1, "twin")
    b = run(lab, N2, "twin")
    assert (await actions.resolve(f"{N2}/twin")).id == b.id
    assert (await actions.resolve(a.id[:10])).node == N1
    with pytest.raises(ActionError) as err:
        await actions.resolve("twin")
    assert "ambiguous" in str(err.value) and f"{N1}/twin" in str(err.value) and f"{N2}/twin" in str(err.value)
    with pytest.raises(ActionError, match="no container 'ghost'"):
        await actions.resolve("ghost")


# -- isolation ---------------------------------------------------------------------------------

def _net_view(attrs: dict, cid: str) -> dict:
    return {n: (sorted(a for a in (ep.get("Aliases") or []) if a != cid[:12]), ep.get("IPAMConfig") or None)
            for n, ep in attrs["NetworkSettings"]["Networks"].items()}


def _limits(attrs: dict) -> dict:
    h = attrs["HostConfig"]
    return {k: h[k] for k in ("Memory", "MemorySwap", "NanoCpus", "RestartPolicy")}


async def test_isolate_then_unisolate_from_another_console_restores_exactly(
        lab: Lab, inventory: Inventory, actions: Actions, tmp_path: Path) -> None:
    client = dk(lab, N1)
    client.networks.create("front", driver="bridge", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.251.41.0/24")]))
    client.networks.create("back", driver="bridge")
    c = client.containers.create(BUSYBOX_REF, ["sh", "-c", "echo API_TOKEN=abc123; echo hello; sleep 100000"],
                                 name="suspect", init=True, network="front", mem_limit="64m", nano_cpus=500_000_000,
                                 restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
                                 networking_config=client.api.create_networking_config({
                                     "front": client.api.create_endpoint_config(aliases=["api"],
                                                                                ipv4_address="10.251.41.20")}))
    client.networks.get("back").connect(c, aliases=["api-back"])
    c.start()
    c.exec_run(["sh", "-c", "echo x > /tmp/dropped"])
    c.reload()
    before_nets, before_limits = _net_view(c.attrs, c.id), _limits(c.attrs)

    plan = await actions.plan("isolate", "suspect", freeze=True, cpus=0.25, memory="32m", reason="beaconing")
    assert any("berth-q-" in line for line in plan.summary)
    result = await actions.execute(plan)
    assert result.ok, result.message
    c.reload()
    qname = f"berth-q-{c.id[:12]}"
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {qname}
    assert client.networks.get(qname).attrs["Internal"] is True
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert c.attrs["HostConfig"]["Memory"] == 32 * 2**20 and c.attrs["HostConfig"]["NanoCpus"] == 250_000_000
    assert c.status == "paused"
    evidence = result.details["evidence"]
    assert "hello" in evidence["logs_tail"] and evidence["fs_diff"]["counts"]
    assert "abc123" not in actions.audit.path.read_text()  # the logs tail is masked in the record

    # A second console (fresh Actions, fresh poller) sees the isolation from the node alone.
    async with Fleet(inventory) as fleet:
        snap = await fleet.wait_complete(10)
    [seen] = [x for x in snap.containers if x.name == "suspect"]
    assert seen.isolated
    other = Actions(inventory, audit=AuditLog(tmp_path / "other.jsonl", user="second@console"))
    try:
        with pytest.raises(ActionError, match="already isolated"):
            await other.plan("isolate", "suspect")
        undo = await other.plan("unisolate", "suspect")
        assert any("tester@lab" in line and "beaconing" in line for line in undo.summary)
        result = await other.execute(undo)
        assert result.ok, result.message
    finally:
        await other.aclose()
    c.reload()
    assert _net_view(c.attrs, c.id) == before_nets
    assert _limits(c.attrs) == before_limits
    assert c.status == "running"
    assert qname not in [n.name for n in client.networks.list()]


async def test_isolating_a_host_network_container_is_refused(lab: Lab, actions: Actions) -> None:
    run(lab, N1, "hostnet", network_mode="host")
    with pytest.raises(ActionError, match="host networking"):
        await actions.plan("isolate", "hostnet")


# -- cordon ------------------------------------------------------------------------------------------

async def test_cordon_is_seen_by_placement_and_undone(lab: Lab, actions: Actions) -> None:
    run(lab, N1, "mover", mem_limit="32m")
    result = await actions.execute(await actions.plan("cordon", N2, reason="disk swap"))
    assert result.ok
    assert "berth-cordon" in [n.name for n in dk(lab, N2).networks.list()]
    with pytest.raises(ActionError, match="cordoned"):
        await actions.plan("migrate", "mover", to=N2)
    ranked = dict(await actions.rank_targets(await actions.resolve("mover")))
    assert ranked[N2].startswith("unfit") and "cordoned by tester@lab" in ranked[N2]
    assert not ranked[N3].startswith("unfit")
    assert (await actions.execute(await actions.plan("uncordon", N2))).ok
    assert "berth-cordon" not in [n.name for n in dk(lab, N2).networks.list()]


# -- migration -----------------------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_migrate_keeps_config_volume_data_and_writable_layer(lab: Lab, actions: Actions,
                                                                   audit: AuditLog) -> None:
    src = dk(lab, N1)
    # An image only n1 has: the migration must transfer it.
    base = run(lab, N1, "imagebase", cmd=["sh", "-c", "echo v1 > /app-version; sleep 100000"])
    base.exec_run(["true"])
    base.stop(timeout=1)
    src.images.get(BUSYBOX_REF)
    base.commit("berth/app", "v1")
    base.remove()
    assert "berth/app:v1" not in [t for i in dk(lab, N2).images.list() for t in i.tags]

    src.networks.create("app", driver="bridge", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.251.42.0/24")]))
    port = random.randint(20000, 40000)
    c = src.containers.create(
        "berth/app:v1", ["sh", "-c", "while true; do date >> /data/ticks; sleep 0.2; done"], name="web", init=True,
        environment={"MODE": "prod", "DB_PASSWORD": "hunter2"}, labels={"tenant": "acme", "tier": "web"},
        mem_limit="96m", nano_cpus=250_000_000, restart_policy={"Name": "unless-stopped"},
        healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "retries": 2},
        log_config=LogConfig(type="json-file", config={"max-size": "1m"}),
        ports={"8080/tcp": port}, volumes={"appdata": {"bind": "/data", "mode": "rw"}}, network="app",
        networking_config=src.api.create_networking_config({
            "app": src.api.create_endpoint_config(aliases=["web", "www"], ipv4_address="10.251.42.10")}))
    c.start()
    c.exec_run(["sh", "-c", ("dd if=/dev/urandom of=/data/blob bs=64k count=32 2>/dev/null; mkdir -p /data/sub;"
                " echo nested > /data/sub/n; ln -s blob /data/link; dd if=/dev/urandom of=/srv-layer bs=1k"
                " count=100 2>/dev/null; mkdir -p /opt/deep/dir; echo deep > /opt/deep/dir/f; rm /etc/group")])

    def late_changes(p):  # runs while the source still serves: must arrive through the delta copy
        if p.phase == "switch" and p.detail.startswith("stopping"):
            c.exec_run(["sh", "-c", "echo late > /data/late; echo more >> /data/sub/n; echo late > /opt/late"])

    plan = await actions.plan("migrate", "web", to=N2)
    text = "\n".join(plan.summary)
    assert "transfer" in text and "appdata:/data" in text and f"density {N2} after" in text
    assert "hunter2" not in text
    seen = []
    result = await actions.execute(plan, lambda p: (seen.append(p), late_changes(p)))
    assert result.ok, result.message
    assert result.downtime is not None and result.downtime < 30
    assert {p.phase for p in seen} >= {"plan", "lock", "pre-copy", "switch", "finalize", "done"}
    assert seen[-1].bytes_done > 2 * 2**20

    c.reload()
    assert c.status == "exited" and c.name.startswith("web-migrated-")
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    t = dk(lab, N2).containers.get("web")
    assert t.status == "running" and t.attrs["State"]["Health"]["Status"] == "healthy"
    for key in ("Env", "Labels", "Cmd", "Entrypoint", "Healthcheck", "Image", "ExposedPorts"):
        assert t.attrs["Config"].get(key) == c.attrs["Config"].get(key), key
    for key in ("Memory", "NanoCpus", "LogConfig", "PortBindings", "Init", "NetworkMode"):
        assert t.attrs["HostConfig"][key] == c.attrs["HostConfig"][key], key
    assert t.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert _net_view(t.attrs, t.id) == _net_view(c.attrs, c.id)
    assert dk(lab, N2).images.get("berth/app:v1").id == src.images.get("berth/app:v1").id
    for path in ("/data/blob", "/data/sub/n", "/data/late", "/srv-layer", "/opt/deep/dir/f", "/opt/late",
                 "/app-version"):
        assert _sha(read_file(t, path)) == _sha(read_file(c, path)), path
    assert read_file(t, "/data/late") == b"late\n" and read_file(t, "/data/sub/n") == b"nested\nmore\n"
    with pytest.raises(docker.errors.NotFound):
        read_file(t, "/etc/group")  # deleted in the source's layer: deleted on the target too
    [entry] = audit.read()
    assert entry["ok"] and entry["details"]["downtime"] == round(result.downtime, 3)
    assert [p["phase"] for p in entry["phases"]] == ["plan", "pre-copy", "switch", "finalize"]
    assert "hunter2" not in audit.path.read_text()

    final = await actions.plan("migrate", "web", finalize=True)
    assert (await actions.execute(final)).ok
    assert not [n for n in names(lab, N1) if n.startswith("web")]


async def test_preflight_refuses_name_and_port_conflicts_without_touching_the_target(
        lab: Lab, actions: Actions) -> None:
    port = random.randint(20000, 40000)
    dk(lab, N2).networks.create("edge", driver="bridge")
    dk(lab, N1).networks.create("edge", driver="bridge")
    run(lab, N2, "squatter", network="edge", ports={"81/tcp": port})
    # Created only: the lab's nodes share one host, so it could not bind the port while the squatter has it.
    dk(lab, N1).containers.create(BUSYBOX_REF, ["sleep", "1000"], name="api", network="edge", ports={"80/tcp": port})
    run(lab, N2, "api")
    before = names(lab, N2)
    with pytest.raises(ActionError) as err:
        await actions.plan("migrate", f"{N1}/api", to=N2)
    text = str(err.value)
    assert "a container named api already exists on lab-n2" in text and f"host port *:{port}/tcp" in text
    assert "\n" not in text
    assert names(lab, N2) == before


async def test_preflight_refuses_bind_mounts_unless_allowed(lab: Lab, actions: Actions, tmp_path: Path) -> None:
    run(lab, N1, "binder", volumes={str(tmp_path): {"bind": "/host", "mode": "rw"}})
    with pytest.raises(ActionError, match="bind-mounts host path"):
        await actions.plan("migrate", "binder", to=N2)
    plan = await actions.plan("migrate", "binder", to=N2, allow_bind=True)
    assert any("bind mount" in line for line in plan.summary)


async def test_two_concurrent_migrations_of_one_container_one_is_refused(
        lab: Lab, inventory: Inventory, actions: Actions, tmp_path: Path) -> None:
    run(lab, N1, "solo", mem_limit="32m")
    other = Actions(inventory, audit=AuditLog(tmp_path / "other.jsonl", user="other@console"))
    try:
        p1 = await actions.plan("migrate", "solo", to=N2)
        p2 = await other.plan("migrate", "solo", to=N3)
        r1, r2 = await asyncio.gather(actions.execute(p1), other.execute(p2))
    finally:
        await other.aclose()
    assert sorted([r1.ok, r2.ok]) == [False, True]
    loser = r2 if r1.ok else r1
    assert "locked by" in loser.message and "doing migrate" in loser.message
    assert loser.refused  # nothing changed: the CLI says so with exit status 3, as for the same refusal at plan time
    running = [(n, x.name) for n in (N1, N2, N3) for x in dk(lab, n).containers.list() if x.name == "solo"]
    assert len(running) == 1
    assert not [x for n in (N1, N2, N3) for x in dk(lab, n).containers.list(all=True)
                if x.name.startswith("berth-lock-")]


async def test_drain_moves_everything_off_and_cordons(lab: Lab, actions: Actions, audit: AuditLog) -> None:
    run(lab, N3, "d1", mem_limit="16m")
    run(lab, N3, "d2", mem_limit="16m")
    plan = await actions.plan("drain", N3, concurrency=2)
    assert plan.bulk and any("d1" in line for line in plan.summary) and any("d2" in line for line in plan.summary)
    seen: list = []
    result = await actions.execute(plan, progress=seen.append)
    assert result.ok, result.message
    # the progress says how far the drain is: "n of N" for every container it moves
    counted = {p.phase.split(":")[0] for p in seen if " of 2 " in p.phase}
    assert counted == {"1 of 2 d1", "2 of 2 d2"} or counted == {"1 of 2 d2", "2 of 2 d1"}, counted
    assert [x.name for x in dk(lab, N3).containers.list()] == []
    moved = [x.name for n in (N1, N2) for x in dk(lab, n).containers.list()]
    assert sorted(moved) == ["d1", "d2"]
    assert "berth-cordon" in [n.name for n in dk(lab, N3).networks.list()]
    assert [e["action"] for e in audit.read()] == ["drain", "migrate", "migrate"]


async def test_read_only_refuses_plans_and_execution(lab: Lab, inventory: Inventory, actions: Actions) -> None:
    run(lab, N1, "ro")
    plan = await actions.plan("stop", "ro")
    ro = Actions(inventory, read_only=True, audit=actions.audit)
    try:
        with pytest.raises(ReadOnlyError):
            await ro.plan("stop", "ro")
        with pytest.raises(ReadOnlyError):
            await ro.execute(plan)
    finally:
        await ro.aclose()
    assert dk(lab, N1).containers.get("ro").status == "running"
    assert actions.audit.read() == []


# -- the CLI, as another process ---------------------------------------------------------------

def berth(*args: str, inventory: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    return subprocess.run([sys.executable, "-m", "console", *args, "-i", str(inventory)], capture_output=True,
                          text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=240, check=False)


async def test_cli_migrate_prints_progress_and_audit_shows_it(lab: Lab, tmp_path: Path) -> None:
    inv = lab.write_inventory(tmp_path / "inv.toml")
    run(lab, N1, "cli-web", mem_limit="32m")
    refused = berth("migrate", "cli-web", "--to", N2, inventory=inv, state=tmp_path)
    assert refused.returncode == 3 and "pass --yes" in refused.stderr and refused.stderr.count("\n") == 1
    done = berth("migrate", "cli-web", "--to", N2, "--yes", inventory=inv, state=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pre-copy" in done.stdout and "switch: source stopped" in done.stdout and "downtime" in done.stdout
    assert dk(lab, N2).containers.get("cli-web").status == "running"
    log = berth("audit", inventory=inv, state=tmp_path)
    assert f"migrate lab-n1/cli-web -> {N2}  ok" in log.stdout
    isolated = berth("isolate", f"{N2}/cli-web", "--yes", "--reason", "test", inventory=inv, state=tmp_path)
    assert isolated.returncode == 0, isolated.stderr
    again = berth("isolate", "cli-web", "--yes", inventory=inv, state=tmp_path)
    assert again.returncode == 3 and "already isolated" in again.stderr
    assert berth("unisolate", "cli-web", "--yes", inventory=inv, state=tmp_path).returncode == 0


async def test_final_pass_catches_late_appends_and_deletions_in_a_large_volume(lab: Lab, actions: Actions) -> None:
    c = run(lab, N1, "store", volumes={"storedata": {"bind": "/data", "mode": "rw"}})
    c.exec_run(["sh", "-c", "dd if=/dev/urandom of=/data/big bs=1M count=16 2>/dev/null; echo v > /data/victim"])
    await asyncio.sleep(1.5)  # older than the pre-copy: the final pass must notice the change itself

    def late(container, script):
        def hook(p):
            if p.phase == "switch" and p.detail.startswith("stopping"):
                container.exec_run(["sh", "-c", script])
        return hook

    # Few large files: the final pass stats paths instead of reading 16 MB again.
    result = await actions.execute(await actions.plan("migrate", "store", to=N2),
                                   late(c, "echo tail >> /data/big"))
    assert result.ok, result.message
    t = dk(lab, N2).containers.get("store")
    assert _sha(read_file(t, "/data/big")) == _sha(read_file(c, "/data/big"))
    assert read_file(t, "/data/big").endswith(b"tail\n")

    # A deletion in the window cannot be replayed through the archive API: the target is rebuilt.
    await asyncio.sleep(1.5)
    seen = []
    result = await actions.execute(await actions.plan("migrate", f"{N2}/store", to=N3),
                                   lambda p: (seen.append(p.detail), late(t, "rm /data/victim")(p)))
    assert result.ok, result.message
    assert any("copying again in full" in d for d in seen)
    u = dk(lab, N3).containers.get("store")
    with pytest.raises(docker.errors.NotFound):
        read_file(u, "/data/victim")
    assert _sha(read_file(u, "/data/big")) == _sha(read_file(c, "/data/big"))


async def test_a_lock_left_by_a_crashed_console_refuses_until_broken_when_stale(lab: Lab, actions: Actions) -> None:
    c = run(lab, N1, "held")
    dk(lab, N1).containers.create(BUSYBOX_REF, ["x"], name=f"berth-lock-{c.id[:12]}", network_mode="none", labels={
        "berth.role": "lock", "berth.target": c.id, "berth.action": "restart", "berth.owner": "gone@elsewhere",
        "berth.since": str(time.time() - 3600)})
    with pytest.raises(ActionError, match=r"locked by gone@elsewhere doing restart since .* \(stale"):
        await actions.plan("restart", "held")
    result = await actions.execute(await actions.plan("restart", "held", break_stale=True))
    assert result.ok, result.message
    assert [x.name for x in dk(lab, N1).containers.list(all=True)] == ["held"]


async def test_stop_and_restart_plans_state_the_grace_period_in_seconds(lab: Lab, actions: Actions) -> None:
    # Given a container with dockerd's default grace, and one created with its own StopTimeout
    run(lab, N1, "plain")
    api = dk(lab, N1).api
    api.start(api.create_container(BUSYBOX_REF, ["sleep", "3600"], name="patient", stop_timeout=3,
                                   host_config=api.create_host_config(init=True, network_mode="none")))
    # Then each plan says the seconds the run will wait before SIGKILL, and where they come from
    plain = await actions.plan("restart", "plain")
    assert "grace period: 10s (the default)" in plain.summary
    assert any("SIGKILL after 10s" in line for line in plain.summary)
    patient = await actions.plan("stop", "patient")
    assert "grace period: 3s (the container's StopTimeout)" in patient.summary
    forced = await actions.plan("restart", "patient", timeout=5)
    assert "grace period: 5s (--timeout)" in forced.summary
