"""The migration journal on its own (no daemons): durable, private, atomic, and plain about bad files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.actions.journal import Journal, JournalError, MigrationRecord
from console.cli import main
from console.safefs import StateFileError


def record(audit_id: str = "20260101T000000-abcd1234", **kw: object) -> MigrationRecord:
    return MigrationRecord(audit_id=audit_id, who="tester@lab", started=time.time(), source_node="a",
                           source_id="f" * 64, name="web", tenant="acme", target_node="b", **kw)  # type: ignore[arg-type]


def test_a_record_is_private_and_reads_back_as_written(tmp_path: Path) -> None:
    # Given a journal in a fresh state directory
    journal = Journal(tmp_path / "berth" / "migrations")
    rec = record(phase="switch", source_stopped=True, created={"container": "c" * 64, "volumes": ["appdata"]})
    # When a record is written
    journal.write(rec)
    # Then only its owner can read it, and it reads back field for field
    path = journal.path(rec.audit_id)
    assert path.stat().st_mode & 0o777 == 0o600 and journal.dir.stat().st_mode & 0o777 == 0o700
    assert journal.load(rec.audit_id) == rec
    assert journal.entries() == ([rec], [])


def test_a_write_that_fails_half_way_leaves_the_previous_record_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a journal holding a pre-copy record
    journal = Journal(tmp_path)
    rec = record(phase="pre-copy")
    journal.write(rec)
    # When the next write dies after a few bytes (disk full)
    real_write = os.write

    def short_then_fail(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 16:
            return real_write(fd, bytes(data[:16]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_fail)
    rec.phase, rec.final_copy_done = "switch", True
    with pytest.raises(OSError, match="No space"):
        journal.write(rec)
    monkeypatch.undo()
    # Then the file still holds the whole previous record, and no temp file is left
    loaded = journal.load(rec.audit_id)
    assert loaded is not None and loaded.phase == "pre-copy" and not loaded.final_copy_done
    assert [p.name for p in tmp_path.iterdir()] == [f"{rec.audit_id}.json"]


def test_removing_is_idempotent(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write(record())
    journal.remove(record().audit_id)
    journal.remove(record().audit_id)
    assert journal.entries() == ([], [])


@pytest.mark.parametrize(("text", "problem"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"version": 1, "audit_id": "x"}', "missing source_node"),
    ('{"version": 99}', "unsupported journal version"),
])
def test_a_corrupt_file_is_one_error_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    # Given a good record and a corrupt file beside it
    journal = Journal(tmp_path)
    good = record()
    journal.write(good)
    (tmp_path / "20260102T000000-deadbeef.json").write_text(text)
    # When the journal is listed
    records, errors = journal.entries()
    # Then the good record is still listed, and the bad file is one error that names it
    assert records == [good]
    [err] = errors
    assert isinstance(err, JournalError) and str(tmp_path / "20260102T000000-deadbeef.json") in str(err)
    assert problem in str(err) and "\n" not in str(err)


def test_cli_lists_past_a_corrupt_file_and_refuses_to_recover_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given (XDG_STATE_HOME is per test) one unfinished migration and one corrupt journal file
    journal = Journal(Path(os.environ["XDG_STATE_HOME"]) / "berth" / "migrations")
    good = record(pid=2**22 + 1)  # a pid no process has: its Berth is gone
    journal.write(good)
    bad = journal.dir / "20260102T000000-deadbeef.json"
    bad.write_text("{truncated")
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n')
    # When the operator lists them
    assert main(["recover", "-i", str(inv)]) == 1
    out = capsys.readouterr()
    # Then the good one is listed and the bad file is one line on stderr naming it, no traceback
    assert good.audit_id in out.out and "a/web -> b" in out.out
    assert out.err.count("\n") == 1 and str(bad) in out.err and "Traceback" not in out.err
    # When they try to recover the corrupt one: refused, one line naming the file
    assert main(["recover", bad.stem, "--rollback", "--yes", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "not valid JSON" in err


def test_cli_recover_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "20260101T000000-abcd1234"]) == 2
    assert "--finish or --rollback" in capsys.readouterr().err
    assert main(["recover", "--finish"]) == 2
    assert main(["recover", "x", "--finish", "--rollback"]) == 2


def test_a_record_of_a_live_process_is_not_offered_for_recovery(tmp_path: Path) -> None:
    # Given records written for a process that still runs, for one that is gone, and one that returned
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from console.actions.journal import proc_start

        live = record("20260101T000000-00000001", pid=sleeper.pid, pid_start=proc_start(sleeper.pid))
        gone = record("20260101T000000-00000002", pid=sleeper.pid, pid_start="1")  # same pid, other process
        ended = record("20260101T000000-00000003", running=False)  # this very process, migration returned
        # Then only the live one counts as still running
        assert live.alive() and not gone.alive() and not ended.alive()
        assert record().alive(), "a record of this process's own running migration is live"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cli_names_the_one_unreadable_journal_instead_of_saying_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given (XDG_STATE_HOME is per test) one journal file that cannot be read, and nothing else
    journal = Journal(Path(os.environ["XDG_STATE_HOME"]) / "berth" / "migrations")
    journal.dir.mkdir(parents=True)
    bad = journal.dir / "20260102T000000-deadbeef.json"
    bad.write_text("{truncated")
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n')
    # When the operator lists unfinished migrations
    assert main(["recover", "-i", str(inv)]) == 1
    out = capsys.readouterr()
    # Then one line names the unreadable journal and why; nothing claims there are none
    assert "no unfinished migrations" not in out.out + out.err
    assert out.err.count("\n") == 1 and "unreadable migration journal" in out.err
    assert str(bad) in out.err and "not valid JSON" in out.err


def test_a_symlinked_journal_file_is_named_and_never_followed(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Given (XDG_STATE_HOME is per test) a journal entry that is a link to a record kept elsewhere
    journal = Journal()
    elsewhere = tmp_path / "elsewhere.json"
    Journal(tmp_path / "other").write(record(pid=2**22 + 1))
    elsewhere.write_bytes((tmp_path / "other" / f"{record().audit_id}.json").read_bytes())
    os.chmod(elsewhere, 0o644)
    before = elsewhere.read_bytes()
    journal.check()
    link = journal.dir / f"{record().audit_id}.json"
    link.symlink_to(elsewhere)
    # When the journal is listed: not offered, one error naming the link
    records, errors = journal.entries()
    assert records == [] and [str(e) for e in errors] == [f"{link}: is a symbolic link: refused (Berth never "
                                                          f"writes through a link)"]
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n')
    assert main(["recover", "-i", str(inv)]) == 1
    out = capsys.readouterr()
    assert "no unfinished migrations" not in out.out and out.err.count("\n") == 1 and str(link) in out.err
    # When it is recovered by id, or rewritten: refused, and the file it points at is unchanged
    assert main(["recover", record().audit_id, "--rollback", "--yes", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(link) in err and "symbolic link" in err
    with pytest.raises(StateFileError, match="symbolic link"):
        journal.write(record(phase="switch"))
    assert elsewhere.read_bytes() == before and elsewhere.stat().st_mode & 0o777 == 0o644 and link.is_symlink()


def test_a_journal_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    os.chmod(tmp_path / "migrations", 0o777)
    journal = Journal(tmp_path / "migrations", root=tmp_path)
    with pytest.raises(StateFileError, match="writable by group and others"):
        journal.write(record())
    with pytest.raises(StateFileError, match="writable by group and others"):
        journal.entries()
    assert list((tmp_path / "migrations").iterdir()) == []
