"""The migration journal: what a running migration has done so far, durable across a crash of Berth.

One file per migration, ``$XDG_STATE_HOME/berth/migrations/<audit id>.json`` (0600 in a 0700
directory), rewritten at every phase transition and every time something is created on the target:
written to a temp file in the same directory, fsynced, ``os.replace``d over the old one and the
directory fsynced, so a crash leaves either the previous record or the new one, never half of one.
The file is removed when the migration reaches an end state (moved, or rolled back cleanly); one
that is still there names a migration a later ``berth recover`` (or the console) must finish or undo.

The journal is a hint, not the truth: recovery checks both nodes' live state before acting.
Files are read and written through console.safefs: a journal directory or file that is a link,
someone else's, or writable by others is refused (StateFileError), never followed. A demo's
records say ``demo: true`` and live in the demo's own state directory: neither side offers the
other's migrations for recovery.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from console.safefs import StateDir, StateFileError, state_root

VERSION = 1
PHASES = ("lock", "pre-copy", "switch", "finalize", "rollback")


class JournalError(Exception):
    """An unreadable journal file: one line naming the file."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")


def default_dir() -> Path:
    return state_root() / "migrations"


def proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


@dataclass
class MigrationRecord:
    """One unfinished migration. ``created`` mirrors ``Migration.created`` (target-side objects)."""

    audit_id: str
    who: str
    started: float
    source_node: str
    source_id: str
    name: str
    tenant: str
    target_node: str
    phase: str = "lock"
    created: dict[str, Any] = field(default_factory=dict)  # container, volumes, networks, helpers
    source_policy: dict[str, Any] = field(default_factory=lambda: {"Name": "no"})
    was_running: bool = False
    source_stopped: bool = False  # its restart policy was set to "no" and a stop was sent
    final_copy_done: bool = False  # the target holds every byte the stopped source had
    target_started: bool = False
    kept_as: str | None = None
    remove_source: bool = False
    lock_id: str | None = None
    outcome: str = ""  # the last thing the running migration said about its end (kept when it stopped short)
    running: bool = True  # False once the migration returned, leaving this record for recovery
    pid: int = field(default_factory=os.getpid)
    pid_start: str | None = field(default_factory=lambda: proc_start(os.getpid()))
    host: str = field(default_factory=socket.gethostname)
    updated: float = field(default_factory=time.time)
    demo: bool = False  # written by `berth --demo` against its simulated fleet
    version: int = VERSION

    @property
    def label(self) -> str:
        return f"{self.source_node}/{self.name}"

    def alive(self) -> bool:
        """True while the process that wrote this record still runs it (same host, same pid, same start)."""
        if not self.running or self.host != socket.gethostname():
            return False
        return self.pid_start is not None and proc_start(self.pid) == self.pid_start

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.started))
        state = self.phase + (", source stopped" if self.source_stopped else "") + (
            ", final copy done" if self.final_copy_done else "") + (", target started" if self.target_started else "")
        return f"{self.audit_id}  {self.label} -> {self.target_node}  {state}  by {self.who} at {when}"

    @classmethod
    def from_json(cls, path: Path, data: Any) -> MigrationRecord:
        if not isinstance(data, dict):
            raise JournalError(path, "not a migration journal (expected a JSON object)")
        if data.get("version") != VERSION:
            raise JournalError(path, f"unsupported journal version {data.get('version')!r} (this Berth reads {VERSION})")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("audit_id", "source_node", "source_id", "name", "target_node") if not data.get(k)]
        if missing:
            raise JournalError(path, f"not a migration journal (missing {', '.join(missing)})")
        if data.get("phase") not in PHASES:
            raise JournalError(path, f"unknown phase {data.get('phase')!r}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise JournalError(path, f"not a migration journal ({exc})") from None


class Journal:
    """The journal directory. ``root``: the state directory it lives in, checked with it (no link
    anywhere from there down); without one only the journal directory itself is checked."""

    def __init__(self, directory: Path | None = None, *, root: Path | None = None) -> None:
        if directory is None:
            directory, root = default_dir(), state_root()
        self.dir = Path(directory)
        self.files = StateDir(self.dir, root)

    def check(self) -> None:
        """Before a migration: the directory is safe to write in (made when missing), else StateFileError."""
        self.files.check()

    def path(self, audit_id: str) -> Path:
        if not audit_id or "/" in audit_id or audit_id.startswith("."):
            raise ValueError(f"bad migration id {audit_id!r}")
        return self.dir / f"{audit_id}.json"

    def write(self, record: MigrationRecord) -> None:
        """Atomically replace the record: temp file, fsync, rename, fsync the directory."""
        record.updated = time.time()
        data = json.dumps(asdict(record), indent=1, sort_keys=True, default=str).encode()
        self.files.replace(self.path(record.audit_id).name, data)

    def remove(self, audit_id: str) -> None:
        self.files.remove(self.path(audit_id).name)

    def load(self, audit_id: str) -> MigrationRecord | None:
        """The record, None when there is none; JournalError when the file cannot be read as one."""
        path = self.path(audit_id)
        try:
            raw = self.files.read(path.name)
        except StateFileError as exc:
            raise JournalError(path, exc.problem) from None
        except OSError as exc:
            raise JournalError(path, f"cannot read it ({exc})") from None
        if raw is None:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JournalError(path, f"cannot read it ({exc})") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise JournalError(path, f"not valid JSON ({exc}); move it aside once the migration is dealt with"
                               ) from None
        return MigrationRecord.from_json(path, data)

    def entries(self) -> tuple[list[MigrationRecord], list[JournalError]]:
        """Every unfinished migration, oldest first, and one error per file that could not be read.

        StateFileError when the directory itself is unsafe (nothing in it is trusted then)."""
        names = sorted(n for n in self.files.names() if n.endswith(".json") and not n.startswith("."))
        records, errors = [], []
        for n in names:
            try:
                rec = self.load(n.removesuffix(".json"))
            except JournalError as exc:
                errors.append(exc)
                continue
            if rec is not None:
                records.append(rec)
        records.sort(key=lambda r: r.started)
        return records, errors
