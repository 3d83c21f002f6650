"""Berth interrupted mid-action on real dockerd nodes: SIGTERM, SIGHUP (a dropped SSH session), kill -9.

The action is `berth restart` of a container that ignores SIGTERM (stop timeout 10 s), run as a child
process; the signal is sent once the daemon has begun stopping it (its `kill` event is seen), so the
restart is in the daemon's hands. The checks are the on-call engineer's: no lock left that nobody can
clear, an audit record that ends, a container in a sane state, and `berth recover` able to list and
clear what a kill -9 left.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from action_helpers import dk, names, running, target_side
from crashkit import DEADLINE, N2, Paused, Running, berth, workload
from dockerlab import BUSYBOX_REF, Lab

from console.actions import AuditLog
from console.actions.audit import whoami

pytestmark = pytest.mark.lab
N1 = "lab-n1"
SLOW = ["sh", "-c", 'trap "" TERM; sleep 1000']  # PID 1 ignoring TERM: stopping takes the whole timeout


def _slow(lab: Lab) -> Any:
    api = dk(lab, N1).api
    made = api.create_container(BUSYBOX_REF, SLOW, name="slow", stop_timeout=10,
                                host_config=api.create_host_config(network_mode="none"))
    api.start(made["Id"])
    return dk(lab, N1).containers.get(made["Id"])


def _audit(state: Path) -> list[dict[str, Any]]:
    return AuditLog(state / "berth" / "audit.jsonl").read()


def _lock(c: Any) -> str:
    return f"berth-lock-{c.id[:12]}"


def _wait_stop_sent(lab: Lab, cid: str, since: int) -> None:
    """Until the daemon reports the stop signal sent to ``cid`` (its `kill` event)."""
    client = dk(lab, N1)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        events = client.events(since=since, until=int(time.time()) + 1, decode=True,
                               filters={"container": cid, "event": "kill"})
        if any(True for _ in events):
            return
    pytest.fail("the daemon never began stopping the container")


def _mid_restart(lab: Lab, tmp_path: Path) -> tuple[Any, Path, Path, Running]:
    """Given `slow` on n1 and `berth restart slow` running, the daemon already stopping it."""
    c = _slow(lab)
    inv, state = lab.write_inventory(tmp_path / "inv.toml"), tmp_path / "state"
    since = int(time.time()) - 1
    restarting = Running(["restart", "slow", "--yes", "-v"], inv, state)
    restarting.wait_for(f"restart {N1}/slow")
    _wait_stop_sent(lab, c.id, since)
    assert names(lab, N1) == sorted([_lock(c), "slow"]), "the restart holds its lock mid-way"
    return c, inv, state, restarting


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_term_or_hup_mid_restart_finishes_the_step_releases_the_lock_and_ends_the_audit(
        lab: Lab, tmp_path: Path, sig: signal.Signals) -> None:
    c, _, state, restarting = _mid_restart(lab, tmp_path)
    started = c.attrs["State"]["StartedAt"]
    # When the signal arrives while the daemon is stopping the container
    restarting.send(sig)
    code, out = restarting.wait_exit()
    # Then Berth says so, finishes the step in hand and exits with the signal's status
    assert code == 128 + sig, out
    assert f"{sig.name}: stopping restart at its next safe point" in out
    # And the lock is gone, the container runs again (restarted), the audit record ended saying why
    assert names(lab, N1) == ["slow"], "the lock was left behind"
    c.reload()
    assert c.status == "running" and c.attrs["State"]["StartedAt"] != started
    [entry] = _audit(state)
    assert entry["action"] == "restart" and entry["ok"] is True and entry["ended_at"]
    assert entry["details"]["interrupted"] == f"{sig.name}: the step in hand was finished"


def test_kill_9_mid_restart_the_next_restart_breaks_the_dead_lock_and_recover_closes_the_record(
        lab: Lab, tmp_path: Path) -> None:
    c, inv, state, restarting = _mid_restart(lab, tmp_path)
    # When Berth is killed -9 mid-restart
    restarting.send(signal.SIGKILL)
    assert restarting.wait_exit()[0] == -signal.SIGKILL
    # Then its lock and an unended audit record are left
    assert _lock(c) in names(lab, N1)
    [killed] = _audit(state)
    assert killed["ok"] is None
    # When the operator restarts the same container again, without --break-stale
    again = berth("restart", "slow", "--yes", inventory=inv, state=state)
    # Then it succeeds: the lock's process is gone from this host; the audit says which lock it broke
    assert again.returncode == 0, again.stderr
    assert names(lab, N1) == ["slow"]
    second = _audit(state)[1]
    assert second["ok"] is True and "process gone" in second["details"]["broke_lock"]
    assert f"pid {killed['pid']}" in second["details"]["broke_lock"]
    # When they ask what is left to recover: the killed restart's record, named, and no migration
    listed = berth("recover", inventory=inv, state=state)
    assert listed.returncode == 0, listed.stderr
    assert "unfinished actions" in listed.stdout and killed["id"] in listed.stdout
    assert f"restart {N1}/slow" in listed.stdout and "orphan locks" not in listed.stdout
    # Clearing is refused read-only, and refused unconfirmed without a terminal
    ro = berth("recover", "--clear", "--read-only", inventory=inv, state=state)
    assert ro.returncode == 3 and "read-only" in ro.stderr
    unconfirmed = berth("recover", "--clear", inventory=inv, state=state)
    assert unconfirmed.returncode == 3 and "pass --yes" in unconfirmed.stderr
    assert _audit(state)[0]["ok"] is None
    # When they clear it
    cleared = berth("recover", "--clear", "--yes", inventory=inv, state=state)
    assert cleared.returncode == 0, cleared.stderr
    assert "closed 1 unfinished action(s) as interrupted" in cleared.stdout
    # Then the killed restart's record ends as interrupted, by whom, and the clearing is audited itself
    entries = {e["id"]: e for e in _audit(state)}
    closed = entries[killed["id"]]
    assert closed["ok"] is False and closed["status"] == "interrupted" and closed["ended_by"] == whoami()
    assert "closed by recover" in closed["error"]
    [clear] = [e for e in entries.values() if e["action"] == "recover"]
    assert clear["ok"] is True and clear["details"]["closed"] == [killed["id"]]
    assert "nothing to recover" in berth("recover", inventory=inv, state=state).stdout


def test_kill_9_mid_restart_recover_lists_and_clears_the_orphan_lock_and_record(lab: Lab, tmp_path: Path) -> None:
    c, inv, state, restarting = _mid_restart(lab, tmp_path)
    restarting.send(signal.SIGKILL)
    assert restarting.wait_exit()[0] == -signal.SIGKILL
    [killed] = _audit(state)
    # When the operator lists what is left: the lock (its process gone) and the record
    listed = berth("recover", inventory=inv, state=state)
    assert listed.returncode == 0, listed.stderr
    assert "orphan locks" in listed.stdout and f"{N1}/{_lock(c)}" in listed.stdout
    assert "its process is gone" in listed.stdout and killed["id"] in listed.stdout
    # When they clear that action's leftovers by its id
    cleared = berth("recover", killed["id"], "--clear", "--yes", inventory=inv, state=state)
    # Then its lock is removed from the node and its record ends as interrupted
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared 1 orphan lock(s)" in cleared.stdout
    assert _lock(c) not in names(lab, N1)
    closed = {e["id"]: e for e in _audit(state)}[killed["id"]]
    assert closed["status"] == "interrupted" and closed["ok"] is False
    # And the container is in a sane state: it runs (dockerd finished or never began the restart)
    c.reload()
    deadline = time.monotonic() + DEADLINE
    while c.status != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        c.reload()
    assert c.status == "running"


@pytest.mark.parametrize(("failpoint", "sig"), [("pre-copy:target-created", signal.SIGTERM),
                                                ("switch:source-stopped", signal.SIGHUP)], ids=["pre-copy", "switch"])
def test_a_signal_mid_migrate_rolls_back_in_pre_copy_and_finishes_once_the_source_stopped(
        lab: Lab, tmp_path: Path, failpoint: str, sig: signal.Signals) -> None:
    # Given web on n1 migrating to n2, held at a point of its migration
    digest = workload(lab)
    inv, state = lab.write_inventory(tmp_path / "inv.toml"), tmp_path / "state"
    migrating = Paused(["migrate", "web", "--to", N2, "--yes"], inv, state, failpoint)
    journal = migrating.wait_paused()
    # When the signal arrives there
    migrating.proc.send_signal(sig)
    assert migrating.proc.wait(timeout=DEADLINE) == 128 + sig
    # Then the step in hand is rolled back (pre-copy: the source still runs) or finished (its source stopped)
    [entry] = [e for e in _audit(state) if e["action"] == "migrate"]
    if failpoint.startswith("pre-copy"):
        assert running(lab, (N1, N2)) == [(N1, "web")]
        assert target_side(lab, N2)["containers"] == []
        assert entry["ok"] is False and entry["status"] == "interrupted" and "rolled back" in entry["error"]
    else:
        assert running(lab, (N1, N2)) == [(N2, "web")]
        moved = dk(lab, N2).containers.get("web")
        assert moved.exec_run(["md5sum", "/data/blob"]).output.split()[0].decode() == digest
        assert entry["ok"] is True and entry["details"]["interrupted"] == f"{sig.name}: the step in hand was finished"
    assert entry["id"] == journal["audit_id"]
    # And nothing is left for recover: no journal, no lock
    assert not list((state / "berth" / "migrations").glob("*.json"))
    assert not [n for n in names(lab, N1) if n.startswith("berth-lock-")]
