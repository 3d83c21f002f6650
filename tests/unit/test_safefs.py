"""console/safefs.py on its own: what Berth refuses to write through, and what it never changes.

Every refusal is checked the same way: one line naming the path and the problem, the thing
refused left exactly as it was (content and mode), and nothing written anywhere else.
"""

from __future__ import annotations

import os
import pwd
import stat
import threading
from pathlib import Path

import pytest

from console.safefs import StateDir, StateFileError, private_tempdir, state_root

NOBODY = pwd.getpwnam("nobody").pw_uid


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def one_line(exc: pytest.ExceptionInfo[StateFileError], path: Path, words: str) -> None:
    text = str(exc.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and words in text, text
    assert exc.value.path == path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o700)
    return tmp_path


# -- directories --------------------------------------------------------------------------------

def test_a_missing_state_directory_is_made_0700_with_its_parents(base: Path) -> None:
    d = StateDir(base / "state" / "berth")
    d.append("audit.jsonl", b"one\n")
    assert mode(base / "state" / "berth") == 0o700
    assert mode(base / "state" / "berth" / "audit.jsonl") == 0o600
    assert (base / "state" / "berth" / "audit.jsonl").read_bytes() == b"one\n"


def test_an_existing_0755_directory_of_ours_is_used_as_it_is(base: Path) -> None:
    (base / "berth").mkdir(mode=0o755)
    os.chmod(base / "berth", 0o755)
    StateDir(base / "berth").append("audit.jsonl", b"x\n")
    assert mode(base / "berth") == 0o755, "a directory Berth did not make is never chmodded"
    assert mode(base / "berth" / "audit.jsonl") == 0o600


@pytest.mark.parametrize(("bits", "who"), [(0o775, "its group"), (0o757, "others"), (0o777, "group and others"),
                                           (0o1777, "group and others")])
def test_a_directory_others_can_write_is_refused_and_left_alone(base: Path, bits: int, who: str) -> None:
    d = base / "berth"
    d.mkdir()
    os.chmod(d, bits)
    with pytest.raises(StateFileError) as exc:
        StateDir(d).append("audit.jsonl", b"x\n")
    one_line(exc, d, f"writable by {who}")
    assert stat.S_IMODE(d.stat().st_mode) == bits and list(d.iterdir()) == []


def test_a_directory_owned_by_someone_else_is_refused(base: Path) -> None:
    d = base / "berth"
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    with pytest.raises(StateFileError) as exc:
        StateDir(d).check()
    one_line(exc, d, "owned by uid")
    assert list(d.iterdir()) == []


def test_a_symlinked_directory_is_refused_at_the_last_step_and_anywhere_under_root(base: Path) -> None:
    real = base / "elsewhere"
    real.mkdir(mode=0o700)
    (base / "berth").symlink_to(real)
    with pytest.raises(StateFileError) as exc:
        StateDir(base / "berth").append("audit.jsonl", b"x\n")
    one_line(exc, base / "berth", "symbolic link")
    # With a root, a link in the middle is refused too (root/berth -> elsewhere, then /migrations)
    (real / "migrations").mkdir(mode=0o700)
    with pytest.raises(StateFileError) as exc:
        StateDir(base / "berth" / "migrations", base / "berth").replace("x.json", b"{}")
    one_line(exc, base / "berth", "symbolic link")
    assert list(real.iterdir()) == [real / "migrations"] and list((real / "migrations").iterdir()) == []


def test_a_file_where_the_directory_should_be_is_refused(base: Path) -> None:
    (base / "berth").write_text("not a dir")
    with pytest.raises(StateFileError) as exc:
        StateDir(base / "berth").check()
    one_line(exc, base / "berth", "not a directory")


# -- files --------------------------------------------------------------------------------------

def test_a_symlinked_file_is_refused_and_its_target_untouched(base: Path) -> None:
    victim = base / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    d = StateDir(base)
    (base / "audit.jsonl").symlink_to(victim)
    for attempt in (lambda: d.append("audit.jsonl", b"x\n"), lambda: d.check_file("audit.jsonl"),
                    lambda: d.read("audit.jsonl"), lambda: d.replace("audit.jsonl", b"x")):
        with pytest.raises(StateFileError) as exc:
            attempt()
        one_line(exc, base / "audit.jsonl", "symbolic link")
    assert victim.read_text() == "precious\n" and mode(victim) == 0o644
    assert (base / "audit.jsonl").is_symlink()


def test_a_dangling_symlink_is_not_created_through(base: Path) -> None:
    (base / "audit.jsonl").symlink_to(base / "made-by-the-link")
    with pytest.raises(StateFileError, match="symbolic link"):
        StateDir(base).append("audit.jsonl", b"x\n")
    assert not (base / "made-by-the-link").exists()


