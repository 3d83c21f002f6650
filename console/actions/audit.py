"""The audit log: append-only JSON lines, written before an action runs and after it ends.

One line per event (``begin`` / ``end``) so a crash between the two still leaves the intent on
record. The file is 0600 in a 0700 directory: it names operators and containers. Writes use one
``os.write`` on an ``O_APPEND`` descriptor, so lines from concurrent consoles do not interleave.
The file is opened through console.safefs: a link, another user's file or a directory others can
write is refused (StateFileError, one line) and never written or chmodded. A demo's log
(``demo=True``) lives in the demo's own state directory and marks every record ``"demo": true``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from console.actions.redact import mask
from console.actions.types import Target
from console.identity import Identity, local_user
from console.safefs import StateDir, state_root


def default_path() -> Path:
    return state_root() / "audit.jsonl"


def whoami() -> str:
    """OS user@host; the invoking user when run under sudo."""
    return local_user()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class AuditLog:
    def __init__(self, path: Path | None = None, user: str | None = None, *, demo: bool = False) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.user = user or whoami()
        self.demo = demo
        self.dir = StateDir(self.path.parent)

    def check(self) -> None:
        """Before an action: the log can be appended to safely (made when missing), else StateFileError."""
        self.dir.check_file(self.path.name)

    def _append(self, record: Mapping[str, Any]) -> None:
        if self.demo:
            record = {**record, "demo": True}
        line = json.dumps(mask(record), separators=(",", ":"), default=str) + "\n"
        self.dir.append(self.path.name, line.encode())

    def _who(self, who: Identity | None) -> dict[str, Any]:
        """``who`` is the name alone (what `berth audit` and older readers show); ``identity`` says
        how that person came in (role, front door, key fingerprint, client address)."""
        if who is None:
            return {"who": self.user}
        return {"who": who.user, "identity": who.record()}

    def begin(self, action: str, target: Target, params: Mapping[str, Any], who: Identity | None = None) -> str:
        """The intent, with the process running it (host, pid, pid start): a begin without an end whose
        process is gone is an action that was interrupted (``berth recover`` lists and closes those)."""
        from console.actions.journal import proc_start

        audit_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        self._append({
            "id": audit_id, "event": "begin", "at": _iso(now), "ts": now, **self._who(who), "action": action,
            "target": {"node": target.node, "id": target.id, "name": target.name, "tenant": target.tenant,
                       "state": target.state},
            "params": dict(params),
            "host": socket.gethostname(), "pid": os.getpid(), "pid_start": proc_start(os.getpid()),
        })
        return audit_id

    def end(self, audit_id: str, ok: bool, phases: Sequence[Mapping[str, Any]] | None = None, error: str | None = None,
            duration: float | None = None, details: Mapping[str, Any] | None = None,
            who: Identity | None = None, status: str | None = None) -> None:
        """``status`` says more than ok/failed where there is more to say: ``interrupted`` (a signal, a
        cancel, or closed by ``berth recover`` after its process died), ``left for recover``."""
        now = time.time()
        self._append({
            "id": audit_id, "event": "end", "at": _iso(now), "ts": now, **self._who(who), "ok": ok,
            "phases": list(phases or []), "error": error,
            "duration": round(duration, 3) if duration is not None else None, "details": dict(details or {}),
            **({"status": status} if status else {}),
        })

    def lines(self) -> list[dict[str, Any]]:
        """Every raw record, oldest first; unreadable lines are skipped, not fatal."""
        raw = self.dir.read(self.path.name)
        if raw is None:
            return []
        text = raw.decode("utf-8", errors="replace")
        out = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def read(self, limit: int | None = None) -> list[dict[str, Any]]:
        """One merged entry per action, oldest first (the last ``limit``).

        Keys: id, at, who, action, target, params, host, pid, pid_start, ts, then from the end record ok
        (None while unfinished), status, phases, error, duration, details, ended_at, ended_by;
        ``demo: True`` for a demo's record.
        """
        entries: dict[str, dict[str, Any]] = {}
        for rec in self.lines():
            aid = rec.get("id")
            if not isinstance(aid, str):
                continue
            if rec.get("event") == "begin":
                entries[aid] = {"id": aid, "at": rec.get("at"), "who": rec.get("who"),
                                "identity": rec.get("identity") or {}, "action": rec.get("action"),
                                "target": rec.get("target") or {}, "params": rec.get("params") or {}, "ok": None,
                                "host": rec.get("host"), "pid": rec.get("pid"), "pid_start": rec.get("pid_start"),
                                "ts": rec.get("ts"), "status": None, "phases": [], "error": None, "duration": None,
                                "details": {}, "ended_at": None, "ended_by": None,
                                **({"demo": True} if rec.get("demo") else {})}
            elif rec.get("event") == "end":
                entry = entries.setdefault(aid, {"id": aid, "at": rec.get("at"), "who": rec.get("who"),
                                                 "action": None, "target": {}, "params": {}})
                entry.update(ok=rec.get("ok"), phases=rec.get("phases") or [], error=rec.get("error"),
                             duration=rec.get("duration"), details=rec.get("details") or {},
                             ended_at=rec.get("at"), ended_by=rec.get("who"), status=rec.get("status"))
        out = list(entries.values())
        return out[-limit:] if limit else out

    def dangling(self, stale_after: float) -> list[dict[str, Any]]:
        """Begun, never ended, and no process is running them any more: the entries ``recover`` closes.

        A begin from this host names its process (pid and start time); one from elsewhere, or from a
        Berth that did not record it, counts only once older than ``stale_after`` seconds.
        """
        from console.actions.journal import proc_start

        here, now = socket.gethostname(), time.time()
        out = []
        for e in self.read():
            if e.get("ended_at") or not e.get("action"):
                continue
            pid = e.get("pid")
            if e.get("host") == here and isinstance(pid, int) and e.get("pid_start"):
                if proc_start(pid) == e.get("pid_start"):
                    continue  # still running
            elif not (isinstance(e.get("ts"), int | float) and now - e["ts"] > stale_after):
                continue
            out.append(e)
        return out
