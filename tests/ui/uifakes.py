"""Test doubles for Pilot and snapshot tests: a BerthApp on deterministic data, fake actions and engine."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import fleetdata  # noqa: E402

from console.identity import Identity  # noqa: E402
from console.ui.app import BerthApp  # noqa: E402


@dataclass
class FakePlan:
    action: str
    target: Any
    params: dict[str, Any]
    summary: tuple[str, ...]


@dataclass
class FakeResult:
    ok: bool
    message: str
    audit_id: str
    downtime: float | None = None


@dataclass
class FakeProgress:
    phase: str
    detail: str
    bytes_done: int
    elapsed: float


@dataclass
class FakeActions:
    """Records what the UI asked for; answers like console.actions.Actions would."""

    planned: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)
    executed: list[FakePlan] = field(default_factory=list)
    ranked: list[tuple[str, str]] = field(default_factory=lambda: [("node-1", "fits: cpu 12%, mem 7% after"),
                                                                   ("node-3", "fits: cpu 14%, mem 14% after")])

    async def plan(self, action: str, target: Any, **params: Any) -> FakePlan:
        self.planned.append((action, target, params))
        label = getattr(target, "label", target)
        return FakePlan(action, target, params, (f"{action} {label}", "effect: the container restarts"))

    identity: Identity = field(default_factory=lambda: Identity("tester", "operator"))
    unavailable: str | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def read_only(self) -> bool:
        return not self.identity.may_act

    async def execute(self, plan: FakePlan, progress: Any = None) -> FakeResult:
        if progress is not None:
            progress(FakeProgress(plan.action, "working", 0, 0.1))
        self.executed.append(plan)
        return FakeResult(True, f"{plan.action} done", "20260101T000000-abcd1234", None)

    def start(self, plan: FakePlan, progress: Any = None) -> FakeFlight:
        return FakeFlight(self.execute(plan, progress))

    async def rank_targets(self, target: Any) -> list[tuple[str, str]]:
        return self.ranked

    def unfinished(self) -> tuple[list[Any], list[str]]:
        return [], []

    def audit_entries(self, limit: int) -> list[dict[str, Any]]:
        return self.audit[-limit:]


class FakeFlight:
    """A Flight over one awaitable result; cancel is recorded, abandon stops it at once."""

    def __init__(self, coro: Any) -> None:
        self._coro = coro
        self.cancelled: str | None = None
        self.abandoned = False

    def cancel(self, reason: str) -> None:
        self.cancelled = reason

    def abandon(self) -> None:
        self.abandoned = True

    async def result(self) -> Any:
        if self.abandoned:
            self._coro.close()
            raise asyncio.CancelledError
        return await self._coro


INSPECT_DOC = {
    "Id": "x", "Name": "/acme-api-1",
    "Config": {
        "Image": "registry.acme.io/api:4.2.1", "Entrypoint": ["/usr/bin/tini", "--"], "Cmd": ["api", "--port=8080"],
        "Labels": {"tenant": "acme", "com.acme.team": "payments"}, "Tty": False,
        "Env": ["PATH=/usr/local/bin:/usr/bin", "DB_PASSWORD=hunter2", "DATABASE_URL=postgres://api:s3cret@db:5432/acme",
                "LOG_LEVEL=info", "STRIPE_API_KEY=sk_live_abc"],
    },
    "State": {"Status": "running", "Pid": 4242, "ExitCode": 0, "OOMKilled": False},
    "HostConfig": {"NanoCpus": 2_000_000_000, "Memory": 2 * 1024**3, "RestartPolicy": {"Name": "unless-stopped"}},
    "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]},
                        "Networks": {"acme-net": {"IPAddress": "172.20.0.5"}}},
    "Mounts": [{"Type": "volume", "Name": "acme-data", "Destination": "/data", "RW": True}],
}


def frame(stream: int, text: str) -> bytes:
    data = text.encode()
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class FakeEngine:
    """An EngineClient stand-in for the detail and logs screens."""

    def __init__(self, node: str) -> None:
        self.node = node

    async def inspect(self, cid: str) -> dict[str, Any]:
        return INSPECT_DOC

    async def log_chunks(self, cid: str, tail: int = 200, follow: bool = True) -> AsyncIterator[bytes]:
        yield frame(1, "booting api\nlistening on :8080\n")
        yield frame(2, "warn: slow query 1200ms\n")
        yield frame(1, "GET /health 200\nGET /orders 500\n")
        await asyncio.sleep(0)


class FakeFeed:
    """A FleetFeed for UI tests: snapshots are pushed by the test; reads go to an engine-like double
    (``engine(node)`` with ``inspect`` and ``log_chunks``), as the local feed's go to EngineClients."""

    def __init__(self, engine: Any = None) -> None:
        self.engine = engine
        self.focused: list[frozenset[str]] = []
        self.refreshed: list[tuple[str, str | None]] = []

    latest = None
    is_started = True

    @property
    def reads(self) -> str | None:
        return None if self.engine is not None else "no engine connection (test or demo data)"

    def subscribe(self, on_snapshot: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def focus(self, ids: frozenset[str]) -> None:
        self.focused.append(ids)

    def refresh(self, node: str, container_id: str | None = None) -> None:
        self.refreshed.append((node, container_id))

    async def inspect(self, node: str, container_id: str) -> dict[str, Any]:
        return await self.engine(node).inspect(container_id)

    async def follow_logs(self, node: str, container_id: str, on_chunk: Any, *, tail: int = 200,
                          follow: bool = True) -> None:
        async for chunk in self.engine(node).log_chunks(container_id, tail=tail, follow=follow):
            on_chunk(chunk)


def make_app(size_hint: str = "", **kwargs: Any) -> BerthApp:
    """A console on fleetdata; ``engine=`` an engine-like double class answers the detail reads."""
    if "engine" in kwargs:
        kwargs["feed"] = FakeFeed(kwargs.pop("engine"))
    kwargs.setdefault("inventory", fleetdata.inventory())
    kwargs.setdefault("clock", lambda: fleetdata.NOW)
    kwargs.setdefault("rotate_every", 0)
    app = BerthApp(**kwargs)
    app.snapshot = fleetdata.fleet()
    return app
