"""The poller: per-node independent tasks feeding a mutable store that publishes frozen snapshots.

Per node (a NodeWatcher): a supervisor connects (ping, info, version), then runs
  * an info loop (every minute),
  * a list loop (`/containers/json?all=1` on a cadence; also the heartbeat),
  * the `/events` stream, applied at once and resumed with `since`,
  * one stats stream per running container that is busy or on screen, opened and closed as they
    start and stop; a container idle for IDLE_SAMPLES samples in a row (and not on screen) leaves
    its stream and gets one one-shot sample every `stats_idle_interval` seconds instead, until a
    sample shows it busy again. dockerd collects stats only for subscribed containers, so idle
    ones then cost the node one collection per interval instead of one a second.
Any connection failure marks the node down and the supervisor reconnects with
backoff; nothing one node does can delay another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from datetime import datetime
from typing import Any

import orjson
import psutil

from console.config import Inventory, NodeConfig
from console.engine.client import EngineClient
from console.engine import client as engine_client
from console.engine.errors import (
    DuplicateEngine,
    EngineError,
    NodeTimeout,
    NodeUnreachable,
    NotFound,
    ProtocolError,
)
from console.engine.rawstream import LineStream, StreamEnded, StreamError
from console.engine.stats import StatsSample, for_engine
from console.fleet import density
from console.fleet.history import HistoryStore, Ring
from console.fleet.model import (
    ContainerSnapshot,
    FleetSnapshot,
    HostLoad,
    NodeSnapshot,
    NodeState,
    Observer,
)

log = logging.getLogger(__name__)

# Labels Berth itself puts on node-side objects (see console.actions): never shown as workload.
ROLE_LABEL = "berth.role"
TARGET_LABEL = "berth.target"
ACTION_LABEL = "berth.action"

STATS_STATES = frozenset({"running", "paused"})
IDLE_CPU = 1.0  # % of a core: below this a sample counts as idle
IDLE_SAMPLES = 10  # idle samples in a row before a container drops to the idle cadence
EMPTY_SAMPLES = 2  # empty samples in a row (no figures) before a running container's stats count as failed
WARMUP_CHECK = 0.1  # seconds between checks for the first complete round, while there is none
WARMUP_LIMIT = 30.0  # a node that never completes must not keep the publisher checking forever
# Event actions that change what we show about a container.
CONTAINER_EVENTS = ("create", "start", "restart", "die", "oom", "kill", "stop", "pause", "unpause",
                    "destroy", "rename", "health_status", "update")


@dataclass(frozen=True, slots=True)
class Refresh:
    """Re-read now, not at the next poll: one node (its listing and Berth's markers on it: cordon,
    isolation, locks) and, with `container_id`, that container's inspect too. What an action's
    caller sends when it finished, so the next snapshot shows the result instead of the state
    before it for up to a listing interval."""

    node: str
    container_id: str | None = None


def parse_time(text: Any) -> float | None:
    """Docker timestamps (RFC 3339 with nanoseconds) to unix seconds; the zero time is None."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    head, _, frac = text.rstrip("Z").partition(".")
    tz = "+00:00"
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, rest = frac.partition(sign)
            tz = sign + rest
    if "+" in head[10:] or head[10:].count("-"):
        # offset without fractional seconds, e.g. 2024-01-01T00:00:00+02:00
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(head).timestamp()
    try:
        base = datetime.fromisoformat(f"{head}{tz}")
    except ValueError:
        return None
    return base.timestamp() + (float(f"0.{frac}") if frac.isdigit() else 0.0)


class ContainerState:
    """Mutable per-container state, owned by its NodeWatcher."""

    __slots__ = ("id", "node", "name", "image", "tenant", "labels", "state", "status", "created",
                 "started_at", "restart_count", "health", "exit_code", "oom_killed", "cpu_limit",
                 "mem_limit", "cpu_percent", "mem_used", "sampled_at", "prev", "event_at", "inspected",
                 "isolated", "busy", "idle_runs", "next_poll", "stats_error", "empty_runs", "_snap")

    def __init__(self, cid: str, node: str) -> None:
        self.id = cid
        self.node = node
        self.name = cid[:12]
        self.image = ""
        self.tenant = density.UNASSIGNED
        self.labels: dict[str, str] = {}
        self.state = "created"
        self.status = ""
        self.created = 0.0
        self.started_at: float | None = None
        self.restart_count = 0
        self.health: str | None = None
        self.exit_code: int | None = None
        self.oom_killed = False
        self.cpu_limit: float | None = None
        self.mem_limit: int | None = None
        self.cpu_percent: float | None = None
        self.mem_used: int | None = None
        self.sampled_at: float | None = None
        self.prev: StatsSample | None = None
        self.event_at = 0.0
        self.inspected = False
        self.isolated = False
        self.busy: str | None = None
        self.idle_runs = 0  # idle samples in a row (see IDLE_SAMPLES)
        self.next_poll = 0.0  # loop time of the next one-shot sample at the idle cadence
        self.stats_error: str | None = None  # why its stats give no figures (a round is not waited on for it)
        self.empty_runs = 0  # empty samples in a row
        self._snap: ContainerSnapshot | None = None

    def touch(self) -> None:
        self._snap = None

    def snapshot(self, fresh: bool) -> ContainerSnapshot:
        """Cached until something changes; `fresh=False` (node down): the last known, marked stale."""
        if self._snap is None:
            self._snap = ContainerSnapshot(
                id=self.id, name=self.name, node=self.node, tenant=self.tenant, image=self.image,
                state=self.state, status=self.status, created=self.created, started_at=self.started_at,
                cpu_percent=self.cpu_percent if self.state in STATS_STATES else None,
                mem_used=self.mem_used if self.state in STATS_STATES else None,
                mem_limit=self.mem_limit, cpu_limit=self.cpu_limit, restart_count=self.restart_count,
                health=self.health, labels=tuple(sorted(self.labels.items())), oom_killed=self.oom_killed,
                exit_code=self.exit_code, isolated=self.isolated, busy=self.busy, sampled_at=self.sampled_at,
                stats_error=self.stats_error,
            )
        if not fresh:
            return replace(self._snap, stale=True)
        return self._snap


