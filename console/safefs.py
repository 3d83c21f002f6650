"""Every file Berth writes goes through here: the audit log, migration journals, `berth sim --dir`.

A state file names operators and containers and is appended to by whoever runs Berth, root
included, so it must never be a path someone else can redirect. The rules:

* A directory Berth makes is created 0700. One that exists must be a real directory (not a
  symbolic link), owned by you or by root, and not writable by group or others. A 0755
  directory you own is accepted as it is: only you can add, rename or remove files in it.
  Berth never changes the mode of a directory it did not create.
* A file is opened relative to its checked directory with ``O_NOFOLLOW`` (and ``O_CLOEXEC``). It
  must be a regular file with one link, owned by you, and not writable by group or others. A
  symbolic link, a FIFO or device, another user's file, a hard link and a group- or
  world-writable file are refused, never written or chmodded. A private file (audit log,
  journals) that is yours and readable by others is tightened to 0600; nothing else is chmodded.
* An atomic replace writes a temp file in the same checked directory (``O_CREAT|O_EXCL|
  O_NOFOLLOW``), fsyncs it, renames it over the old file and fsyncs the directory.

A refusal is a StateFileError: one line, ``<path>: <problem>``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in place of a file must not hang Berth.
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class StateFileError(OSError):
    """A file or directory Berth keeps state in is unsafe or unusable: one line naming it.

    An OSError, so code that already turns a failed write into one line (a migration refusing to
    start without its journal, ``berth sim``) does the same for a refusal."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def state_root() -> Path:
    """``$XDG_STATE_HOME/berth`` (``~/.local/state/berth`` when unset): the audit log and journals."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "berth"


def _who(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _oserror(path: Path, what: str, exc: OSError) -> StateFileError:
    return StateFileError(path, f"cannot {what} it ({exc.strerror or exc})")


def check_dir_stat(path: Path, st: os.stat_result) -> None:
    """Owned by you (or root) and not writable by group or others."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise StateFileError(path, f"directory owned by {_who(st.st_uid)}, not by you ({_who(me)}): refused")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH else (
            "its group" if st.st_mode & stat.S_IWGRP else "others")
        raise StateFileError(path, f"directory is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): refused; "
                                   f"chmod go-w it")


def check_file_stat(path: Path, st: os.stat_result) -> None:
    """A regular file with one link, owned by you, not writable by group or others."""
    if stat.S_ISLNK(st.st_mode):
        raise StateFileError(path, "is a symbolic link: refused (Berth never writes through a link)")
    if not stat.S_ISREG(st.st_mode):
        raise StateFileError(path, f"is {_kind(st.st_mode)}, not a regular file: refused")
    me = os.geteuid()
    if st.st_uid != me:
        raise StateFileError(path, f"owned by {_who(st.st_uid)}, not by you ({_who(me)}): refused")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateFileError(path, f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): refused; "
                                   f"chmod go-w it")
    if st.st_nlink > 1:
        raise StateFileError(path, f"has {st.st_nlink} hard links: refused")


def _open_one(parent: int | None, parent_path: Path, name: str, path: Path, create: bool) -> int:
    """Open (making it 0700 when missing and asked to) one directory, no link followed at the last step."""
    made = False
    while True:
        try:
            fd = os.open(name if parent is not None else path, _DIR_FLAGS, dir_fd=parent)
            break
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name if parent is not None else path, 0o700, dir_fd=parent)
                made = True
            except FileExistsError:
                continue  # made meanwhile by someone: checked like any existing one
            except FileNotFoundError:
                if parent is not None:
                    raise
                Path(parent_path).mkdir(parents=True, exist_ok=True)  # the parents, as mkdir -p makes them
        except OSError as exc:
            try:
                st = os.stat(name if parent is not None else path, dir_fd=parent, follow_symlinks=False)
            except OSError:
                raise _oserror(path, "open directory", exc) from None
            if stat.S_ISLNK(st.st_mode):
                raise StateFileError(path, "is a symbolic link, not a directory: refused") from None
            if not stat.S_ISDIR(st.st_mode):
                raise StateFileError(path, f"is {_kind(st.st_mode)}, not a directory: refused") from None
            raise _oserror(path, "open directory", exc) from None
    try:
        st = os.fstat(fd)
        if made and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o700)  # ours, just made: the umask may have taken bits off, never added
            st = os.fstat(fd)
        check_dir_stat(path, st)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True, slots=True)
