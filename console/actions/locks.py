"""One action at a time per container, across every console: a lock that lives on the node.

The lock is a never-started container named ``berth-lock-<id12>``. Container names are unique
per daemon, so creating it is atomic: the second console gets 409 and reads the owner, the
action and the start time from the lock's labels. It uses the target's own image (present on
that node by definition) and no network, and the poller shows its ``berth.action`` as the
container's busy badge.

The lock also names the process holding it (host, pid and the pid's start time, so a reused pid
is not mistaken for the holder) and the audit record of its action. A lock whose process is gone
from this very host is stale at once: nothing can release it any more. A lock from another host is
only stale by age (``STALE_AFTER``), as this host cannot see that process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from console.actions import engine_ops as ops
from console.actions.journal import proc_start
from console.actions.types import ActionError
from console.engine.client import EngineClient
from console.engine.errors import Conflict

STALE_AFTER = 30 * 60.0  # seconds: a lock this old may be broken with break_stale=True
HOST, PID, PID_START, AUDIT = "berth.host", "berth.pid", "berth.pid_start", "berth.audit"
# A dead holder of these leaves a journal behind: `berth recover` finishes or rolls it back, not a break.
JOURNALED = ("migrate", "recover")


def lock_name(cid: str) -> str:
    return f"berth-lock-{cid[:12]}"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


@dataclass
class NodeLock:
    client: EngineClient
    cid: str
    lock_id: str | None = None
    broke: str | None = None  # the stale lock this one replaced, described (for the audit)

    @staticmethod
    def describe(labels: dict[str, str]) -> str:
        try:
            since = _when(float(labels.get(ops.SINCE, "0")))
        except ValueError:
            since = "?"
        pid = f" (pid {labels[PID]} on {labels.get(HOST, '?')})" if labels.get(PID) else ""
        return f"locked by {labels.get(ops.OWNER, '?')} doing {labels.get(ops.ACTION, '?')} since {since}{pid}"

    @staticmethod
    def gone(labels: dict[str, str]) -> bool:
        """The holder ran on this host and that process no longer runs (pid gone, or reused)."""
        if labels.get(HOST) != socket.gethostname() or not labels.get(PID) or not labels.get(PID_START):
            return False  # another host's, or written where process start times cannot be read: age only
        try:
            pid = int(labels[PID])
        except ValueError:
            return False
        return proc_start(pid) != labels.get(PID_START)

    @classmethod
    def refusal(cls, labels: dict[str, str], *, break_stale: bool = False,
                stale_after: float = STALE_AFTER) -> str | None:
        """Why this lock stops an action, or None when it may be broken (its holder gone, or stale by age)."""
        if cls.gone(labels):
            if labels.get(ops.ACTION) in JOURNALED:
                return (f"{cls.describe(labels)}; that process is gone: `berth recover` finishes or rolls back "
                        f"its {labels.get(ops.ACTION)}")
            return None
        if break_stale and cls.age(labels) > stale_after:
            return None
        return cls.explain(labels, stale_after)

    @classmethod
    def explain(cls, labels: dict[str, str], stale_after: float = STALE_AFTER) -> str:
        if cls.gone(labels):
            return cls.describe(labels) + " (stale: that process is gone; `berth recover --clear` removes it)"
        hint = (f" (stale: older than {stale_after / 60:g} min, --break-stale breaks it)"
                if cls.age(labels) > stale_after else "")
        return cls.describe(labels) + hint

    @staticmethod
    def age(labels: dict[str, str]) -> float:
        try:
            return time.time() - float(labels.get(ops.SINCE, "0"))
        except ValueError:
            return 0.0

    @staticmethod
    async def holder(client: EngineClient, cid: str) -> dict[str, str] | None:
        """Labels of the lock on ``cid``, or None when it is free."""
        doc = await ops.find_container(client, lock_name(cid))
        if doc is None:
            return None
        return dict((doc.get("Config") or {}).get("Labels") or {})

    async def acquire(self, container: dict[str, Any], action: str, owner: str, *,
                      break_stale: bool = False, stale_after: float = STALE_AFTER, audit_id: str = "") -> None:
        config = container.get("Config") or {}
        body = {
            "Image": container.get("Image") or config.get("Image"),
            "Cmd": ["berth-lock"], "Entrypoint": ["berth-lock"],
            "Labels": {ops.ROLE: "lock", ops.TARGET: self.cid, ops.ACTION: action, ops.OWNER: owner,
                       ops.SINCE: f"{time.time():.3f}", HOST: socket.gethostname(), PID: str(os.getpid()),
                       PID_START: proc_start(os.getpid()) or "", AUDIT: audit_id},
            "NetworkDisabled": True,
            "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": "no"}},
        }
        for attempt in (1, 2, 3):
            try:
                self.lock_id = await ops.create_container(self.client, lock_name(self.cid), body)
                return
            except Conflict:
                # The daemon reserves the name before the container can be inspected: give the
                # other console's create a moment to land before reading who holds the lock.
                labels = None
                for _ in range(40):
                    labels = await self.holder(self.client, self.cid)
                    if labels is not None:
                        break
                    await asyncio.sleep(0.05)
                if labels is None:
                    continue  # released meanwhile: try again
                refusal = self.refusal(labels, break_stale=break_stale, stale_after=stale_after)
                if refusal is None and attempt == 1:
                    self.broke = self.describe(labels) + (" (process gone)" if self.gone(labels) else " (stale)")
                    await ops.remove_container(self.client, lock_name(self.cid))
                    continue
                raise ActionError(f"{self.client.name}: {self.cid[:12]} is {refusal or self.explain(labels)}"
                                  ) from None
        raise ActionError(f"{self.client.name}: {self.cid[:12]} is locked by another console")

    async def release(self) -> None:
        if self.lock_id is not None:
            await ops.remove_container(self.client, self.lock_id)
            self.lock_id = None
