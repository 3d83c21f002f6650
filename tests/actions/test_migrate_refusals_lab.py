"""Migrate refuses what it would split, on real dockerd nodes: a volume other containers mount, a host path
others bind, a namespace others join or that it joins, volumes taken from another container; a lock taken
by another console between the plan and the go-ahead. Each refusal is one line naming the others, exit
status 3, and leaves both nodes exactly as they were."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from action_helpers import dk, read_file, run
from crashkit import Paused
from crashkit import berth as crash_berth
from dockerlab import BUSYBOX_REF, Lab

from console.actions import ActionError, Actions, AuditLog

pytestmark = pytest.mark.lab
N1, N2 = "lab-n1", "lab-n2"
ROOT = Path(__file__).resolve().parents[2]


def nodes_state(lab: Lab) -> dict[str, Any]:
    """Everything a migration could change on either node: containers (state, restart policy), volumes,
    networks, images and their tags."""
    out: dict[str, Any] = {}
    for node in (N1, N2):
        client = dk(lab, node)
        out[node] = {
            "containers": sorted((c.name, c.status, c.attrs["HostConfig"]["RestartPolicy"]["Name"])
                                 for c in client.containers.list(all=True)),
            "volumes": sorted(v.name for v in client.volumes.list()),
            "networks": sorted(n.name for n in client.networks.list()),
            "images": sorted((i.id, tuple(sorted(i.tags))) for i in client.images.list()),
        }
    return out


def assert_refused_cleanly(lab: Lab, before: dict[str, Any], audit: AuditLog, tmp_path: Path) -> dict[str, Any]:
    """Nothing changed on either node (no target side, no lock), no journal, and the audit says refused."""
    assert nodes_state(lab) == before
    assert not [c for n in (N1, N2) for c in dk(lab, n).containers.list(all=True) if c.name.startswith("berth-")]
    assert not list((tmp_path / "migrations").glob("*.json"))
    [entry] = audit.read()
    assert entry["action"] == "migrate" and entry["ok"] is False and entry["details"].get("refused") is True
    assert entry["status"] == "refused"
    assert entry["ended_at"] and [p["phase"] for p in entry["phases"]] == ["plan"]
    return entry


def berth(*args: str, inventory: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    return subprocess.run([sys.executable, "-m", "console", *args, "-i", str(inventory)], capture_output=True,
                          text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=240, check=False)


# -- item 4: a volume shared with other containers -------------------------------------------------------

async def test_a_volume_other_containers_mount_is_refused_naming_them(lab: Lab, actions: Actions,
                                                                      tmp_path: Path) -> None:
    # Given w1 and w2 running with the same named volume, and w3 created (never started) with it too
    run(lab, N1, "w1", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    run(lab, N1, "w2", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    dk(lab, N1).containers.create(BUSYBOX_REF, ["sleep", "1000"], name="w3", network_mode="none",
                                  volumes={"shared": {"bind": "/mnt", "mode": "ro"}})
    before = nodes_state(lab)
    # When w1 is planned to move alone
    with pytest.raises(ActionError) as err:
        await actions.plan("migrate", "w1", to=N2)
    # Then one line names the volume and every other mounter, running or not
    text = str(err.value)
    assert "\n" not in text
    assert "volume shared is also mounted by" in text and "w2 (running)" in text and "w3 (created)" in text
    assert f"on {N1}" in text and "diverging" in text
    assert nodes_state(lab) == before
    # And the command line says the same on one line, exit status 3
    inv = lab.write_inventory(tmp_path / "inv.toml")
    cli = berth("migrate", "w1", "--to", N2, "--yes", inventory=inv, state=tmp_path / "cli")
    assert cli.returncode == 3, cli.stderr
    assert cli.stderr.count("\n") == 1 and "w2 (running)" in cli.stderr and "w3 (created)" in cli.stderr
    assert nodes_state(lab) == before


async def test_a_mounter_that_appears_after_the_plan_is_refused_at_execution(
        lab: Lab, actions: Actions, audit: AuditLog, tmp_path: Path) -> None:
    # Given a plan made while w1 was the volume's only user
    run(lab, N1, "w1", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    plan = await actions.plan("migrate", "w1", to=N2)
    assert any(line == "volumes: shared:/data" for line in plan.summary)
    # When a second container mounts the volume before the operator's go-ahead
    run(lab, N1, "w2", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    before = nodes_state(lab)
    result = await actions.execute(plan)
    # Then the move is refused, nothing changed, and the audit record says refused
    assert not result.ok and result.refused
    assert "volume shared is also mounted by w2 (running)" in result.message
    entry = assert_refused_cleanly(lab, before, audit, tmp_path)
    assert "w2 (running)" in entry["error"]
    assert dk(lab, N1).containers.get("w1").status == "running"


async def test_host_paths_bound_by_others_are_named_in_the_refusal_and_in_the_plan(
        lab: Lab, actions: Actions, tmp_path: Path) -> None:
    shared = tmp_path / "srv"
    (shared / "sub").mkdir(parents=True)
    run(lab, N1, "b1", volumes={str(shared): {"bind": "/srv", "mode": "rw"}})
    run(lab, N1, "b2", volumes={str(shared / "sub"): {"bind": "/sub", "mode": "ro"}})
    with pytest.raises(ActionError) as err:
        await actions.plan("migrate", "b1", to=N2)
    assert f"bind-mounts host path {shared}, also bind-mounted by b2 (running)" in str(err.value)
    plan = await actions.plan("migrate", "b1", to=N2, allow_bind=True)
    [warning] = [line for line in plan.summary if line.startswith("warning: bind mount")]
    assert "also bind-mounted by b2 (running)" in warning


# -- item 5: namespaces and volumes others take from it, or it takes from others ---------------------------

async def test_a_container_whose_namespaces_others_join_is_refused_naming_them(
        lab: Lab, actions: Actions, tmp_path: Path) -> None:
    # Given base, whose network side joins, whose PID and IPC namespaces pidder joins, whose volumes vf takes
    run(lab, N1, "base", ipc_mode="shareable", volumes={"basedata": {"bind": "/data", "mode": "rw"}})
    run(lab, N1, "side", network_mode="container:base")
    run(lab, N1, "pidder", pid_mode="container:base", ipc_mode="container:base")
    dk(lab, N1).containers.create(BUSYBOX_REF, ["sleep", "1000"], name="vf", network_mode="none",
                                  volumes_from=["base:ro"])
    before = nodes_state(lab)
    # When base is planned to move
    with pytest.raises(ActionError) as err:
        await actions.plan("migrate", "base", to=N2)
    text = str(err.value)
    # Then one line names each dependant and what it takes
    assert "\n" not in text
    assert ("pidder (running) joins its PID and IPC namespaces, side (running) joins its network namespace, "
            "vf (created) mounts its volumes (--volumes-from) on lab-n1: moving base alone would cut them off") in text
    assert "volume basedata is also mounted by vf (created) on lab-n1" in text
    # And the dependants cannot move without it either
    with pytest.raises(ActionError, match=r"it joins the network namespace of base \(running\) on lab-n1: it "
                                          r"cannot run on another node without base"):
        await actions.plan("migrate", "side", to=N2)
    with pytest.raises(ActionError, match=r"it joins the PID and IPC namespaces of base \(running\)"):
        await actions.plan("migrate", "pidder", to=N2)
    with pytest.raises(ActionError, match=r"it mounts the volumes of base \(running\) \(--volumes-from\)"):
        await actions.plan("migrate", "vf", to=N2)
    assert nodes_state(lab) == before


async def test_a_namespace_joiner_that_appears_after_the_plan_is_refused_and_keeps_its_network(
        lab: Lab, actions: Actions, audit: AuditLog, tmp_path: Path) -> None:
    dk(lab, N1).networks.create("app", driver="bridge")
    run(lab, N1, "base", network="app")
    plan = await actions.plan("migrate", "base", to=N2)
    side = run(lab, N1, "side", network_mode="container:base")
    before = nodes_state(lab)
    result = await actions.execute(plan)
    assert not result.ok and result.refused
    assert "side (running) joins its network namespace on lab-n1: moving base alone would cut it off" in result.message
    assert_refused_cleanly(lab, before, audit, tmp_path)
    # side still has base's network, not only lo
    out = side.exec_run(["ip", "-o", "addr"]).output.decode()
    assert "eth0" in out, out


# -- item 9: the lock refusal exits 3 wherever it is found; the plan follows the container's state -------

def _read_until(fd: int, marker: str, proc: subprocess.Popen[bytes]) -> str:
    """Read a child's output until ``marker`` shows (the child waits for us there, so this cannot race)."""
    seen = b""
    while marker.encode() not in seen:
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"{marker!r} never came (exit {proc.wait()}): {seen.decode(errors='replace')}")
        seen += chunk
    return seen.decode()