def test_a_file_of_someone_else_is_refused_and_not_chmodded(base: Path) -> None:
    f = base / "audit.jsonl"
    f.write_text("theirs\n")
    os.chmod(f, 0o644)
    os.chown(f, NOBODY, NOBODY)
    with pytest.raises(StateFileError) as exc:
        StateDir(base).append("audit.jsonl", b"x\n")
    one_line(exc, f, "owned by uid")
    assert f.read_text() == "theirs\n" and mode(f) == 0o644 and f.stat().st_uid == NOBODY


@pytest.mark.parametrize("bits", [0o620, 0o602, 0o666])
def test_a_group_or_world_writable_file_is_refused_not_fixed(base: Path, bits: int) -> None:
    f = base / "audit.jsonl"
    f.write_text("old\n")
    os.chmod(f, bits)
    with pytest.raises(StateFileError) as exc:
        StateDir(base).append("audit.jsonl", b"x\n")
    one_line(exc, f, "writable by group or others")
    assert f.read_text() == "old\n" and mode(f) == bits


def test_a_hard_link_is_refused(base: Path) -> None:
    other = base / "other"
    other.write_text("other\n")
    os.chmod(other, 0o600)
    os.link(other, base / "audit.jsonl")
    with pytest.raises(StateFileError) as exc:
        StateDir(base).append("audit.jsonl", b"x\n")
    one_line(exc, base / "audit.jsonl", "2 hard links")
    assert other.read_text() == "other\n"


def test_a_fifo_is_refused_without_hanging(base: Path) -> None:
    os.mkfifo(base / "audit.jsonl", 0o600)
    done: list[BaseException] = []

    def attempt() -> None:
        try:
            StateDir(base).append("audit.jsonl", b"x\n")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            done.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(30)
    assert done and isinstance(done[0], StateFileError) and "FIFO" in str(done[0])


def test_our_own_file_readable_by_others_is_tightened_only_when_private(base: Path) -> None:
    f = base / "audit.jsonl"
    f.write_text("mine\n")
    os.chmod(f, 0o644)
    StateDir(base).append("audit.jsonl", b"more\n")
    assert mode(f) == 0o600 and f.read_text() == "mine\nmore\n"
    g = base / "node.log"
    g.write_text("")
    os.chmod(g, 0o644)
    os.close(StateDir(base).open_append("node.log", private=False))
    assert mode(g) == 0o644, "a non-private file is never chmodded"


def test_reading_a_missing_file_or_directory_is_none_and_makes_nothing(base: Path) -> None:
    assert StateDir(base / "nope").read("audit.jsonl") is None
    assert StateDir(base / "nope").names() == []
    StateDir(base / "nope").remove("x.json")
    assert not (base / "nope").exists()


# -- atomic replace -----------------------------------------------------------------------------

def test_replace_is_atomic_private_and_leaves_no_temp_file(base: Path) -> None:
    d = StateDir(base / "migrations")
    d.replace("a.json", b"first")
    d.replace("a.json", b"second")
    assert (base / "migrations" / "a.json").read_bytes() == b"second"
    assert mode(base / "migrations" / "a.json") == 0o600 and d.names() == ["a.json"]


def test_replace_refuses_a_symlinked_destination_and_cleans_its_temp_file(base: Path) -> None:
    victim = base / "victim"
    victim.write_text("precious")
    (base / "migrations").mkdir(mode=0o700)
    (base / "migrations" / "a.json").symlink_to(victim)
    with pytest.raises(StateFileError) as exc:
        StateDir(base / "migrations").replace("a.json", b"{}")
    one_line(exc, base / "migrations" / "a.json", "symbolic link")
    assert victim.read_text() == "precious" and sorted(os.listdir(base / "migrations")) == ["a.json"]


def test_remove_unlinks_a_link_never_its_target(base: Path) -> None:
    victim = base / "victim"
    victim.write_text("precious")
    (base / "a.json").symlink_to(victim)
    StateDir(base).remove("a.json")
    assert not (base / "a.json").is_symlink() and victim.read_text() == "precious"


def test_names_with_a_slash_are_not_file_names(base: Path) -> None:
    with pytest.raises(ValueError):
        StateDir(base).append("../escape", b"x")


# -- places -------------------------------------------------------------------------------------

def test_state_root_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_root() == tmp_path / "berth"


def test_a_private_tempdir_is_0700_and_goes_away() -> None:
    path, remove = private_tempdir("berth-test-")
    (path / "audit.jsonl").write_text("x")
    assert mode(path) == 0o700
    remove()
    remove()
    assert not path.exists()