class StateDir:
    """A directory Berth writes in, checked every time it is opened.

    ``root``: when ``path`` lies under it, every directory from ``root`` down to ``path`` is opened
    without following links and checked; otherwise only ``path`` itself is (its parents are the
    operator's business, e.g. a home directory on another mount).
    """

    path: Path
    root: Path | None = None

    def sub(self, name: str) -> StateDir:
        return StateDir(self.path / name, self.root if self.root is not None else self.path)

    def _steps(self) -> tuple[Path, list[str]]:
        if self.root is not None and self.path != self.root:
            try:
                rel = self.path.relative_to(self.root)
            except ValueError:
                pass
            else:
                return self.root, list(rel.parts)
        return self.path, []

    @contextlib.contextmanager
    def opened(self, create: bool = True) -> Iterator[int]:
        """The directory's fd, checked; FileNotFoundError when it is missing and ``create`` is False."""
        top, parts = self._steps()
        fd = _open_one(None, top.parent, top.name, top, create)
        where = top
        try:
            for part in parts:
                where = where / part
                nxt = _open_one(fd, where.parent, part, where, create)
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def check(self) -> None:
        """Make the directory when missing, else check it: StateFileError when it is unsafe."""
        with self.opened():
            pass

    # -- files -----------------------------------------------------------------------

    def _name(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"bad file name {name!r}")
        return name

    def _open_file(self, dfd: int, name: str, flags: int, *, create: bool, private: bool, mode: int) -> int:
        path = self.path / name
        if create:
            try:
                fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | _OPEN, mode, dir_fd=dfd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise _oserror(path, "create", exc) from None
            else:
                try:
                    if private:
                        os.fchmod(fd, 0o600)  # made here: the umask may have taken bits off, never added
                    os.set_blocking(fd, True)
                except BaseException:
                    os.close(fd)
                    raise
                return fd
        try:
            before = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _oserror(path, "stat", exc) from None
        check_file_stat(path, before)  # refuses links, FIFOs and devices before they are ever opened
        try:
            fd = os.open(name, flags | _OPEN, dir_fd=dfd)
        except OSError as exc:
            raise _oserror(path, "open", exc) from None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
                raise StateFileError(path, "was replaced while being opened: refused")
            check_file_stat(path, st)
            if private and st.st_mode & 0o077:
                os.fchmod(fd, 0o600)  # yours, a real file, checked: only ever tightened
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_append(self, name: str, *, private: bool = True, mode: int = 0o600) -> int:
        """An ``O_APPEND`` descriptor (made when missing); the caller closes it."""
        name = self._name(name)
        with self.opened() as dfd:
            return self._open_file(dfd, name, os.O_WRONLY | os.O_APPEND, create=True, private=private, mode=mode)

    def append(self, name: str, data: bytes) -> None:
        """One ``os.write`` on an ``O_APPEND`` descriptor: lines from concurrent writers do not interleave."""
        fd = self.open_append(name)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def check_file(self, name: str) -> None:
        """Make sure ``name`` can be appended to safely (made, empty, when missing) without writing to it."""
        os.close(self.open_append(name))

    def read(self, name: str) -> bytes | None:
        """The file's bytes, None when it (or the directory) does not exist."""
        name = self._name(name)
        try:
            with self.opened(create=False) as dfd:
                fd = self._open_file(dfd, name, os.O_RDONLY, create=False, private=False, mode=0)
        except FileNotFoundError:
            return None
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        except OSError as exc:
            raise _oserror(self.path / name, "read", exc) from None
        finally:
            os.close(fd)

    def names(self) -> list[str]:
        """The directory's entries, [] when it does not exist."""
        try:
            with self.opened(create=False) as dfd:
                return os.listdir(dfd)
        except FileNotFoundError:
            return []

    def replace(self, name: str, data: bytes, *, mode: int = 0o600) -> None:
        """Atomically: temp file in this directory, fsync, rename over ``name``, fsync the directory."""
        name = self._name(name)
        with self.opened() as dfd:
            try:
                old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None:
                check_file_stat(self.path / name, old)  # never silently replace a link or someone's file
            tmp = f".{name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                             dir_fd=dfd)
            except OSError as exc:
                raise _oserror(self.path / tmp, "create", exc) from None
            try:
                try:
                    if mode & 0o077 == 0:
                        os.fchmod(fd, mode)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            os.fsync(dfd)

    def remove(self, name: str) -> None:
        """Unlink ``name`` (a link itself, never its target); a missing file or directory is fine."""
        name = self._name(name)
        try:
            with self.opened(create=False) as dfd:
                try:
                    os.unlink(name, dir_fd=dfd)
                except FileNotFoundError:
                    return
                os.fsync(dfd)
        except FileNotFoundError:
            return


def private_tempdir(prefix: str) -> tuple[Path, Callable[[], None]]:
    """A fresh 0700 directory of this process's own (the demo's state) and a remover (idempotent,
    also run at exit): what it holds never mixes with the operator's state directory."""
    path = Path(tempfile.mkdtemp(prefix=prefix))

    def remove() -> None:
        atexit.unregister(remove)
        shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path, remove
