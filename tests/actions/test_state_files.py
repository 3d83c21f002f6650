"""Issue 16.2 against real dockerd: Berth never writes its audit log or journals through a link,
into someone else's file, or into a directory others can write.

Each test runs `berth` as the operator would (a child process, XDG_STATE_HOME per test) against
lab nodes. A refusal is one line `berth: <path>: <problem>`, exit status 3 (refused before anything
changed), and comes before the action runs: the container is untouched (same start time, no lock),
and the file or directory refused keeps its content and mode.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest
from action_helpers import dk, names, run, target_side
from crashkit import N1, N2, berth
from dockerlab import Lab

pytestmark = pytest.mark.lab
NOBODY = pwd.getpwnam("nobody").pw_uid


def _given_web(lab: Lab, tmp_path: Path) -> tuple[Path, Path, str]:
    """web running on n1, an inventory, and a state directory made 0700 by the operator."""
    web = run(lab, N1, "web")
    web.reload()
    inv = lab.write_inventory(tmp_path / "inv.toml")
    state = tmp_path / "state"
    (state / "berth").mkdir(parents=True, mode=0o700)
    return inv, state, web.attrs["State"]["StartedAt"]


def _refused(r: object, path: Path, problem: str) -> None:
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)  # type: ignore[attr-defined]
    err = r.stderr  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("berth: ") and f"{path}: " in err and problem in err, err


def _untouched(lab: Lab, started: str) -> None:
    web = dk(lab, N1).containers.get("web")
    assert web.status == "running" and web.attrs["State"]["StartedAt"] == started, "the restart ran"
    assert names(lab, N1) == ["web"], "a lock was taken"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_a_symlinked_audit_log_refuses_the_restart_and_leaves_its_target_alone(lab: Lab, tmp_path: Path) -> None:
    # Given $XDG_STATE_HOME/berth/audit.jsonl a symlink to some other file (0644)
    inv, state, started = _given_web(lab, tmp_path)
    victim = tmp_path / "victim.conf"
    victim.write_text("setting = 1\n")
    os.chmod(victim, 0o644)
    audit = state / "berth" / "audit.jsonl"
    audit.symlink_to(victim)
    # When the operator restarts web
    r = berth("restart", "web", "--yes", inventory=inv, state=state)
    # Then it is refused in one line naming the log, before anything ran
    _refused(r, audit, "symbolic link")
    assert victim.read_text() == "setting = 1\n" and _mode(victim) == 0o644
    _untouched(lab, started)
    # And once the link is gone, the same restart runs and is audited in a private file
    audit.unlink()
    r = berth("restart", "web", "--yes", inventory=inv, state=state)
    assert r.returncode == 0, r.stderr
    assert _mode(audit) == 0o600 and len(audit.read_text().splitlines()) == 2
    assert dk(lab, N1).containers.get("web").attrs["State"]["StartedAt"] != started


async def test_a_state_directory_its_group_can_write_is_refused(lab: Lab, tmp_path: Path) -> None:
    inv, state, started = _given_web(lab, tmp_path)
    os.chmod(state / "berth", 0o775)
    r = berth("restart", "web", "--yes", inventory=inv, state=state)
    _refused(r, state / "berth", "writable by its group")
    assert _mode(state / "berth") == 0o775 and list((state / "berth").iterdir()) == []
    _untouched(lab, started)


async def test_an_audit_log_owned_by_someone_else_is_refused(lab: Lab, tmp_path: Path) -> None:
    inv, state, started = _given_web(lab, tmp_path)
    audit = state / "berth" / "audit.jsonl"
    audit.write_text('{"planted": true}\n')
    os.chmod(audit, 0o644)
    os.chown(audit, NOBODY, NOBODY)
    r = berth("restart", "web", "--yes", inventory=inv, state=state)
    _refused(r, audit, "owned by uid")
    assert audit.read_text() == '{"planted": true}\n' and _mode(audit) == 0o644 and audit.stat().st_uid == NOBODY
    _untouched(lab, started)
    # `berth audit` does not read it either
    r = berth("audit", inventory=inv, state=state)
    _refused(r, audit, "owned by uid")


async def test_a_symlinked_journal_directory_refuses_the_migration(lab: Lab, tmp_path: Path) -> None:
    # Given the journal directory a link to a directory elsewhere
    inv, state, started = _given_web(lab, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (state / "berth" / "migrations").symlink_to(elsewhere)
    # When web is migrated: refused before the lock, nothing made on n2, nothing journaled there
    r = berth("migrate", "web", "--to", N2, "--yes", inventory=inv, state=state)
    _refused(r, state / "berth" / "migrations", "symbolic link")
    assert list(elsewhere.iterdir()) == []
    assert target_side(lab, N2) == {"containers": [], "volumes": [], "networks": []}
    _untouched(lab, started)
    # and `berth recover` does not list what such a directory holds
    r = berth("recover", inventory=inv, state=state)
    _refused(r, state / "berth" / "migrations", "symbolic link")