def test_a_lock_taken_between_the_plan_and_the_go_ahead_is_a_refusal_exit_3(lab: Lab, tmp_path: Path) -> None:
    # Given an operator looking at a migrate plan at the prompt
    inv = lab.write_inventory(tmp_path / "inv.toml")
    c = run(lab, N1, "held")
    master, slave = pty.openpty()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "cli")}
    proc = subprocess.Popen([sys.executable, "-m", "console", "migrate", "held", "--to", N2, "-i", str(inv)],
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    os.close(slave)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        shown = _read_until(proc.stdout.fileno(), "Go ahead? [y/N]", proc)
        assert "effect: pre-copy while running" in shown
        # When another console takes the container's lock before they say yes
        dk(lab, N1).containers.create(BUSYBOX_REF, ["x"], name=f"berth-lock-{c.id[:12]}", network_mode="none",
                                      labels={"berth.role": "lock", "berth.target": c.id, "berth.action": "restart",
                                              "berth.owner": "other@console", "berth.since": str(time.time())})
        before = nodes_state(lab)
        os.write(master, b"y\n")
        code = proc.wait(timeout=120)
        err = proc.stderr.read().decode()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Then it is refused as at plan time: exit 3, one line naming the holder, nothing changed
    assert code == 3, err
    assert err.count("\n") == 1 and "cannot migrate held" in err and "locked by other@console doing restart" in err
    assert nodes_state(lab) == before
    assert dk(lab, N1).containers.get("held").status == "running"
    [entry] = AuditLog(tmp_path / "cli" / "berth" / "audit.jsonl").read()
    assert entry["ok"] is False and entry["details"] == {"refused": True} and entry["status"] == "refused"
    assert [p["phase"] for p in entry["phases"]] == ["plan"]
    assert not list((tmp_path / "cli" / "berth" / "migrations").glob("*.json"))


async def test_a_lock_found_when_any_action_runs_is_a_refusal(lab: Lab, actions: Actions, audit: AuditLog) -> None:
    c = run(lab, N1, "busy")
    plan = await actions.plan("restart", "busy")
    dk(lab, N1).containers.create(BUSYBOX_REF, ["x"], name=f"berth-lock-{c.id[:12]}", network_mode="none",
                                  labels={"berth.role": "lock", "berth.target": c.id, "berth.action": "isolate",
                                          "berth.owner": "other@console", "berth.since": str(time.time())})
    started = dk(lab, N1).containers.get("busy").attrs["State"]["StartedAt"]
    result = await actions.execute(plan)
    assert not result.ok and result.refused
    assert result.message.startswith("restart lab-n1/busy refused: ") and "locked by other@console" in result.message
    assert dk(lab, N1).containers.get("busy").attrs["State"]["StartedAt"] == started
    [entry] = audit.read()
    assert entry["ok"] is False and entry["details"] == {"refused": True}


async def test_the_plan_for_a_container_that_is_not_running_says_nothing_is_stopped(lab: Lab,
                                                                                     actions: Actions) -> None:
    dk(lab, N1).containers.create(BUSYBOX_REF, ["sleep", "1000"], name="cold", network_mode="none")
    done = run(lab, N1, "done")
    done.stop(timeout=1)
    for name, status in (("cold", "created"), ("done", "exited")):
        plan = await actions.plan("migrate", name, to=N2)
        [effect] = [line for line in plan.summary if line.startswith("effect:")]
        assert "while running" not in effect and "stopped source" not in effect, effect
        assert f"({status}, nothing to stop)" in effect and "not started" in effect, effect
    result = await actions.execute(await actions.plan("migrate", "cold", to=N2))
    assert result.ok, result.message
    assert dk(lab, N2).containers.get("cold").status == "created"


# -- item 6: the image reference the operator wrote survives the move ------------------------------------

def _build(lab: Lab, node: str, ref: str, content: str) -> str:
    """An image only ``node`` has: busybox plus one file; returns its id."""
    base = run(lab, node, f"build-{node}", cmd=["sh", "-c", f"echo {content} > /app-version; sleep 100000"])
    base.exec_run(["true"])
    base.stop(timeout=1)
    repo, tag = ref.split(":")
    image = base.commit(repo, tag)
    base.remove()
    return str(image.id)


async def test_a_migrated_container_keeps_its_image_reference_when_the_ids_differ(lab: Lab,
                                                                                  actions: Actions) -> None:
    # Given berth/busybox:test imported on each node on its own: the same layers under two ids
    src_id = dk(lab, N1).images.get(BUSYBOX_REF).id
    dst_id = dk(lab, N2).images.get(BUSYBOX_REF).id
    assert src_id != dst_id
    run(lab, N1, "ref")
    plan = await actions.plan("migrate", "ref", to=N2)
    [line] = [x for x in plan.summary if x.startswith("image:")]
    assert "another build of the same layers and config" in line and "used as it is" in line, line
    result = await actions.execute(plan)
    assert result.ok, result.message
    # Then the copy shows the reference as written, `docker images` names its image, and image filters find it
    t = dk(lab, N2).containers.get("ref")
    assert t.attrs["Config"]["Image"] == BUSYBOX_REF
    assert BUSYBOX_REF in dk(lab, N2).images.get(t.attrs["Image"]).tags
    assert [c.name for c in dk(lab, N2).containers.list(filters={"ancestor": BUSYBOX_REF})] == ["ref"]
    assert dk(lab, N2).images.get(BUSYBOX_REF).id == dst_id  # nothing retagged


async def test_a_tag_naming_another_image_on_the_target_is_refused_unless_by_id(
        lab: Lab, actions: Actions, audit: AuditLog, tmp_path: Path) -> None:
    src_id = _build(lab, N1, "berth/app:v1", "one")
    dst_id = _build(lab, N2, "berth/app:v1", "two")
    run(lab, N1, "app", image="berth/app:v1")
    before = nodes_state(lab)
    with pytest.raises(ActionError) as err:
        await actions.plan("migrate", "app", to=N2)
    text = str(err.value)
    assert "\n" not in text
    assert (f"image berth/app:v1 on {N2} is another image ({dst_id[7:19]}, not the {src_id[7:19]} it runs)"
            in text and "--image-by-id" in text)
    assert nodes_state(lab) == before
    # With --image-by-id the copy runs the exact image, and the target's tag still names its own image
    plan = await actions.plan("migrate", "app", to=N2, image_by_id=True)
    assert any(line.startswith(f"warning: the copy's image shows as {src_id[7:19]}") for line in plan.summary)
    result = await actions.execute(plan)
    assert result.ok, result.message
    t = dk(lab, N2).containers.get("app")
    assert t.attrs["Image"] == src_id and read_file(t, "/app-version") == b"one\n"
    assert dk(lab, N2).images.get("berth/app:v1").id == dst_id


async def test_an_image_sent_with_its_tag_is_removed_again_by_rollback(lab: Lab, actions: Actions) -> None:
    # Given an image only n1 has, and a container healthy on n1 only (its check reads the node's data root)
    _build(lab, N1, "berth/solo:v1", "solo")
    run(lab, N1, "solo", image="berth/solo:v1",
        healthcheck={"test": ["CMD-SHELL", "grep -q /n1/data/ /proc/self/mountinfo"], "interval": 200_000_000,
                     "retries": 1})
    before = nodes_state(lab)
    tagged = []

    def watch(p: Any) -> None:
        if p.phase == "switch" and p.detail.startswith("starting"):
            tagged.extend(i.id for i in dk(lab, N2).images.list() if "berth/solo:v1" in i.tags)

    plan = await actions.plan("migrate", "solo", to=N2)
    assert any(line.startswith("image: transfer") and line.endswith("as berth/solo:v1") for line in plan.summary)
    result = await actions.execute(plan, watch)
    # Then the move failed on the target's health and rolled back; the tag it had added went with it
    assert not result.ok and "unhealthy" in result.message, result.message
    assert tagged, "the image should have been on the target under its reference"
    assert dk(lab, N1).containers.get("solo").status == "running"
    assert nodes_state(lab) == before


async def test_an_image_already_on_the_target_by_id_gets_its_reference(lab: Lab, actions: Actions) -> None:
    image_id = _build(lab, N1, "berth/bare:v1", "bare")
    data = b"".join(dk(lab, N1).images.get(image_id).save(named=False))
    dk(lab, N2).images.load(data)  # loaded by id: no tag on n2
    assert dk(lab, N2).images.get(image_id).tags == []
    run(lab, N1, "bare", image="berth/bare:v1")
    plan = await actions.plan("migrate", "bare", to=N2)
    assert f"image: present on {N2} by id, tagged berth/bare:v1 there" in plan.summary
    result = await actions.execute(plan)
    assert result.ok, result.message
    t = dk(lab, N2).containers.get("bare")
    assert t.attrs["Config"]["Image"] == "berth/bare:v1" and t.attrs["Image"] == image_id


async def test_drain_leaves_containers_that_share_state_where_they_are_and_says_why(lab: Lab,
                                                                                   actions: Actions) -> None:
    # Given a node with two containers sharing a volume and one that shares nothing
    n3 = "lab-n3"
    run(lab, n3, "w1", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    run(lab, n3, "w2", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    run(lab, n3, "free", mem_limit="16m")
    before = nodes_state(lab)
    # When it is drained: refused before anything (the cordon included) changes, naming them
    with pytest.raises(ActionError) as err:
        await actions.plan("drain", n3)
    assert str(err.value).startswith(f"cannot drain {n3}: moving w1, w2 one at a time would split what they share "
                                     f"(w1: volume shared is also mounted by w2 (running)")
    assert nodes_state(lab) == before
    assert "berth-cordon" not in [n.name for n in dk(lab, n3).networks.list()]
    # And with --continue-on-error they stay, the plan and the result say so, and the rest moves
    plan = await actions.plan("drain", n3, continue_on_error=True)
    assert any(line.startswith("  w2: stays, volume shared is also mounted by w1 (running)") for line in plan.summary)
    result = await actions.execute(plan)
    assert result.ok, result.message
    assert result.message.endswith("1 container(s) moved; left on it (they share state): w1, w2")
    assert sorted(c.name for c in dk(lab, n3).containers.list()) == ["w1", "w2"]


async def test_recover_rollback_removes_the_tag_a_killed_migration_added(lab: Lab, tmp_path: Path) -> None:
    # Given Berth SIGKILLed after it sent an image only n1 had (tagged on n2) and created the target
    _build(lab, N1, "berth/sent:v1", "sent")
    run(lab, N1, "sent", image="berth/sent:v1")
    before = nodes_state(lab)
    inv, state = lab.write_inventory(tmp_path / "inv.toml"), tmp_path / "state"
    migrating = Paused(["migrate", "sent", "--to", N2, "--yes"], inv, state, "pre-copy:target-created")
    try:
        journal = migrating.wait_paused()
    finally:
        migrating.kill()
    assert journal["created"]["tags"] == ["berth/sent:v1"]
    assert "berth/sent:v1" in [t for i in dk(lab, N2).images.list() for t in i.tags]
    # When the operator rolls it back
    done = crash_berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    # Then n2 is as it was: no container, no tag, no image
    assert done.returncode == 0, done.stderr
    assert "image tag berth/sent:v1" in done.stdout
    assert nodes_state(lab) == before


async def test_no_node_is_offered_for_a_container_no_move_could_take_alone(lab: Lab, actions: Actions) -> None:
    # The console's picker ranks nodes first: it must not offer any when every choice would be refused.
    run(lab, N1, "w1", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    run(lab, N1, "w2", volumes={"shared": {"bind": "/data", "mode": "rw"}})
    with pytest.raises(ActionError, match=r"^cannot migrate w1: volume shared is also mounted by w2 "
                                          r"\(running\) on lab-n1"):
        await actions.rank_targets(await actions.resolve("w1"))
    with pytest.raises(ActionError, match=r"^cannot migrate w1: volume shared"):
        await actions.plan("migrate", "w1")  # no --to: the best fit would be picked from the same ranking
