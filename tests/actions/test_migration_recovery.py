"""Berth SIGKILLed mid-migration, then `berth recover`: real dockerd nodes, Berth as a separate process.

Each test runs `berth migrate web --to lab-n2 --yes` with BERTH_FAILPOINT set, so the migration
journals a chosen point and stops there (console/actions/migrate.py); the test waits for that in the
progress output and the journal file, SIGKILLs the process (tests/actions/crashkit.py), and recovers
one way or the other. The
checks are the on-call engineer's: exactly one running copy, the right data, nothing left behind (no
lock, no helper, no half-made target), the journal gone, the audit saying what happened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from action_helpers import dk, names, running, target_side
from crashkit import Paused, berth
from crashkit import killed_at as _killed_at
from dockerlab import Lab

from console.actions import AuditLog

pytestmark = pytest.mark.lab
N1, N2 = "lab-n1", "lab-n2"


def _target_side(lab: Lab) -> dict[str, list[str]]:
    return target_side(lab, N2)


def _running(lab: Lab) -> list[tuple[str, str]]:
    return running(lab, (N1, N2))


def _audit(state: Path) -> dict[str, dict[str, Any]]:
    return {e["action"] or "?": e for e in AuditLog(state / "berth" / "audit.jsonl").read()}


def _journal_gone(state: Path) -> bool:
    return not list((state / "berth" / "migrations").glob("*"))


def _assert_rolled_back(lab: Lab, state: Path, journal: dict[str, Any]) -> None:
    assert _running(lab) == [(N1, "web")]
    src = dk(lab, N1).containers.get("web")
    assert src.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert names(lab, N1) == ["web"], "the stale lock is still on n1"
    assert _target_side(lab) == {"containers": [], "volumes": [], "networks": []}
    assert _journal_gone(state)
    audit = _audit(state)
    assert audit["recover"]["ok"] is True and audit["recover"]["params"]["mode"] == "rollback"
    assert f"web runs on {N1}" in audit["recover"]["details"]["outcome"]
    assert audit["migrate"]["ok"] is False and f"interrupted in {journal['phase']}" in audit["migrate"]["error"]


def _assert_finished(lab: Lab, state: Path, digest: str) -> None:
    assert _running(lab) == [(N2, "web")]
    moved = dk(lab, N2).containers.get("web")
    assert moved.exec_run(["md5sum", "/data/blob"]).output.split()[0].decode() == digest
    assert moved.exec_run(["cat", "/etc/layer"]).output == b"v1\n"
    assert moved.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    [kept] = dk(lab, N1).containers.list(all=True)  # and no lock beside it
    assert kept.name.startswith("web-migrated-") and kept.status == "exited"
    assert kept.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert [c.name for c in dk(lab, N2).containers.list(all=True)] == ["web"], "a helper is left on n2"
    assert _journal_gone(state)
    audit = _audit(state)
    assert audit["recover"]["ok"] is True and f"web runs on {N2}" in audit["recover"]["details"]["outcome"]
    assert audit["migrate"]["ok"] is True and "finished by recover" in audit["migrate"]["error"]


async def test_killed_in_pre_copy_is_listed_finish_is_refused_rollback_restores(lab: Lab, tmp_path: Path) -> None:
    # Given Berth SIGKILLed in pre-copy, after it created web on n2 (not started) and took the lock
    inv, state, journal, _ = _killed_at(lab, tmp_path, "pre-copy:target-created")
    assert journal["phase"] == "pre-copy" and journal["created"]["container"] and not journal["final_copy_done"]
    assert (state / "berth" / "migrations" / f"{journal['audit_id']}.json").stat().st_mode & 0o777 == 0o600
    # When the operator lists unfinished migrations
    listed = berth("recover", inventory=inv, state=state)
    # Then it is there, with its phase
    assert listed.returncode == 0 and journal["audit_id"] in listed.stdout and "pre-copy" in listed.stdout
    # When they ask to finish it: refused, one line, nothing changed (the target lacks data)
    refused = berth("recover", journal["audit_id"], "--finish", "--yes", inventory=inv, state=state)
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1
    assert "final copy was not completed" in refused.stderr
    assert _target_side(lab)["containers"] == ["web"]
    # When they roll it back
    t0 = time.monotonic()
    done = berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    print(f"recover --rollback after pre-copy: {time.monotonic() - t0:.2f}s")
    # Then web runs on n1 only, as before; n2 holds nothing of it; lock, journal gone; the audit says so
    assert done.returncode == 0, done.stderr
    _assert_rolled_back(lab, state, journal)
    # And running it again changes nothing and says the migration has ended
    again = berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    assert again.returncode == 3 and "it has ended" in again.stderr


async def test_killed_after_the_stop_finish_is_refused_rollback_restarts_the_source(
        lab: Lab, tmp_path: Path) -> None:
    # Given Berth SIGKILLed right after it stopped web on n1 (restart policy set to no), before the final copy
    inv, state, journal, _ = _killed_at(lab, tmp_path, "switch:source-stopped")
    assert journal["phase"] == "switch" and journal["source_stopped"] and not journal["final_copy_done"]
    assert _running(lab) == []
    # When the operator tries to finish: refused
    refused = berth("recover", journal["audit_id"], "--finish", "--yes", inventory=inv, state=state)
    assert refused.returncode == 3 and "roll back instead" in refused.stderr
    # When they roll back
    done = berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    # Then web runs again on n1 with restart policy always, and n2 is clean
    assert done.returncode == 0, done.stderr
    assert "source restarted on lab-n1" in done.stdout
    _assert_rolled_back(lab, state, journal)


@pytest.mark.parametrize("mode", ["finish", "rollback"])
async def test_killed_after_the_final_copy_either_way_out_ends_with_one_copy(
        lab: Lab, tmp_path: Path, mode: str) -> None:
    # Given Berth SIGKILLed after the final copy, before it started the target: no copy runs
    inv, state, journal, digest = _killed_at(lab, tmp_path, "switch:final-copy-done")
    assert journal["final_copy_done"] and not journal["target_started"]
    assert _running(lab) == []
    # When the operator recovers it either way
    t0 = time.monotonic()
    done = berth("recover", journal["audit_id"], f"--{mode}", "--yes", inventory=inv, state=state)
    print(f"recover --{mode} after the final copy: {time.monotonic() - t0:.2f}s")
    assert done.returncode == 0, done.stderr
    # Then exactly one copy runs, with the data, and nothing is left behind
    if mode == "finish":
        _assert_finished(lab, state, digest)
    else:
        _assert_rolled_back(lab, state, journal)


async def test_killed_once_the_target_runs_rollback_is_refused_finish_keeps_the_source(
        lab: Lab, tmp_path: Path) -> None:
    # Given Berth SIGKILLed with web already running on n2, before the source was renamed
    inv, state, journal, digest = _killed_at(lab, tmp_path, "finalize:target-running")
    assert _running(lab) == [(N2, "web")]
    # When the operator tries to roll back: refused (the target may hold new writes)
    refused = berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    assert refused.returncode == 3 and "may hold writes" in refused.stderr
    # When they finish
    done = berth("recover", journal["audit_id"], "--finish", "--yes", inventory=inv, state=state)
    # Then the stopped source is kept renamed, the lock is gone and web runs on n2 only
    assert done.returncode == 0, done.stderr
    assert "target already running" in done.stdout
    _assert_finished(lab, state, digest)


async def test_recovery_checks_the_nodes_and_says_what_was_already_fixed_by_hand(
        lab: Lab, tmp_path: Path) -> None:
    # Given Berth SIGKILLed after stopping web on n1
    inv, state, journal, _ = _killed_at(lab, tmp_path, "switch:source-stopped")
    # And the operator already removed the half-made target and started web on n1 by hand
    dk(lab, N2).containers.get("web").remove(force=True)
    dk(lab, N1).containers.get("web").start()
    # When they roll back
    done = berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    # Then the plan and the result say what was found done, and the rest (policy, volume, lock) is finished
    assert done.returncode == 0, done.stderr
    assert "source already running on lab-n1" in done.stdout
    assert "source restart policy always again" in done.stdout
    _assert_rolled_back(lab, state, journal)


async def test_recover_is_refused_in_read_only_and_needs_confirmation(lab: Lab, tmp_path: Path) -> None:
    # Given an unfinished migration
    inv, state, journal, _ = _killed_at(lab, tmp_path, "pre-copy:target-created")
    # When recovering read-only, or without --yes and no terminal
    ro = berth("recover", journal["audit_id"], "--rollback", "--yes", "--read-only", inventory=inv, state=state)
    unconfirmed = berth("recover", journal["audit_id"], "--rollback", inventory=inv, state=state)
    # Then both are refused with exit 3 and nothing changed; listing still works read-only
    assert ro.returncode == 3 and "read-only" in ro.stderr
    assert unconfirmed.returncode == 3 and "pass --yes" in unconfirmed.stderr
    assert _target_side(lab)["containers"] == ["web"] and not _journal_gone(state)
    assert journal["audit_id"] in berth("recover", "--read-only", inventory=inv, state=state).stdout


async def test_a_recovery_killed_in_turn_is_refused_while_it_runs_and_recoverable_after(
        lab: Lab, tmp_path: Path) -> None:
    # Given Berth killed after stopping web, and a rollback of it paused once it took the container's lock
    inv, state, journal, _ = _killed_at(lab, tmp_path, "switch:source-stopped")
    recovering = Paused(["recover", journal["audit_id"], "--rollback", "--yes"], inv, state, "recover:locked")
    try:
        mid = recovering.wait_paused()
        # When another console tries to recover the same migration meanwhile: refused, it is being run
        second = berth("recover", journal["audit_id"], "--finish", "--yes", inventory=inv, state=state)
        assert second.returncode == 3 and f"being run by pid {recovering.proc.pid}" in second.stderr
    finally:
        # When that recovery is SIGKILLed in turn (its lock left on n1)
        recovering.kill()
    assert mid["lock_id"] != journal["lock_id"] and "berth-lock-" + journal["source_id"][:12] in names(lab, N1)
    # Then the rollback run again completes, lock and all
    done = berth("recover", journal["audit_id"], "--rollback", "--yes", inventory=inv, state=state)
    assert done.returncode == 0, done.stderr
    _assert_rolled_back(lab, state, journal)