def raise_fd_limit() -> int:
    """Lift the soft limit on open files to the hard one, as Go programs (the docker CLI) do at start:
    a stream per running container needs a descriptor each, past the common soft default of 1024.
    Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


class NodeWatcher:
    """Everything Berth knows about one node, and the tasks that keep it current."""

    idle_after = IDLE_SAMPLES

    def __init__(self, cfg: NodeConfig, inventory: Inventory, on_change: Callable[..., None],
                 client: EngineClient | None = None, list_interval: float = 10.0,
                 info_interval: float = 60.0, slow_after: float = 2.0,
                 heartbeat: float = 2.0) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.tenancy_label = inventory.tenancy_label
        self.client = client or EngineClient(cfg)
        self.on_change = on_change
        self.list_interval = list_interval
        self.info_interval = info_interval
        self.slow_after = slow_after
        self.heartbeat = heartbeat
        self.state = NodeState.CONNECTING
        self.error: str | None = None
        self.error_at: float | None = None
        self.partial_errors: dict[str, tuple[float, str]] = {}  # source -> (time, text)
        self.last_ok: float | None = None
        # Berth's own figures for this node (console.metrics exposes them): stats samples applied,
        # and errors seen (a failed connection attempt, a partial failure such as a bad sample).
        self.samples = 0
        self.errors = 0
        self.info: dict[str, Any] = {}
        self.version: dict[str, Any] = {}
        self.containers: dict[str, ContainerState] = {}
        self.cordoned = False
        self.connected_once = False
        self.list_done = False
        self.cpu_ring = Ring()
        self.mem_ring = Ring()
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._stats_streams: dict[str, LineStream] = {}
        self._oneshots: dict[str, tuple[LineStream, float]] = {}  # cid -> (stream, loop time opened)
        # Over TLS a one-shot sample costs a handshake each, more than it saves: stream everything.
        self.idle_interval = cfg.stats_idle_interval if cfg.tls is None and cfg.stats_idle_interval > 1.0 else 0.0
        self.focus: frozenset[str] = frozenset()  # ids on screen: always at full rate
        self._inspecting: set[str] = set()
        self._inspect_sem = asyncio.Semaphore(16)
        self._events_since: float | None = None
        self._events_open_since: float | None = None  # monotonic time the event stream last opened
        self._stop = False
        # Set by the Fleet: node name -> its daemon's /info ID, shared by every watcher, and the
        # inventory's node order. A daemon already watched under an earlier name is refused here.
        self.engines: dict[str, str] | None = None
        self.peers: tuple[str, ...] = ()
        self._duplicate = False

    # -- state ---------------------------------------------------------------

    def _ok(self) -> None:
        self.last_ok = time.time()

    def _own(self, text: str) -> str:
        """An error as this node's row shows it: without the node's own name in front (the row, the
        alert and the JSON object already name it; "sim-03 down: sim-03: ..." says it twice)."""
        return text.removeprefix(f"{self.name}: ")

    def _partial(self, source: str, text: str) -> None:
        self.errors += 1
        self.partial_errors[source] = (time.time(), self._own(text))
        self._reassess()

    def _clear_partial(self, source: str) -> None:
        if self.partial_errors.pop(source, None) is not None:
            self._reassess()

    def _reassess(self) -> None:
        """up unless something partial failed recently (then degraded); down is set by the supervisor."""
        if self.state in (NodeState.DOWN, NodeState.CONNECTING):
            return
        now = time.time()
        recent = {k: v for k, v in self.partial_errors.items() if now - v[0] < 30}
        self.partial_errors = recent
        if recent:
            at, text = max(recent.values())
            self.state, self.error, self.error_at = NodeState.DEGRADED, text, at
        else:
            self.state, self.error = NodeState.UP, None
        self.on_change()

    def _mark_down(self, err: EngineError | str) -> None:
        text = self._own(str(err))
        self.errors += 1
        was = self.state
        if isinstance(err, DuplicateEngine):
            self.containers.clear()  # another node shows them: not a second time, not even as stale
        elif self.engines is not None and not self._duplicate:
            self.engines.pop(self.name, None)  # a node that is away does not hold its daemon's ID
        self.state = NodeState.DOWN
        self.error = text
        self.error_at = time.time()
        for c in self.containers.values():
            c.prev = None
            c.idle_runs = 0  # back at full rate after a reconnect, until samples say idle again
            c.touch()
        if was is not NodeState.DOWN:
            log.warning("node %s down: %s", self.name, text)
        self.on_change()

    # -- supervisor ----------------------------------------------------------

    async def run(self) -> None:
        delay = 0.5
        while not self._stop:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except EngineError as exc:
                self._mark_down(exc)
            except Exception as exc:  # a bug must not kill the node's watcher silently
                log.exception("node %s: internal error", self.name)
                self._mark_down(f"{self.name}: internal error: {type(exc).__name__}: {exc}")
            finally:
                await self._close_streams()
            if self.connected_once and self.state is not NodeState.DOWN:
                delay = 0.5
            await self.client.reset()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _same_engine_as(self) -> str | None:
        """The earlier node (inventory order) whose daemon has this node's /info ID, if any."""
        mine = self.info.get("ID")
        if not isinstance(mine, str) or not mine or self.engines is None:
            return None
        for name in self.peers:
            if name == self.name:
                return None
            if self.engines.get(name) == mine:
                return name
        return None

    def _check_engine(self) -> None:
        first = self._same_engine_as()
        self._duplicate = first is not None
        if first is not None:
            engine_id = str(self.info.get("ID"))
            shown = engine_id if len(engine_id) <= 16 else engine_id[:12] + "…"
            raise DuplicateEngine(self.name, "GET /info", f"same engine as node {first} (ID {shown}): "
                                                          "its containers are counted there, not here")

    async def _session(self) -> None:
        await self.client.ping()
        if self._duplicate:  # it was another node's daemon: ask /info before listing anything again
            await self._refresh_info()
            self._check_engine()
        try:
            async with asyncio.TaskGroup() as tg:  # /info is slow on dockerd: list (and open streams) meanwhile
                tg.create_task(self._refresh_info())
                tg.create_task(self._refresh_list())
        except ExceptionGroup as group:  # the supervisor shows one reason: the first, as it was raised
            raise group.exceptions[0] from None
        self._check_engine()
        self.connected_once = True
        self.state = NodeState.UP
        self.error = None
        self.partial_errors.clear()
        self.on_change()
        loops = (self._info_loop, self._list_loop, self._events_loop, self._heartbeat_loop, self._idle_loop)
        tasks = [asyncio.create_task(loop(), name=f"berth:{self.name}:{loop.__name__}") for loop in loops]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # re-raise the first failure to the supervisor
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        self._stop = True
        await self._close_streams()
        await self.client.aclose()

    # -- info / list ---------------------------------------------------------

    async def _refresh_info(self) -> None:
        info = await self.client.info()
        for key in ("NCPU", "MemTotal"):
            value = info.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProtocolError(self.name, "GET /info", f"field {key} is not a count: {str(value)[:40]!r}")
        self.info = info
        if self.engines is not None and isinstance(info.get("ID"), str) and info["ID"]:
            self.engines[self.name] = info["ID"]
        if self._events_since is None:
            # Events from the daemon's own clock at connect: nothing between this and the stream is lost.
            self._events_since = parse_time(self.info.get("SystemTime"))
        try:
            self.version = await self.client.version()
            self._clear_partial("version")
        except (NodeUnreachable, NodeTimeout):
            raise
        except EngineError as exc:
            self._partial("version", str(exc))
        self._ok()
        self.on_change()

    async def _info_loop(self) -> None:
        while True:
            await asyncio.sleep(self.info_interval)
            try:
                await self._refresh_info()
                self._clear_partial("info")
            except (NodeUnreachable, NodeTimeout):
                raise
            except EngineError as exc:
                self._partial("info", str(exc))

    async def _heartbeat_loop(self) -> None:
        """Liveness without load: ping only when nothing else has arrived for a heartbeat.

        Stats and events are proof of life for free; an idle or frozen node gets a
        /_ping, whose timeout (the node's) bounds how long a hung daemon looks up.
        """
        while True:
            await asyncio.sleep(self.heartbeat)
            self._check_engine()  # an earlier node with the same daemon may have connected since
            self._check_stalled_streams(asyncio.get_running_loop().time())
            self._events_healthy_again()
            if self.partial_errors:
                self._reassess()  # partial errors expire after 30 s without a repeat
            if self.last_ok is None or time.time() - self.last_ok >= self.heartbeat:
                started = time.monotonic()
                await self.client.ping()
                self._ok()
                elapsed = time.monotonic() - started
                if elapsed > self.slow_after:
                    self._partial("slow", f"{self.name}: slow: /_ping took {elapsed:.1f}s")
                elif "slow" in self.partial_errors:
                    self._clear_partial("slow")

    async def _list_loop(self) -> None:
        while True:
            await asyncio.sleep(self.list_interval)
            await self._refresh_list()

    async def _refresh_list(self) -> None:
        started = time.monotonic()
        items = await self.client.containers(all=True)
        markers = await self._berth_markers()
        elapsed = time.monotonic() - started
        self._ok()
        self._apply_list(items, started, markers)
        if elapsed > self.slow_after:
            self._partial("slow", f"{self.name}: slow: listing containers took {elapsed:.1f}s")
        else:
            self._clear_partial("slow")
        self.list_done = True

    async def _berth_markers(self) -> list[dict[str, Any]]:
        """Node-side Berth objects (isolation networks, cordon marker) that carry shared state."""
        try:
            nets = await self.client.get_json(
                "/networks", params={"filters": '{"label":["%s"]}' % ROLE_LABEL})
            self._clear_partial("networks")
            return nets if isinstance(nets, list) else []
        except (NodeUnreachable, NodeTimeout):
            raise
        except EngineError as exc:
            self._partial("networks", str(exc))
            return []

    def _apply_list(self, items: list[dict[str, Any]], started: float, markers: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        isolated: set[str] = set()
        cordoned = False
        for net in markers:
            labels = (net.get("Labels") or {}) if isinstance(net, dict) else {}
            role = labels.get(ROLE_LABEL)
            if role == "isolation" and labels.get(TARGET_LABEL):
                isolated.add(labels[TARGET_LABEL])
            elif role == "cordon":
                cordoned = True
        busy: dict[str, str] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("Id"), str):
                continue
            labels = item.get("Labels") or {}
            if not isinstance(labels, dict):
                labels = {}
            if labels.get(ROLE_LABEL):  # Berth's own lock/helper containers
                if labels.get(ROLE_LABEL) == "lock" and labels.get(TARGET_LABEL):
                    busy[labels[TARGET_LABEL]] = labels.get(ACTION_LABEL, "busy")
                continue
            cid = item["Id"]
            seen.add(cid)
            c = self.containers.get(cid)
            if c is None:
                c = self.containers[cid] = ContainerState(cid, self.name)
            names = item.get("Names") or []
            if names and isinstance(names[0], str):
                c.name = names[0].lstrip("/")
            c.image = str(item.get("Image") or "")
            c.labels = {str(k): str(v) for k, v in labels.items()}
            c.tenant = c.labels.get(self.tenancy_label) or density.UNASSIGNED
            c.created = float(item.get("Created") or 0)
            if c.event_at <= started:  # an event newer than this listing wins
                c.state = str(item.get("State") or "unknown")
                c.status = str(item.get("Status") or "")
            c.touch()
        for cid in list(self.containers):
            if cid not in seen:
                self._forget(cid)
        for cid, c in self.containers.items():
            iso = cid in isolated or cid[:12] in isolated
            action = busy.get(cid) or busy.get(cid[:12])
            if c.isolated != iso or c.busy != action:
                c.isolated, c.busy = iso, action
                c.touch()
            if not c.inspected and cid not in self._inspecting:
                self._schedule_inspect(cid)
        self.cordoned = cordoned
        self._reconcile_streams()
        self.on_change()

    def _forget(self, cid: str) -> None:
        self.containers.pop(cid, None)
        task = self._streams.pop(cid, None)
        if task:
            task.cancel()

    # -- inspect -------------------------------------------------------------

    def _schedule_inspect(self, cid: str) -> None:
        self._inspecting.add(cid)
        asyncio.get_running_loop().create_task(self._inspect(cid), name=f"berth:{self.name}:inspect")

    async def _inspect(self, cid: str) -> None:
        try:
            async with self._inspect_sem:
                doc = await self.client.inspect_lean(cid)
        except NotFound:
            self._forget(cid)
            self.on_change()
            return
        except EngineError as exc:
            log.debug("inspect %s on %s failed: %s", cid[:12], self.name, exc)
            return
        finally:
            self._inspecting.discard(cid)
        c = self.containers.get(cid)
        if c is None:
            return
        self.apply_inspect(c, doc)
        self._ok()
        self.on_change()

    @staticmethod
    def apply_inspect(c: ContainerState, doc: dict[str, Any]) -> None:
        host = doc.get("HostConfig") or {}
        st = doc.get("State") or {}
        nano = host.get("NanoCpus") or 0
        quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 100_000
        c.cpu_limit = nano / 1e9 if nano else (quota / period if quota > 0 else None)
        c.mem_limit = host.get("Memory") or None
        c.started_at = parse_time(st.get("StartedAt"))
        c.restart_count = int(doc.get("RestartCount") or 0)
        c.oom_killed = bool(st.get("OOMKilled"))
        c.exit_code = st.get("ExitCode") if isinstance(st.get("ExitCode"), int) else None
        health = st.get("Health")
        c.health = health.get("Status") if isinstance(health, dict) else None
        c.inspected = True
        c.touch()

    # -- events --------------------------------------------------------------

    async def _events_loop(self) -> None:
        while True:
            try:
                async for ev in self.client.events(since=self._events_since, filters={"type": ["container"]},
                                                   on_open=self._events_opened):
                    self._apply_event(ev)
            except (NodeUnreachable, NodeTimeout):
                raise
            except EngineError as exc:
                self._events_open_since = None
                # The stream broke: if the node itself is gone, ping says so and we go down at once.
                await self.client.ping()
                self._partial("events", str(exc))
                await asyncio.sleep(0.5)
            # After any reconnect the listing catches up with what the stream may have missed.
            await self._refresh_list()

    def _events_opened(self) -> None:
        self._events_open_since = time.monotonic()

    def _events_healthy_again(self) -> None:
        """A reopened event stream that has run clean for a few seconds clears its old complaint."""
        since = self._events_open_since
        if since is not None and "events" in self.partial_errors and time.monotonic() - since >= 2.0:
            self._clear_partial("events")

    def _apply_event(self, ev: dict[str, Any]) -> None:
        if ev.get("Type") != "container":
            return
        nano = ev.get("timeNano")
        if isinstance(nano, int):
            self._events_since = nano / 1e9
        action = str(ev.get("Action") or ev.get("status") or "")
        action = action.split(":", 1)[0].strip()  # "health_status: healthy", "exec_start: sh"
        if action == "died":  # Podman's own events (and older compat services) say `died`
            action = "die"
        actor = ev.get("Actor")
        actor = actor if isinstance(actor, dict) else {}
        cid = actor.get("ID") or ev.get("id")
        attrs = actor.get("Attributes") or {}
        if not isinstance(cid, str) or action not in CONTAINER_EVENTS or not isinstance(attrs, dict):
            return
        self._ok()
        if attrs.get(ROLE_LABEL):
            self._apply_helper_event(action, attrs)
            return
        c = self.containers.get(cid)
        if action == "destroy":
            if c is not None:
                self._forget(cid)
                self.on_change()
            return
        if c is None:
            c = self.containers[cid] = ContainerState(cid, self.name)
            c.image = str(attrs.get("image") or "")
            c.labels = {k: str(v) for k, v in attrs.items() if k not in ("name", "image")}
            c.tenant = c.labels.get(self.tenancy_label) or density.UNASSIGNED
            c.created = time.time()
        if isinstance(attrs.get("name"), str):
            c.name = attrs["name"].lstrip("/")
        c.event_at = time.monotonic()
        at = nano / 1e9 if isinstance(nano, int) else time.time()
        if action == "start" or action == "restart":
            c.state = "running"
            c.status = "Up"
            c.started_at = at  # now, not the last run's start until the inspect answers
            c.stats_error, c.empty_runs = None, 0  # a new run: its stats get a fresh chance
        elif action == "unpause":
            c.state = "running"
            c.status = "Up"
        elif action == "die":
            c.state = "exited"
            try:
                # dockerd: exitCode; Podman: containerExitCode
                c.exit_code = int(attrs.get("exitCode", attrs.get("containerExitCode")))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                pass  # absent or not a number: keep what inspect said
            c.status = f"Exited ({c.exit_code})"
            c.cpu_percent = None
            c.prev = None
        elif action == "pause":
            c.state = "paused"
            c.status = "Paused"
        elif action == "oom":
            c.oom_killed = True
        elif action == "health_status":
            status = str(ev.get("status") or ev.get("Action") or "")
            c.health = status.split(":", 1)[1].strip() if ":" in status else c.health
        c.touch()
        if action in ("create", "start", "restart", "die", "update", "rename"):
            if cid not in self._inspecting:
                self._schedule_inspect(cid)
        self._reconcile_streams()
        self.on_change()

    def _apply_helper_event(self, action: str, attrs: dict[str, Any]) -> None:
        """A Berth lock appearing or going is an action starting or ending on its target: the
        badge follows at once, not at the next listing (the listing stays the authority)."""
        if attrs.get(ROLE_LABEL) != "lock" or not isinstance(attrs.get(TARGET_LABEL), str):
            return
        target = attrs[TARGET_LABEL]
        c = self.containers.get(target) or next(
            (c for cid, c in self.containers.items() if cid.startswith(target) and len(target) >= 12), None)
        if c is None:
            return
        busy = str(attrs.get(ACTION_LABEL) or "busy") if action in ("create", "start") else \
            None if action in ("destroy", "die") else c.busy
        if busy != c.busy:
            c.busy = busy
            c.touch()
            self.on_change()

    async def refresh(self, container_id: str | None = None) -> None:
        """Re-read the listing (states, markers, locks) and, given one, that container's inspect,
        now. Failures are the node loops' business: they mark the node down or degraded."""
        if self.state in (NodeState.DOWN, NodeState.CONNECTING):
            return
        try:
            await self._refresh_list()
            if container_id is not None:
                cid = container_id if container_id in self.containers else next(
                    (k for k in self.containers if k.startswith(container_id)), None)
                if cid is not None:
                    await self._inspect(cid)
        except EngineError as exc:
            log.debug("refresh of %s failed: %s", self.name, exc)

    # -- stats ---------------------------------------------------------------

    def _streamed(self, c: ContainerState) -> bool:
        """Full rate: busy, on screen, not yet known to be idle, or no idle cadence on this node."""
        return c.state in STATS_STATES and (
            not self.idle_interval or c.idle_runs < self.idle_after or c.id in self.focus)

    def _reconcile_streams(self) -> None:
        for cid, c in self.containers.items():
            if cid not in self._streams and self._streamed(c):
                self._start_stream(cid)
        for cid in [cid for cid in self._streams if cid not in self.containers
                    or not self._streamed(self.containers[cid])]:
            self._streams.pop(cid).cancel()

    def _start_stream(self, cid: str) -> None:
        task = asyncio.get_running_loop().create_task(self._stats(cid), name=f"berth:{self.name}:stats")
        task.add_done_callback(partial(self._stats_ended, cid))
        self._streams[cid] = task

    def _retune(self, cid: str) -> None:
        """One container's stream on or off to match `_streamed`: O(1), for one sample's or one
        focus change's worth of difference (a whole node going idle at once must not be O(n²))."""
        c = self.containers.get(cid)
        wanted = c is not None and self._streamed(c)
        if wanted and cid not in self._streams:
            self._start_stream(cid)
        elif not wanted and cid in self._streams:
            self._streams.pop(cid).cancel()

    def set_focus(self, ids: frozenset[str]) -> None:
        """Containers on screen stream at full rate whatever their load."""
        changed, self.focus = ids ^ self.focus, ids
        for cid in changed:
            self._retune(cid)

    async def _idle_loop(self) -> None:
        """The idle cadence: each idle container gets a one-shot sample every `idle_interval`,
        spread over the interval; the sample arrives through the same callback as a stream's."""
        if not self.idle_interval:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for _cid, (stream, opened) in list(self._oneshots.items()):
                if now - opened > self.client.timeout + 2.0:  # dockerd answers at its next collection (<= 1 s)
                    stream.abort(f"no one-shot sample within {self.client.timeout + 2.0:g}s")
            for cid, c in list(self.containers.items()):
                if (c.state in STATS_STATES and c.next_poll <= now and cid not in self._streams
                        and cid not in self._oneshots and not self._streamed(c)):
                    c.next_poll = now + self.idle_interval
                    await self._open_oneshot(cid)

    async def _open_oneshot(self, cid: str) -> None:
        got: list[bool] = []

        def on_line(line: bytes) -> None:
            got.append(True)
            self._apply_stats_line(cid, line)

        def on_close(exc: Exception | None) -> None:
            self._oneshots.pop(cid, None)
            if got or (isinstance(exc, StreamError) and exc.status == 404):
                return  # done; a container that is gone is removed by its event or the listing
            c = self.containers.get(cid)
            if c is not None and c.state in STATS_STATES:
                self._partial(f"stats:{cid}", f"{self.name}: one-shot stats of {c.name}: "
                                              f"{exc or 'closed without a sample'}")

        try:
            stream = await self.client.open_lines(for_engine(self.client.engine).oneshot_path(cid),
                                                  on_line, on_close, once=True)
        except (NodeUnreachable, NodeTimeout):
            raise  # the node itself is away: the supervisor marks it down
        except EngineError as exc:
            self._partial(f"stats:{cid}", str(exc))
            return
        self._oneshots[cid] = (stream, asyncio.get_running_loop().time())

    async def _close_streams(self) -> None:
        for stream, _ in list(self._oneshots.values()):
            stream.abort()
        self._oneshots.clear()
        tasks = list(self._streams.values())
        self._streams.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stats(self, cid: str) -> None:
        """Keep one stats stream open while the container runs; samples arrive by callback."""
        loop = asyncio.get_running_loop()
        try:
            while (c := self.containers.get(cid)) is not None and self._streamed(c):
                closed: asyncio.Future[Exception | None] = loop.create_future()

                def on_close(exc: Exception | None, closed: asyncio.Future[Exception | None] = closed) -> None:
                    if not closed.done():
                        closed.set_result(exc)

                try:
                    stream = await self.client.open_lines(for_engine(self.client.engine).stream_path(cid),
                                                          partial(self._apply_stats_line, cid), on_close)
                except EngineError as exc:  # any failure to open is shown and retried, never silent
                    self._partial(f"stats:{cid}", str(exc))
                    self._stats_failed(cid, self._own(str(exc)))
                    await asyncio.sleep(1.0)
                    continue
                self._stats_streams[cid] = stream
                try:
                    ended = await closed
                finally:
                    self._stats_streams.pop(cid, None)
                    stream.abort()
                if isinstance(ended, StreamError) and ended.status == 404:
                    return  # the container is gone; the event or the listing removes it
                clean_end = isinstance(ended, StreamEnded)
                # dockerd ends the stream when a container stops; its die event may trail by a moment
                await asyncio.sleep(1.0)
                c = self.containers.get(cid)
                if c is not None and c.state in STATS_STATES:
                    why = "stream ended while the container runs" if clean_end else str(ended or "stream closed")
                    self._partial(f"stats:{cid}", f"{self.name}: stats of {c.name}: {why}")
        finally:
            if self._streams.get(cid) is asyncio.current_task():
                del self._streams[cid]

    def _stats_ended(self, cid: str, task: asyncio.Task[None]) -> None:
        """A stats task must not die unseen: a bug there shows on the node and the next reconcile retries."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("node %s: stats task for %s failed", self.name, cid[:12], exc_info=exc)
        self._partial(f"stats:{cid}", f"{self.name}: stats of {cid[:12]}: internal error: {type(exc).__name__}: {exc}")

    def _check_stalled_streams(self, now: float, after: float = 30.0) -> None:
        """Reopen stats streams that are hung: silent for `after` seconds (frozen daemon, lost peer),
        or holding a partial line for longer than a line may take (a peer trickling bytes)."""
        line_limit = engine_client.MAX_LINE_SECONDS
        for cid, stream in list(self._stats_streams.items()):
            c = self.containers.get(cid)
            if c is None or c.state != "running":
                continue
            if stream.line_begun and now - stream.line_begun > line_limit:
                stream.abort(f"stream line incomplete after {line_limit:g}s: the node is trickling or stuck")
            elif stream.last_rx and now - stream.last_rx > after:
                stream.abort(f"no stats sample for {after:g}s")

    def _stats_failed(self, cid: str, reason: str) -> None:
        """This container's stats give no figures: say why, and let the first round complete without
        it (`berth status` must not wait its whole timeout for figures that will not come)."""
        c = self.containers.get(cid)
        if c is not None and c.stats_error != reason:
            c.stats_error = reason
            c.touch()
            self.on_change()

    def _apply_stats_line(self, cid: str, line: bytes) -> None:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            c = self.containers.get(cid)
            self._partial(f"stats:{cid}", f"{self.name}: {c.name if c else cid[:12]}: bad stats sample: {exc}")
            self._stats_failed(cid, f"bad stats sample: {exc}")
            return
        self._apply_stats(cid, doc)

    def _apply_stats(self, cid: str, doc: Any) -> None:
        c = self.containers.get(cid)
        if c is None:
            return
        reader = for_engine(self.client.engine)
        try:
            sample = reader.decode(doc)
        except ValueError as exc:
            self._partial(f"stats:{cid}", f"{self.name}: {c.name}: bad stats sample: {exc}")
            self._stats_failed(cid, f"bad stats sample: {exc}")
            return
        if sample is None or (sample.system_cpu == 0 and sample.cpu_total == 0):
            # Docker sends one for a container that just stopped; a running container that gets
            # them in a row has no figures to give (dockerd could not read its cgroup).
            if c.state == "running":
                c.empty_runs += 1
                if c.empty_runs >= EMPTY_SAMPLES:
                    self._stats_failed(cid, "stats empty: the daemon has no figures for it, "
                                            "its cgroup is gone or unreadable")
            return
        if c.empty_runs or c.stats_error:
            c.empty_runs, c.stats_error = 0, None
        pct = reader.cpu_percent(c.prev, sample)
        if pct is not None:
            c.cpu_percent = pct
            if pct < IDLE_CPU:
                c.idle_runs += 1
                if c.idle_runs == self.idle_after and self.idle_interval:
                    # First one-shot one to two intervals from now, by a fixed fraction of the id, so
                    # containers that went idle together are still polled spread over the interval.
                    spread = zlib.crc32(c.id.encode()) / 0x1_0000_0000
                    c.next_poll = asyncio.get_running_loop().time() + self.idle_interval * (1.0 + spread)
                    self._retune(cid)  # drops to the idle cadence
            elif c.idle_runs:
                busy_again = c.idle_runs >= self.idle_after
                c.idle_runs = 0
                if busy_again:
                    self._retune(cid)  # back to full rate
        self.samples += 1
        c.prev = sample
        c.mem_used = sample.mem_used
        c.sampled_at = time.time()
        c.touch()
        self.last_ok = c.sampled_at
        if self.partial_errors:
            # Clear a stats complaint only after 5 s of clean samples: a stream cut after every
            # couple of samples must keep the node degraded long enough for anyone to see it.
            err = self.partial_errors.get(f"stats:{cid}")
            if err is not None and c.sampled_at - err[0] >= 5.0:
                self._clear_partial(f"stats:{cid}")
        self.on_change(True)

    # -- snapshot ------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True when this node has nothing more to tell for a first full picture."""
        if self.state is NodeState.DOWN:
            return True
        if not self.list_done:
            return False
        return all((c.cpu_percent is not None or c.stats_error is not None) and c.inspected
                   for c in self.containers.values() if c.state == "running")

    def snapshot(self, now: float, host: HostLoad | None) -> tuple[NodeSnapshot, list[ContainerSnapshot]]:
        fresh = self.state is not NodeState.DOWN
        containers = [c.snapshot(fresh) for c in self.containers.values()]
        cpus = int(self.info.get("NCPU") or 0)
        mem_total = int(self.info.get("MemTotal") or 0)
        node = NodeSnapshot(
            name=self.name, url=self.cfg.url, state=self.state, error=self.error, error_at=self.error_at,
            data_age=(now - self.last_ok) if self.last_ok else None,
            labels=tuple(sorted(self.cfg.labels)) if self.cfg.labels else (),
            cpus=cpus, mem_total=mem_total,
            engine_version=str(self.version.get("Version") or self.info.get("ServerVersion") or ""),
            api_version=self.client.api_version or "",
            kernel=str(self.info.get("KernelVersion") or ""),
            os=str(self.info.get("OperatingSystem") or ""),
            cgroup_version=str(self.info.get("CgroupVersion") or ""),
            density=density.node_density(cpus, mem_total, containers),
            host=host if self.cfg.is_local and fresh else None,
            cordoned=self.cordoned,
            insecure=self.cfg.insecure,
            cpu_history=self.cpu_ring.values(),
            mem_history=self.mem_ring.values(),
            samples=self.samples,
            errors=self.errors,
            engine=self.client.engine,
        )
        return node, containers


