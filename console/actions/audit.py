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
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from console.actions.redact import mask
from console.actions.types import Target
from console.safefs import StateDir, state_root
from console.identity import Identity, local_user


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
        audit_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        self._append({
            "id": audit_id, "event": "begin", "at": _iso(now), "ts": now, **self._who(who), "action": action,
            "target": {"node": target.node, "id": target.id, "name": target.name, "tenant": target.tenant,
                       "state": target.state},
            "params": dict(params),
        })
        return audit_id

    def end(self, audit_id: str, ok: bool, phases: Sequence[Mapping[str, Any]] | None = None, error: str | None = None,
            duration: float | None = None, details: Mapping[str, Any] | None = None,
            who: Identity | None = None) -> None:
        now = time.time()
        self._append({
            "id": audit_id, "event": "end", "at": _iso(now), "ts": now, **self._who(who), "ok": ok,
            "phases": list(phases or []), "error": error,
            "duration": round(duration, 3) if duration is not None else None, "details": dict(details or {}),
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

        Keys: id, at, who, action, target, params, then from the end record ok (None while unfinished),
        phases, error, duration, details, ended_at; ``demo: True`` for a demo's record.
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
                                "phases": [], "error": None, "duration": None, "details": {}, "ended_at": None,
                                **({"demo": True} if rec.get("demo") else {})}
            elif rec.get("event") == "end":
                entry = entries.setdefault(aid, {"id": aid, "at": rec.get("at"), "who": rec.get("who"),
                                                 "action": None, "target": {}, "params": {}})
                entry.update(ok=rec.get("ok"), phases=rec.get("phases") or [], error=rec.get("error"),
                             duration=rec.get("duration"), details=rec.get("details") or {},
                             ended_at=rec.get("at"))
        out = list(entries.values())
        return out[-limit:] if limit else out