class Fleet:
    """All nodes of an inventory, and the snapshots made of them."""

    def __init__(self, inventory: Inventory, *, publish_interval: float = 0.5, stats_interval: float = 1.0,
                 watcher_factory: Callable[..., NodeWatcher] = NodeWatcher) -> None:
        self.inventory = inventory
        self.publish_interval = publish_interval
        self.history = HistoryStore()
        self.watchers = [watcher_factory(cfg, inventory, self._changed) for cfg in inventory.nodes]
        engines: dict[str, str] = {}  # node -> daemon /info ID: one daemon behind two names is refused
        for w in self.watchers:
            w.engines, w.peers = engines, tuple(x.name for x in self.watchers)
        self.latest: FleetSnapshot | None = None
        self._subscribers: list[Callable[[FleetSnapshot], None]] = []
        self._dirty = True  # something other than a stats sample changed: publish soon
        self._stats_dirty = False  # only samples changed: publish at stats_interval
        self.stats_interval = stats_interval
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._proc = psutil.Process(os.getpid())
        self._observer = Observer(0.0, 0)
        self._host: HostLoad | None = None
        self._quotas = {name: (q.cpu, q.memory) for name, q in inventory.tenants.items()}

    def subscribe(self, callback: Callable[[FleetSnapshot], None]) -> None:
        self._subscribers.append(callback)

    def set_focus(self, ids: Iterable[str]) -> None:
        """The containers on screen: sampled at full rate on every node, however idle."""
        focus = frozenset(ids)
        for w in self.watchers:
            w.set_focus(focus)

    async def refresh(self, *requests: Refresh) -> FleetSnapshot:
        """Re-read the named nodes/containers now and publish at once (see Refresh)."""
        by_name = {w.name: w for w in self.watchers}
        await asyncio.gather(*(by_name[r.node].refresh(r.container_id) for r in requests if r.node in by_name))
        return self.publish()

    def _changed(self, stats_only: bool = False) -> None:
        if stats_only:
            self._stats_dirty = True
        else:
            self._dirty = True

    async def start(self) -> None:
        raise_fd_limit()
        self._wake = asyncio.Event()
        self._proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self._tasks = [asyncio.create_task(w.run(), name=f"berth:{w.name}") for w in self.watchers]
        self._tasks.append(asyncio.create_task(self._publisher(), name="berth:publisher"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="berth:ticker"))

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.aclose() for w in self.watchers), return_exceptions=True)

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _publisher(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        warm_by = loop.time() + WARMUP_LIMIT  # until the first complete snapshot went out (or this)
        while True:
            warm = loop.time() >= warm_by
            await asyncio.sleep(self.publish_interval if warm else min(WARMUP_CHECK, self.publish_interval))
            now = time.monotonic()
            if not warm and self.first_round_done():
                # The first complete picture goes out the moment it exists, not up to a second later.
                warm_by = loop.time()
                self.publish()
                last = now
            # State changes go out within publish_interval; samples (1 Hz at the source) and
            # ages at stats_interval, so a busy fleet does not rebuild snapshots needlessly.
            elif (self._dirty and now - last >= self.publish_interval * 0.9) or now - last >= self.stats_interval:
                self.publish()
                last = now

    def first_round_done(self) -> bool:
        """Every node has answered (up or down) and every reachable one has had a full stats round."""
        return all(w.complete and w.state is not NodeState.CONNECTING for w in self.watchers)

    def publish(self) -> FleetSnapshot:
        self._dirty = self._stats_dirty = False
        snap = self.snapshot()
        self.latest = snap
        for cb in list(self._subscribers):
            try:
                cb(snap)
            except Exception:
                log.exception("snapshot subscriber failed")
        return snap

    async def _ticker(self) -> None:
        """1 Hz: history points, host load for local nodes, Berth's own cost."""
        while True:
            await asyncio.sleep(1.0)
            mem = psutil.virtual_memory()
            self._host = HostLoad(psutil.cpu_percent(None) / 100.0 * (psutil.cpu_count() or 1),
                                  mem.total - mem.available, mem.total)
            info = self._proc.memory_info()
            self._observer = Observer(self._proc.cpu_percent(None), info.rss)
            gone = self.history.keys()
            for w in self.watchers:
                gone.difference_update(w.containers)
                if w.state is NodeState.DOWN:
                    continue
                points = [(c.id, (c.cpu_percent or 0.0) / 100.0, c.mem_used or 0)
                          for c in w.containers.values() if c.state == "running"]
                self.history.record_many(points)
                w.cpu_ring.append(sum(p[1] for p in points))
                w.mem_ring.append(sum(p[2] for p in points))
            self.history.forget(gone)

    def snapshot(self) -> FleetSnapshot:
        now = time.time()
        nodes = []
        containers: list[ContainerSnapshot] = []
        for w in self.watchers:
            node, cs = w.snapshot(now, self._host)
            nodes.append(node)
            containers.extend(cs)
        self._seq += 1
        return FleetSnapshot(
            taken_at=now, seq=self._seq, nodes=tuple(nodes), containers=tuple(containers),
            tenants=density.tenants(containers, self._quotas), observer=self._observer,
            complete=all(w.complete for w in self.watchers), history=self.history,
        )

    async def wait_complete(self, timeout: float) -> FleetSnapshot:
        """Wait (bounded) until every reachable node has had one full stats round."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.first_round_done() and (self._host is not None or not any(w.cfg.is_local for w in self.watchers)):
                break
            await asyncio.sleep(0.1)
        return self.publish()
