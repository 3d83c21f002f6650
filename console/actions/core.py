"""Actions: the one code path behind TUI keys and CLI subcommands.

``resolve`` turns what the operator typed into a Target, ``plan`` checks an intent without
changing anything and says what it will do, ``execute`` does it under a node-side lock and
records it in the audit log before and after. Daemon failures come back as ``Result(ok=False)``
with the daemon's words; only read-only mode raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from console.actions import engine_ops as ops
from console.actions import recovery
from console.actions.audit import AuditLog
from console.actions.interrupt import CURRENT as _INTERRUPT
from console.actions.interrupt import Interrupt, Interrupted
from console.actions.isolation import (
    isolate,
    isolation_state,
    network_mode_refusal,
    unisolate,
    update_refusal,
)
from console.actions.journal import Journal, JournalError, MigrationRecord, proc_start
from console.actions.locks import AUDIT, STALE_AFTER, NodeLock
from console.actions.migrate import Migration, failpoint, preflight, summary
from console.actions.placement import Need, NodeLoad, fit_line, fit_problems, load_node
from console.actions.redact import mask_text
from console.actions.sharing import shared_with, sharing
from console.actions.types import (
    ACTIONS,
    NODE_ACTIONS,
    ActionError,
    Plan,
    Progress,
    ReadOnlyError,
    Refused,
    Result,
    Target,
)
from console.config import Inventory, NodeConfig, parse_size
from console.engine.client import EngineClient
from console.engine.errors import EngineError
from console.identity import Identity
from console.safefs import StateFileError

ProgressFn = Callable[[Progress], None]
# The audit id of the action running in this task (drain runs several migrations at once, one task each).
_AUDIT_ID: contextvars.ContextVar[str] = contextvars.ContextVar("berth_audit_id", default="")
# Who the action running in this task is for (several people share one Actions behind `berth serve`).
_WHO: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("berth_who", default=None)
# What the running action's steps add to its audit end record (a broken stale lock, ...).
_NOTES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("berth_notes", default=None)
CORDON_NET = "berth-cordon"
log = logging.getLogger(__name__)
SIMPLE = {"restart": "restarted", "stop": "stopped", "start": "started", "pause": "paused", "unpause": "unpaused"}


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class Actions:
    def __init__(self, inventory: Inventory, *, read_only: bool = False, audit: AuditLog | None = None,
                 user: str | None = None, journal: Journal | None = None) -> None:
        self.inventory = inventory
        self.read_only = read_only
        self.audit = audit if audit is not None else AuditLog(user=user)
        # Who asks when a caller names nobody: this process's user (the CLI, tests). Each intent may
        # name its own (console.identity): a served console has many people behind one Actions.
        self.identity = Identity(user or self.audit.user, "viewer" if read_only else "operator")
        self.demo = bool(getattr(self.audit, "demo", False))  # the demo's simulated fleet: its own state, apart
        # Beside the audit log: one state directory per operator holds both (checked from it down).
        self.journal = journal if journal is not None else Journal(self.audit.path.parent / "migrations",
                                                                   root=self.audit.path.parent)
        self._nodes: dict[str, NodeConfig] = {n.name: n for n in inventory.nodes}
        self._clients: dict[str, EngineClient] = {}
        # What a signal sets (the CLI): every action run without an interrupt of its own stops with it.
        self.interrupt = Interrupt()

    # -- plumbing -------------------------------------------------------------

    def node(self, name: str) -> NodeConfig:
        try:
            return self._nodes[name]
        except KeyError:
            # (berth --prometheus shows nodes of other inventories too: this is why they cannot be acted on)
            raise ActionError(f"unknown node {name!r}: not in this inventory, so Berth cannot reach its Engine API "
                              f"(nodes: {', '.join(self._nodes) or 'none'})") from None

    async def client(self, node: str) -> EngineClient:
        c = self._clients.get(node)
        if c is None:
            c = self._clients[node] = EngineClient(self.node(node))
        return await ops.ready(c)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def user(self) -> str:
        """The name of whoever the running intent is for (lock holder, isolation and cordon owner)."""
        return (_WHO.get() or self.identity).user

    def _refuse_read_only(self, action: str, who: Identity | None = None) -> None:
        """The guard for every mutating intent, here where it runs: read-only mode, then the role."""
        if self.read_only:
            raise ReadOnlyError(f"read-only console: {action} refused (started with --read-only)")
        if who is not None and not who.may_act:
            raise ReadOnlyError(f"{who.user} is a {who.role}: {action} refused (only operators act)")

    def _check_state(self, action: str) -> None:
        """Before anything else: an action that could not be audited (or journaled) is refused up front,
        with the one line saying which file and why (execute checks again as it writes)."""
        try:
            self.audit.check()
            if action in ("migrate", "drain", "recover"):
                self.journal.check()
        except StateFileError as exc:
            raise ActionError(str(exc)) from None

    # -- resolve ----------------------------------------------------------------

    async def _listing(self, nodes: list[str]) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
        async def one(name: str) -> list[dict[str, Any]]:
            return await (await self.client(name)).containers(all=True)

        results = await asyncio.gather(*(one(n) for n in nodes), return_exceptions=True)
        found: list[tuple[str, dict[str, Any]]] = []
        errors: dict[str, str] = {}
        for name, res in zip(nodes, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, EngineError | ActionError):
                    raise res
                errors[name] = str(res)
                continue
            for item in res:
                if not (item.get("Labels") or {}).get(ops.ROLE):
                    found.append((name, item))
        return found, errors

    def _target(self, node: str, item: dict[str, Any]) -> Target:
        names = item.get("Names") or []
        name = str(names[0]).lstrip("/") if names else item["Id"][:12]
        tenant = (item.get("Labels") or {}).get(self.inventory.tenancy_label) or "unassigned"
        return Target(node=node, id=item["Id"], name=name, tenant=tenant, state=str(item.get("State") or "unknown"))

    async def resolve(self, spec: str) -> Target:
        """``NODE/CONTAINER`` or a container name / id prefix unique across the fleet."""
        spec = spec.strip()
        if not spec:
            raise ActionError("no target given")
        node, slash, rest = spec.partition("/")
        if slash and node in self._nodes:
            nodes, want = [node], rest
        else:
            nodes, want = list(self._nodes), spec
        if not want:
            raise ActionError(f"no container given in {spec!r}")
        found, errors = await self._listing(nodes)

        def names(item: dict[str, Any]) -> list[str]:
            return [str(n).lstrip("/") for n in item.get("Names") or []]

        exact = [(n, i) for n, i in found if want in names(i) or i["Id"] == want]
        matches = exact or [(n, i) for n, i in found if i["Id"].startswith(want.lower())]
        if len(matches) == 1:
            return self._target(*matches[0])
        if len(matches) > 1:
            listed = ", ".join(f"{n}/{self._target(n, i).name} ({i['Id'][:12]})" for n, i in matches[:10])
            raise ActionError(f"{spec!r} is ambiguous: {listed}{' …' if len(matches) > 10 else ''}")
        down = f" ({'; '.join(errors.values())})" if errors else ""
        where = f"on {nodes[0]}" if len(nodes) == 1 else "in the fleet"
        raise ActionError(f"no container {want!r} {where}{down}")

    async def _node_target(self, spec: str | Target) -> Target:
        name = spec.node if isinstance(spec, Target) else spec.strip().rstrip("/")
        self.node(name)
        client = await self._client_or_error(name)
        cordon = await ops.inspect_network(client, CORDON_NET)
        return Target(node=name, id="", name=name, tenant="", state="cordoned" if cordon else "up")

    async def _client_or_error(self, node: str) -> EngineClient:
        try:
            return await self.client(node)
        except EngineError as exc:
            raise ActionError(str(exc)) from None

    # -- plan ---------------------------------------------------------------

    async def plan(self, action: str, spec_or_target: str | Target, *, who: Identity | None = None,
                   **params: Any) -> Plan:
        if action not in ACTIONS:
            raise ActionError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        self._refuse_read_only(action, who)
        self._check_state(action)
        params = {k: v for k, v in params.items() if v is not None}
        try:
            if action == "recover":
                return await self._plan_recover(str(spec_or_target), params)
            if action in NODE_ACTIONS:
                target = await self._node_target(spec_or_target)
                return await getattr(self, f"_plan_{action}")(target, params)
            target = spec_or_target if isinstance(spec_or_target, Target) else await self.resolve(spec_or_target)
            client = await self._client_or_error(target.node)
            doc = await ops.find_container(client, target.id)
            if doc is None:
                raise ActionError(f"{target.label} no longer exists")
            target = Target(target.node, doc["Id"], str(doc.get("Name", "")).lstrip("/"), target.tenant,
                            str((doc.get("State") or {}).get("Status") or target.state))
            if not (action == "migrate" and params.get("finalize")):
                holder = await NodeLock.holder(client, doc["Id"])
                refusal = None if holder is None else NodeLock.refusal(
                    holder, break_stale=bool(params.get("break_stale")),
                    stale_after=float(params.get("stale_after") or STALE_AFTER))
                if refusal is not None:
                    raise ActionError(f"{target.label} is {refusal}")
            if action in SIMPLE:
                return self._plan_simple(action, target, doc, params)
            return await getattr(self, f"_plan_{action}")(target, client, doc, params)
        except EngineError as exc:
            raise ActionError(str(exc)) from None

    def _head(self, target: Target, doc: dict[str, Any]) -> list[str]:
        image = (doc.get("Config") or {}).get("Image") or ""
        return [f"container: {target.name} ({target.id[:12]}), image {image}, {target.state}",
                f"node: {target.node}", f"tenant: {target.tenant}"]

    def _plan_simple(self, action: str, target: Target, doc: dict[str, Any], params: dict[str, Any]) -> Plan:
        st = doc.get("State") or {}
        running, paused = bool(st.get("Running")), bool(st.get("Paused"))
        problem = {
            "start": "it is already running" if running else None,
            "stop": "it is not running" if not running else None,
            "pause": "it is not running" if not running else ("it is already paused" if paused else None),
            "unpause": "it is not paused" if not paused else None,
            "restart": None,
        }[action]
        if problem:
            raise ActionError(f"cannot {action} {target.label}: {problem}")
        # The grace period in seconds, as the run will use it: --timeout, else the container's
        # StopTimeout, else dockerd's default of 10 s.
        stop_timeout = (doc.get("Config") or {}).get("StopTimeout")
        grace = params.get("timeout") if params.get("timeout") is not None else stop_timeout
        grace_text = f"{float(grace if grace is not None else 10):g}s"
        effect = {"restart": f"stop (SIGTERM, then SIGKILL after {grace_text}) and start again",
                  "stop": f"stop (SIGTERM, then SIGKILL after {grace_text})", "start": "start",
                  "pause": "freeze all processes (cgroup freezer)", "unpause": "resume all processes"}[action]
        lines = self._head(target, doc) + [f"effect: {effect}"]
        if action in ("stop", "restart"):
            source = "--timeout" if params.get("timeout") is not None else (
                "the container's StopTimeout" if stop_timeout is not None else "the default")
            lines.append(f"grace period: {grace_text} ({source})")
        if action in ("stop", "pause") and (doc.get("HostConfig") or {}).get("RestartPolicy", {}).get("Name") in (
                "always", "unless-stopped") and action == "pause":
            lines.append("warning: restart policy does not apply to a paused container")
        return Plan(action, target, params, tuple(lines))

    async def _plan_isolate(self, target: Target, client: EngineClient, doc: dict[str, Any],
                            params: dict[str, Any]) -> Plan:
        refusal = network_mode_refusal(doc)
        if refusal:
            raise ActionError(f"cannot isolate {target.label}: it {refusal}; stop it instead")
        if await isolation_state(client, target.id) is not None:
            raise ActionError(f"{target.label} is already isolated")
        if isinstance(params.get("memory"), str):
            try:
                params["memory"] = parse_size(params["memory"])
            except ValueError as exc:
                raise ActionError(f"--memory: {exc}") from None
        if params.get("cpus") is not None and float(params["cpus"]) <= 0:
            raise ActionError("--cpus must be positive")
        podman = update_refusal(client.engine, doc, params)
        if podman:
            raise ActionError(f"cannot isolate {target.label}: {podman}")
        nets = list((doc.get("NetworkSettings") or {}).get("Networks") or {})
        lines = self._head(target, doc) + [
            (f"effect: record logs/processes/ports/diff, disconnect from {', '.join(nets) or 'no network'}, "
            f"attach to internal network berth-q-{target.id[:12]} (no egress), restart policy -> no"),
        ]
        if params.get("freeze"):
            lines.append("effect: freeze (pause)")
        if params.get("cpus") or params.get("memory"):
            lines.append("effect: cap " + ", ".join(filter(None, [
                f"CPU {params['cpus']}" if params.get("cpus") else "",
                f"memory {params['memory']} bytes" if params.get("memory") else ""])))
        if params.get("reason"):
            lines.append(f"reason: {mask_text(str(params['reason']))}")
        return Plan("isolate", target, params, tuple(lines))

    async def _plan_unisolate(self, target: Target, client: EngineClient, doc: dict[str, Any],
                              params: dict[str, Any]) -> Plan:
        state = await isolation_state(client, target.id)
        if state is None:
            raise ActionError(f"{target.label} is not isolated")
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(float(state.get("when") or 0)))
        lines = self._head(target, doc) + [
            f"isolated by {state.get('who', '?')} at {when}: {mask_text(str(state.get('why') or '(no reason)'))}",
            (f"effect: reconnect {', '.join(state.get('networks') or {}) or 'no network'}, restart policy "
            f"{(state.get('restart_policy') or {}).get('Name') or 'no'}, limits as before, remove the quarantine"),
        ]
        return Plan("unisolate", target, params, tuple(lines))

    def _thresholds(self) -> tuple[float, float]:
        return self.inventory.alerts.cpu_committed, self.inventory.alerts.mem_committed

    async def _plan_migrate(self, target: Target, client: EngineClient, doc: dict[str, Any],
                            params: dict[str, Any]) -> Plan:
        if params.get("finalize"):
            return await self._plan_finalize(target, params)
        dest = params.get("to")
        if not dest:
            ranked = await self.rank_targets(target)
            fits = [n for n, line in ranked if not line.startswith(("unfit", "unreachable"))]
            if not fits:
                raise ActionError(f"no node can take {target.label}: " + "; ".join(f"{n}: {line}" for n, line in ranked))
            dest = params["to"] = fits[0]
        dst = await self._client_or_error(str(dest))
        cpu_max, mem_max = self._thresholds()
        facts = await preflight(client, dst, doc, cpu_max=cpu_max, mem_max=mem_max,
                                allow_bind=bool(params.get("allow_bind")), image_by_id=bool(params.get("image_by_id")))
        lines = summary(facts, target.node, str(dest), target.tenant, bool(params.get("remove_source")))
        return Plan("migrate", target, params, lines)

    async def _kept_sources(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        base = name.split("-migrated-")[0]
        found, _ = await self._listing(list(self._nodes))
        out = []
        for node, item in found:
            names = [str(n).lstrip("/") for n in item.get("Names") or []]
            if any(n.startswith(f"{base}-migrated-") for n in names) and item.get("State") != "running":
                out.append((node, item))
        return out

    async def _plan_finalize(self, target: Target, params: dict[str, Any]) -> Plan:
        kept = await self._kept_sources(target.name)
        if not kept:
            raise ActionError(f"no stopped source of {target.name} is kept (nothing to finalize)")
        lines = [f"container: {target.name}", f"effect: remove {len(kept)} kept source(s):"]
        lines += [f"  {n}/{self._target(n, i).name} ({i['Id'][:12]}, {i.get('State')})" for n, i in kept]
        params["kept"] = [[n, i["Id"]] for n, i in kept]
        return Plan("migrate", target, params, tuple(lines))

    # -- recovery of unfinished migrations ----------------------------------------------

    def unfinished(self) -> tuple[list[MigrationRecord], list[str]]:
        """Journaled migrations no running Berth is seeing through, and one line per unreadable file."""
        try:
            records, errors = self.journal.entries()
        except StateFileError as exc:
            return [], [str(exc)]
        return [r for r in records if not r.alive() and r.demo == self.demo], [str(e) for e in errors]

    async def _recovery_state(self, audit_id: str) -> tuple[recovery.Assessment, EngineClient, EngineClient]:
        try:
            record = self.journal.load(audit_id)
        except (JournalError, ValueError) as exc:
            raise ActionError(str(exc)) from None
        if record is None:
            ended = [e for e in self.audit.read() if e.get("id") == audit_id]
            why = (f"it has ended ({'ok' if ended[0].get('ok') else 'failed'} at {ended[0].get('ended_at')})"
                   if ended and ended[0].get("ended_at") else "see `berth recover` for the list")
            raise ActionError(f"no unfinished migration {audit_id}: {why}")
        if record.demo != self.demo:
            raise ActionError(f"migration {audit_id} was journaled by {'the demo' if record.demo else 'a real fleet'}"
                              f": not recovered {'against a real fleet' if record.demo else 'in the demo'}")
        if record.alive():
            raise ActionError(f"migration {audit_id} is being run by pid {record.pid} on {record.host} (the migration "
                              f"or a recovery of it): let it end, or stop that Berth first")
        src = await self._client_or_error(record.source_node)
        dst = await self._client_or_error(record.target_node)
        return await recovery.assess(record, src, dst), src, dst

    async def orphans(self) -> Orphans:
        """What interrupted actions left that no journal covers: locks whose process is gone from this host
        (or, from another host, older than STALE_AFTER), and audit records begun but never ended by a
        process that is gone. Migrations with a journal are listed by ``unfinished``, not here."""
        journals, _ = self.journal.entries()
        journaled = {r.audit_id for r in journals}
        journaled_locks = {(r.source_node, r.source_id) for r in journals}

        async def scan(node: str) -> list[dict[str, Any]]:
            return await (await self.client(node)).containers(all=True, filters={"label": [f"{ops.ROLE}=lock"]})

        found = await asyncio.gather(*(scan(n) for n in self._nodes), return_exceptions=True)
        locks: list[OrphanLock] = []
        unchecked: dict[str, str] = {}
        for node, res in zip(self._nodes, found, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, EngineError | ActionError):
                    raise res
                unchecked[node] = _short(str(res), 160)
                continue
            for item in res:
                labels = dict(item.get("Labels") or {})
                if labels.get(AUDIT) in journaled or (node, labels.get(ops.TARGET)) in journaled_locks:
                    continue
                if NodeLock.gone(labels) or NodeLock.age(labels) > STALE_AFTER:
                    names = item.get("Names") or []
                    locks.append(OrphanLock(node, item["Id"], str(names[0]).lstrip("/") if names else "", labels))
        records = [e for e in self.audit.dangling(STALE_AFTER) if e["id"] not in journaled]
        return Orphans(locks, records, unchecked)

    async def _plan_clear(self, spec: str, params: dict[str, Any]) -> Plan:
        found = await self.orphans()
        locks, records = found.locks, found.records
        if spec not in ("", "*"):
            locks = [lk for lk in locks if lk.labels.get(AUDIT) == spec]
            records = [e for e in records if e["id"] == spec]
        if not locks and not records:
            what = f"for {spec}" if spec not in ("", "*") else "(see `berth recover`)"
            raise ActionError(f"nothing to clear {what}: no orphan lock or unfinished action")
        lines = [f"orphan lock: {lk.describe()}" for lk in locks]
        lines += [f"unfinished action: {describe_dangling(e)}" for e in records]
        lines.append(f"effect: remove {len(locks)} lock(s); close {len(records)} audit record(s) as interrupted")
        params["locks"] = [[lk.node, lk.id] for lk in locks]
        params["records"] = [e["id"] for e in records]
        nodes = sorted({lk.node for lk in locks} | {str((e.get("target") or {}).get("node") or "") for e in records})
        target = Target(",".join(n for n in nodes if n) or "-", "", "orphans", "", "")
        return Plan("recover", target, params, tuple(lines))

    async def _run_clear(self, plan: Plan, emit: Callable[[str, str], None],
                         phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        found = await self.orphans()  # again: a lock may have been released, a record closed, since the plan
        still = {(lk.node, lk.id): lk for lk in found.locks}
        dangling = {e["id"]: e for e in found.records}
        removed, closed, skipped = [], [], []
        for node, lock_id in plan.params.get("locks") or []:
            lk = still.get((node, lock_id))
            if lk is None:
                skipped.append(f"lock {node}/{lock_id[:12]} (gone or live again)")
                continue
            emit("clear", f"removing {lk.node}/{lk.name}")
            await ops.remove_container(await self.client(node), lock_id, force=True)
            removed.append(f"{lk.node}/{lk.name}")
        for audit_id in plan.params.get("records") or []:
            e = dangling.get(audit_id)
            if e is None:
                skipped.append(f"record {audit_id} (ended meanwhile)")
                continue
            who = f"pid {e['pid']} on {e.get('host')}" if e.get("pid") else "its Berth"
            self.audit.end(audit_id, False, [{"phase": str(e.get("action")), "ok": False, "error": "interrupted"}],
                           f"interrupted: {who} ended without closing this record; closed by recover "
                           f"(audit {_AUDIT_ID.get()})", None, {"closed_by": _AUDIT_ID.get()}, _WHO.get(),
                           status="interrupted")
            closed.append(audit_id)
        phases.append({"phase": "clear", "ok": True, "removed": removed, "closed": closed, "skipped": skipped})
        tail = f"; skipped {', '.join(skipped)}" if skipped else ""
        return True, (f"cleared {len(removed)} orphan lock(s)" + (f" ({', '.join(removed)})" if removed else "")
                      + f", closed {len(closed)} unfinished action(s) as interrupted"
                      + (f" ({', '.join(closed)})" if closed else "") + tail), None, {
            "removed": removed, "closed": closed, "skipped": skipped}

    async def _plan_recover(self, audit_id: str, params: dict[str, Any]) -> Plan:
        mode = params.get("mode")
        if mode == "clear":
            return await self._plan_clear(audit_id, params)
        if mode not in recovery.MODES:
            raise ActionError(f"recover {audit_id}: say --finish or --rollback")
        state, _, _ = await self._recovery_state(audit_id)
        r = state.record
        refusal = None if state.done(mode) else state.refusal(mode)
        if state.foreign_lock:
            refusal = f"{state.foreign_lock}: try again when it is released"
        if refusal:
            raise ActionError(f"cannot {mode} migration {audit_id} ({r.label} -> {r.target_node}): {refusal}")
        params["migration"] = audit_id
        src_state = "running" if recovery._running(state.source) else ("gone" if state.source is None else "stopped")
        target = Target(r.source_node, r.source_id, r.name, r.tenant, src_state)
        return Plan("recover", target, params, tuple(state.lines(mode)))

    async def _run_recover(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                           phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        if plan.params.get("mode") == "clear":
            return await self._run_clear(plan, emit, phases)
        mode, audit_id = str(plan.params["mode"]), str(plan.params["migration"])
        t0 = time.monotonic()
        state, src, dst = await self._recovery_state(audit_id)  # again: the nodes may have moved since the plan
        r = state.record
        if state.done(mode):
            notes = [f"already {'finished' if mode == 'finish' else 'rolled back'} (by hand?): nothing to do"]
            notes += await recovery._tidy(state, src, dst)
        else:
            refusal = state.refusal(mode)
            if refusal:
                phases.append({"phase": mode, "ok": False, "error": refusal})
                return False, f"cannot {mode} migration {audit_id}: {refusal}", None, {}

            def step(text: str) -> None:
                emit(mode, text)

            # The stale lock gives way to recovery's own, journaled with this process as the record's owner:
            # a second console recovering the same migration, or another operator's action on the container,
            # is refused while this runs, and a recovery killed in turn is itself recoverable.
            lock: NodeLock | None = None
            ended = False
            try:
                if state.source is not None:
                    if state.lock is not None:
                        await ops.remove_container(src, state.lock["Id"], force=True)
                    lock = NodeLock(src, r.source_id)
                    await lock.acquire(state.source, "recover", self.user)
                    r.lock_id, r.running = lock.lock_id, True
                    r.pid, r.pid_start, r.host = os.getpid(), proc_start(os.getpid()), socket.gethostname()
                    self.journal.write(r)
                    await failpoint("recover:locked", step)
                notes = await (recovery.finish if mode == "finish" else recovery.rollback)(state, src, dst, step)
                ended = True
            except ActionError as exc:
                phases.append({"phase": mode, "ok": False, "error": exc.message})
                return False, f"cannot {mode} migration {audit_id}: {exc.message}", None, {}
            except (EngineError, RuntimeError) as exc:
                phases.append({"phase": mode, "ok": False, "seconds": round(time.monotonic() - t0, 3),
                               "error": str(exc)})
                return False, (f"{mode} of migration {audit_id} stopped: {_short(str(exc), 200)}; it is safe to run "
                               f"again"), None, {}
            finally:
                if lock is not None:
                    try:
                        await lock.release()
                    except EngineError as exc:
                        log.warning("recover %s: lock not released: %s", audit_id, exc)
                if not ended and lock is not None:
                    r.lock_id, r.running = lock.lock_id, False  # still set when the release failed
                    self.journal.write(r)
        outcome = "; ".join(notes)
        phases.append({"phase": mode, "ok": True, "seconds": round(time.monotonic() - t0, 3), "notes": notes})
        self.journal.remove(audit_id)
        if not any(e.get("id") == audit_id and e.get("ended_at") for e in self.audit.read()):
            # The interrupted migration's own record ends here, saying how.
            self.audit.end(audit_id, mode == "finish", [{"phase": r.phase, "ok": False, "error": "interrupted"}],
                           f"interrupted in {r.phase}; {'finished' if mode == 'finish' else 'rolled back'} by "
                           f"recover (audit {_AUDIT_ID.get()})", time.time() - r.started,
                           {"recovered_by": _AUDIT_ID.get(), "outcome": outcome})
        verb = "finished" if mode == "finish" else "rolled back"
        return True, f"{verb} migration {audit_id} of {r.name}: {outcome}", None, {
            "migration": audit_id, "mode": mode, "outcome": outcome, "journal_phase": r.phase}

    async def _plan_cordon(self, target: Target, params: dict[str, Any]) -> Plan:
        if target.state == "cordoned":
            raise ActionError(f"{target.node} is already cordoned")
        return Plan("cordon", target, params, (f"node: {target.node}",
                                               "effect: no migration or drain will place containers here",
                                               *([f"reason: {params['reason']}"] if params.get("reason") else [])))

    async def _plan_uncordon(self, target: Target, params: dict[str, Any]) -> Plan:
        if target.state != "cordoned":
            raise ActionError(f"{target.node} is not cordoned")
        return Plan("uncordon", target, params, (f"node: {target.node}", "effect: the node takes containers again"))

    async def _plan_drain(self, target: Target, params: dict[str, Any]) -> Plan:
        src = await self._client_or_error(target.node)
        items, _ = await self._listing([target.node])
        others = [n for n in self._nodes if n != target.node]
        loads: dict[str, NodeLoad] = {}
        lines = [f"node: {target.node}", f"effect: cordon {target.node}, then migrate {len(items)} container(s) off it, "
                 f"{int(params.get('concurrency') or 1)} at a time, "
                 + ("continuing after failures" if params.get("continue_on_error") else "stopping at the first failure")]
        for name in others:
            try:
                loads[name] = await load_node(await self.client(name))
            except EngineError as exc:
                lines.append(f"warning: {name} unreachable: {_short(str(exc), 120)}")
        cpu_max, mem_max = self._thresholds()
        moves: list[list[str]] = []
        unfit: list[str] = []
        split: dict[str, str] = {}  # moved one at a time, they would split what they share (migrate refuses each)
        docs = [d for _, item in sorted(items, key=lambda x: x[1].get("State") != "running")
                if (d := await ops.find_container(src, item["Id"])) is not None]
        for doc in docs:
            name = str(doc.get("Name", "")).lstrip("/")
            shares = shared_with(doc, [d for d in docs if d["Id"] != doc["Id"]], target.node).refusals(name)
            if shares:
                split[name] = shares[0]
                lines.append(f"  {name}: stays, {shares[0]}")
                continue
            need = Need.of(doc)
            choices = []
            for node, load in loads.items():
                problems = fit_problems(load, need, cpu_max, mem_max)
                if name in load.names:
                    problems.append(f"name {name} taken")
                if not problems:
                    after = load.with_(need)
                    choices.append((after.mem_committed, after.cpu_committed, after.running, node))
            if not choices:
                unfit.append(name)
                lines.append(f"  {name}: no node fits")
                continue
            dest = min(choices)[3]
            loads[dest] = loads[dest].with_(need)
            loads[dest].names.add(name)
            moves.append([doc["Id"], name, dest])
            lines.append(f"  {name} ({(doc.get('State') or {}).get('Status')}) -> {dest}")
        if unfit and not params.get("continue_on_error"):
            raise ActionError(f"cannot drain {target.node}: no node fits {', '.join(unfit)}")
        if split and not params.get("continue_on_error"):
            first = min(split)
            raise ActionError(f"cannot drain {target.node}: moving {', '.join(sorted(split))} one at a time would "
                              f"split what they share ({first}: {split[first]})")
        for node, load in loads.items():
            lines.append(f"density {node} after: {load.density()}")
        params["moves"] = moves
        if split:
            params["stays"] = sorted(split)
        return Plan("drain", target, params, tuple(lines))

    # -- targets ---------------------------------------------------------------

    async def rank_targets(self, target: Target) -> list[tuple[str, str]]:
        """Every other node with a one-line fit for ``target``, best first (unfit and unreachable last).
        Refused, before any node is offered, when what it shares on its node would be split by any move."""
        src = await self._client_or_error(target.node)
        try:
            doc = await src.inspect(target.id)
            name = str(doc.get("Name", "")).lstrip("/")
            shares = (await sharing(src, doc)).refusals(name)
        except EngineError as exc:
            raise ActionError(str(exc)) from None
        if shares:
            raise ActionError(f"cannot migrate {name}: " + "; ".join(shares))
        need = Need.of(doc)
        cpu_max, mem_max = self._thresholds()

        async def one(node: str) -> tuple[tuple[Any, ...], str, str]:
            try:
                load = await load_node(await self.client(node))
            except EngineError as exc:
                return (2, 0.0, 0.0, node), node, f"unreachable: {_short(str(exc), 120)}"
            problems = fit_problems(load, need, cpu_max, mem_max)
            if name in load.names:
                problems.append(f"a container named {name} exists")
            after = load.with_(need)
            return ((1 if problems else 0), after.mem_committed, after.cpu_committed, node), node, \
                fit_line(load, need, problems)

        ranked = await asyncio.gather(*(one(n) for n in self._nodes if n != target.node))
        return [(node, line) for _, node, line in sorted(ranked)]

    # -- execute -------------------------------------------------------------------

    async def execute(self, plan: Plan, progress: ProgressFn | None = None, *, who: Identity | None = None,
                      interrupt: Interrupt | None = None) -> Result:
        """Run ``plan``. ``interrupt`` (else the enclosing action's, else ``self.interrupt``) stops it at its
        next safe point; a hard cancellation still closes the audit record, as interrupted."""
        self._refuse_read_only(plan.action, who)
        who = who or self.identity
        _WHO.set(who)  # this task's (and its children's) intent: see `user`
        token = interrupt or _INTERRUPT.get() or self.interrupt
        notes: dict[str, Any] = {}
        reset = _INTERRUPT.set(token), _NOTES.set(notes), _AUDIT_ID.set("")
        try:
            return await self._execute(plan, progress, who, token, notes)
        finally:
            with contextlib.suppress(ValueError):  # closed from another context (a coroutine left at exit)
                _INTERRUPT.reset(reset[0])
                _NOTES.reset(reset[1])
                _AUDIT_ID.reset(reset[2])

    async def _execute(self, plan: Plan, progress: ProgressFn | None, who: Identity, token: Interrupt,
                       notes: dict[str, Any]) -> Result:
        started = time.monotonic()
        moved = 0
        phases: list[dict[str, Any]] = []

        def emit(phase: str, detail: str) -> None:
            if progress is not None:
                try:
                    progress(Progress(phase, detail, moved, time.monotonic() - started))
                except Exception:
                    log.debug("progress callback failed", exc_info=True)

        def count(n: int) -> None:
            nonlocal moved
            moved += n

        audit_id = self.audit.begin(plan.action, plan.target, plan.params, who)
        _AUDIT_ID.set(audit_id)
        details: dict[str, Any] = {}
        downtime: float | None = None
        refused = False
        status: str | None = None
        try:
            handler = getattr(self, f"_run_{plan.action}", None) or self._run_simple
            ok, message, downtime, details = await handler(plan, emit, count, phases)
        except Refused as exc:
            ok, message, refused, details, status = False, exc.message, True, {"refused": True}, "refused"
        except Interrupted as exc:
            ok, message = False, f"{plan.action} {plan.target.label} {exc.message}: nothing changed"
        except (ActionError, EngineError, RuntimeError) as exc:
            ok, message = False, f"{plan.action} {plan.target.label} failed: {_short(str(exc))}"
        except asyncio.CancelledError:
            # Stopped at once (a second signal, the console leaving it for recover): the record still ends.
            status = "left for recover" if self.journal.path(audit_id).exists() else "interrupted"
            where = ("; its journal is kept: `berth recover` finishes or rolls it back"
                     if status == "left for recover" else "; `berth recover` lists what it left")
            self.audit.end(audit_id, False, phases, f"{plan.action} {plan.target.label} interrupted "
                           f"({token.reason or 'cancelled'}) before it ended{where}", time.monotonic() - started,
                           {**notes, "interrupted": token.reason or "cancelled"}, who, status=status)
            raise
        except Exception as exc:
            log.exception("%s %s: internal error", plan.action, plan.target.label)
            ok, message = False, f"{plan.action} {plan.target.label}: internal error: {type(exc).__name__}: {exc}"
        duration = time.monotonic() - started
        if moved:
            details.setdefault("bytes", moved)
        details = {**notes, **details}
        if token.requested:
            details["interrupted"] = token.reason
            if ok:
                details["interrupted"] = f"{token.reason}: the step in hand was finished"
            else:
                status = "interrupted"
        self.audit.end(audit_id, ok, phases, None if ok else message, duration,
                       {**details, **({"downtime": round(downtime, 3)} if downtime is not None else {})}, who,
                       status=status)
        emit("done", message)
        return Result(ok, message, audit_id, downtime, details, refused)

    async def _locked(self, plan: Plan, client: EngineClient, doc: dict[str, Any]) -> NodeLock:
        lock = NodeLock(client, plan.target.id)
        try:
            await lock.acquire(doc, plan.action, self.user, break_stale=bool(plan.params.get("break_stale")),
                               stale_after=float(plan.params.get("stale_after") or STALE_AFTER),
                               audit_id=_AUDIT_ID.get())
        except ActionError as exc:  # held by someone else: refused before anything changed, as at plan time
            raise Refused(f"{plan.action} {plan.target.label} refused: {exc.message}") from None
        notes = _NOTES.get()
        if lock.broke and notes is not None:
            notes["broke_lock"] = lock.broke
        return lock

    @staticmethod
    def _stop_point(where: str) -> None:
        """A safe point: raise Interrupted here when a stop was asked for."""
        token = _INTERRUPT.get()
        if token is not None:
            token.check(where)

    async def _inspect(self, plan: Plan) -> tuple[EngineClient, dict[str, Any]]:
        client = await self.client(plan.target.node)
        doc = await ops.find_container(client, plan.target.id)
        if doc is None:
            raise ActionError(f"{plan.target.label} no longer exists")
        return client, doc

    async def _run_simple(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                          phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        client, doc = await self._inspect(plan)
        lock = await self._locked(plan, client, doc)
        t0 = time.monotonic()
        try:
            self._stop_point(f"before the {plan.action} was sent")
            emit(plan.action, f"{plan.action} {plan.target.label}")
            params = {"t": str(int(plan.params["timeout"]))} if plan.params.get("timeout") is not None else None
            grace = float(plan.params.get("timeout") or (doc.get("Config") or {}).get("StopTimeout") or 10)
            try:
                await client.container_action(plan.target.id, plan.action, params=params, timeout=grace + 30.0)
            except EngineError as exc:
                phases.append({"phase": plan.action, "ok": False, "seconds": round(time.monotonic() - t0, 3),
                               "error": str(exc)})
                return False, f"{plan.action} {plan.target.label} failed: {exc.message}", None, {}
            state = ((await client.inspect(plan.target.id)).get("State") or {}).get("Status")
            phases.append({"phase": plan.action, "ok": True, "seconds": round(time.monotonic() - t0, 3),
                           "state": state})
            return True, f"{SIMPLE[plan.action]} {plan.target.label} (now {state})", None, {"state": state}
        finally:
            await lock.release()

    async def _run_isolate(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                           phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        client, doc = await self._inspect(plan)
        lock = await self._locked(plan, client, doc)
        t0 = time.monotonic()
        try:
            self._stop_point("before isolating")
            p = plan.params
            details = await isolate(client, doc, who=self.user, why=str(p.get("reason") or ""),
                                    freeze=bool(p.get("freeze")), cpus=float(p["cpus"]) if p.get("cpus") else None,
                                    memory=int(p["memory"]) if p.get("memory") else None,
                                    step=lambda s: emit("isolate", s))
            phases.append({"phase": "isolate", "ok": True, "seconds": round(time.monotonic() - t0, 3)})
            return True, f"isolated {plan.target.label} on {details['quarantine']}", None, details
        except EngineError as exc:
            phases.append({"phase": "isolate", "ok": False, "error": str(exc)})
            return False, f"isolate {plan.target.label} failed (undone): {exc.message}", None, {}
        finally:
            await lock.release()

    async def _run_unisolate(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                             phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        client, doc = await self._inspect(plan)
        state = await isolation_state(client, plan.target.id)
        if state is None:
            return False, f"{plan.target.label} is not isolated", None, {}
        lock = await self._locked(plan, client, doc)
        try:
            self._stop_point("before unisolating")
            details = await unisolate(client, doc, state, step=lambda s: emit("unisolate", s))
            phases.append({"phase": "unisolate", "ok": True})
            note = f" ({'; '.join(details['notes'])})" if details.get("notes") else ""
            return True, f"unisolated {plan.target.label}{note}", None, details
        except EngineError as exc:
            phases.append({"phase": "unisolate", "ok": False, "error": str(exc)})
            return False, f"unisolate {plan.target.label} failed: {exc.message}", None, {}
        finally:
            await lock.release()

    async def _run_cordon(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                          phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        client = await self.client(plan.target.node)
        try:
            await ops.create_network(client, {
                "Name": CORDON_NET, "Driver": "bridge", "Internal": True,
                "Labels": {ops.ROLE: "cordon", ops.OWNER: self.user, ops.SINCE: f"{time.time():.3f}",
                           "berth.reason": mask_text(str(plan.params.get("reason") or ""))}})
        except EngineError as exc:
            if "already exists" not in str(exc):
                raise
        phases.append({"phase": "cordon", "ok": True})
        return True, f"cordoned {plan.target.node}", None, {}

    async def _run_uncordon(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                            phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        client = await self.client(plan.target.node)
        await ops.remove_network(client, CORDON_NET)
        phases.append({"phase": "uncordon", "ok": True})
        return True, f"uncordoned {plan.target.node}", None, {}

    async def _run_migrate(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                           phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        p = plan.params
        if p.get("finalize"):
            return await self._run_finalize(plan, emit, phases)
        src, doc = await self._inspect(plan)
        dst = await self.client(str(p["to"]))
        t0 = time.monotonic()
        emit("plan", f"pre-flight {plan.target.label} -> {p['to']}")
        cpu_max, mem_max = self._thresholds()
        try:
            facts = await preflight(src, dst, doc, cpu_max=cpu_max, mem_max=mem_max,
                                    allow_bind=bool(p.get("allow_bind")), image_by_id=bool(p.get("image_by_id")))
        except ActionError as exc:
            phases.append({"phase": "plan", "ok": False, "seconds": round(time.monotonic() - t0, 3),
                           "error": exc.message})
            raise Refused(exc.message) from None
        phases.append({"phase": "plan", "ok": True, "seconds": round(time.monotonic() - t0, 3)})
        audit_id = _AUDIT_ID.get()
        record = MigrationRecord(audit_id=audit_id, who=self.user, started=time.time(), source_node=src.name,
                                 source_id=doc["Id"], name=facts.name, tenant=plan.target.tenant,
                                 target_node=dst.name, remove_source=bool(p.get("remove_source")),
                                 was_running=bool((doc.get("State") or {}).get("Running")),
                                 source_policy=dict((doc.get("HostConfig") or {}).get("RestartPolicy")
                                                    or {"Name": "no"}), demo=self.demo)
        try:
            self.journal.write(record)  # before the lock: a crash right after taking it is still recoverable
        except OSError as exc:
            phases.append({"phase": "lock", "ok": False, "error": f"journal: {exc}"})
            return False, f"migrate {facts.name} refused: cannot write the migration journal: {exc}", None, {}
        emit("lock", f"locking {plan.target.label}")
        try:
            self._stop_point("before the lock was taken")
            lock = await self._locked(plan, src, doc)
        except ActionError as exc:
            phases.append({"phase": "lock", "ok": False, "error": exc.message})
            self.journal.remove(audit_id)
            raise
        record.lock_id = lock.lock_id
        mig = Migration(src, dst, facts, emit=emit, count=count, remove_source=bool(p.get("remove_source")),
                        cleanup_wait=float(p.get("cleanup_wait", 30.0)),
                        source_wait=float(p.get("source_wait", 60.0)),
                        stop_timeout=p.get("stop_timeout"), health_timeout=float(p.get("health_timeout", 120.0)))

        def save(phase: str) -> None:
            if phase == "pre-copy" and not mig.src_stopped:
                # Every journaled step of pre-copy is a safe point: the source still runs, rollback undoes it.
                self._stop_point("in pre-copy")
            record.phase = phase
            record.created = {"container": mig.created.container, "volumes": list(mig.created.volumes),
                              "networks": list(mig.created.networks), "helpers": list(mig.created.helpers),
                              "tags": list(mig.created.tags), "image": str(doc.get("Image") or "")}
            record.source_stopped = mig.src_stopped
            record.final_copy_done = mig.final_copy_done
            record.target_started = mig.target_started
            record.kept_as = mig.kept_as
            self.journal.write(record)

        mig.record = save
        save("lock")
        mig.phases = phases
        phase = "pre-copy"
        try:
            t = time.monotonic()
            await mig.precopy()
            mig._phase("pre-copy", True, t)
            self._stop_point("after pre-copy")  # the last point before the source stops
            phase, t = "switch", time.monotonic()
            await mig.switch()
            mig._phase("switch", True, t, downtime=round(mig.downtime, 3) if mig.downtime is not None else None)
            phase, t = "finalize", time.monotonic()
            down = f", downtime {mig.downtime:.2f}s" if mig.downtime is not None else ""
            running = f"running on {dst.name} ({(mig.created.container or '')[:12]})"
            try:
                await mig.finalize()
                mig._phase("finalize", True, t)
            except EngineError as exc:  # the move itself succeeded: say so, do not roll back
                mig._phase("finalize", False, t, error=str(exc))
                mig.details["finalize_error"] = str(exc)
                left = (f"the stopped source stays on {src.name} as {facts.name} ({mig.sid[:12]}, restart policy "
                        f"no): {src.name} unreachable; `berth recover {audit_id} --finish` "
                        f"{'removes' if mig.remove_source else 'renames'} it")
                record.outcome = mig.details["outcome"] = f"{running}; {left}"
                record.running = False
                self.journal.write(record)
                return True, f"migrated {facts.name} {src.name} -> {dst.name}{down}; {left}", mig.downtime, \
                    mig.details
            where = f"; source kept as {mig.kept_as}" if mig.kept_as else (
                "; source removed" if mig.remove_source else "")
            mig.details["outcome"] = running + (f"; stopped source kept on {src.name} as {mig.kept_as}"
                                                if mig.kept_as else "")
            self.journal.remove(audit_id)
            return True, f"migrated {facts.name} {src.name} -> {dst.name}{down}{where}", mig.downtime, mig.details
        except asyncio.CancelledError:
            # Stopped at once (left for recover): the journal stays, and says no one is running it now.
            record.outcome = f"stopped at once in {phase} (left for recover)"
            record.running = False
            self.journal.write(record)
            raise
        except (EngineError, ActionError, RuntimeError, OSError) as exc:
            mig._phase(phase, False, t, error=_short(str(exc)))
            emit("rollback", f"{phase} failed: {_short(str(exc), 160)}")
            t = time.monotonic()
            notes = await mig.rollback()
            clean = not mig.details.get("source_not_restarted") and not mig.details.get("left_on_target")
            mig._phase("rollback", "SOURCE NOT RESTARTED" not in " ".join(notes), t, notes=notes)
            mig.details["rolled_back"] = notes
            tail = ""
            if clean:
                self.journal.remove(audit_id)
            else:
                record.outcome = mig.details["outcome"]
                record.running = False
                self.journal.write(record)
                tail = f"; `berth recover {audit_id} --rollback` completes it once the node is back"
                mig.details["recover"] = f"berth recover {audit_id} --rollback"
            return (False, (f"migrate {facts.name} failed in {phase}: {_short(str(exc), 200)}; rolled back: "
                    f"{'; '.join(notes)}{tail}"), None, mig.details)
        finally:
            try:
                await lock.release()
            except EngineError as exc:
                mig.details["lock_left"] = str(exc)

    async def _run_finalize(self, plan: Plan, emit: Callable[[str, str], None],
                            phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        removed, failed = [], []
        for node, cid in plan.params.get("kept") or []:
            emit("finalize", f"removing kept source {cid[:12]} on {node}")
            try:
                await ops.remove_container(await self.client(node), cid, force=False)
                removed.append(f"{node}/{cid[:12]}")
            except EngineError as exc:
                failed.append(f"{node}/{cid[:12]}: {exc.message}")
        phases.append({"phase": "finalize", "ok": not failed, "removed": removed, "failed": failed})
        if failed:
            return False, f"finalize {plan.target.name}: could not remove {'; '.join(failed)}", None, {}
        return True, f"finalized {plan.target.name}: removed {', '.join(removed)}", None, {"removed": removed}

    async def _run_drain(self, plan: Plan, emit: Callable[[str, str], None], count: Callable[[int], None],
                         phases: list[dict[str, Any]]) -> tuple[bool, str, float | None, dict[str, Any]]:
        p = plan.params
        if plan.target.state != "cordoned":
            emit("drain", f"cordoning {plan.target.node}")
            await self._run_cordon(Plan("cordon", plan.target, {"reason": f"drain: {p.get('reason') or ''}"}, ()),
                                   emit, count, phases)
        sem = asyncio.Semaphore(max(1, int(p.get("concurrency") or 1)))
        stop = asyncio.Event()
        outcomes: dict[str, str] = {}
        failures: list[str] = []

        token = _INTERRUPT.get()

        moves = list(p.get("moves") or [])

        async def one(index: int, cid: str, name: str, dest: str) -> None:
            async with sem:
                if stop.is_set() or (token is not None and token.requested):
                    outcomes[name] = "skipped"
                    return
                try:
                    sub = await self.plan("migrate", Target(plan.target.node, cid, name, "", ""), to=dest,
                                          remove_source=p.get("remove_source"), allow_bind=p.get("allow_bind"),
                                          reason=f"drain {plan.target.node}")
                    # "n of N": a drain of 30 is long, and its progress must say how far it is
                    res = await self.execute(sub, lambda pr: emit(f"{index} of {len(moves)} {name}: {pr.phase}",
                                                                  pr.detail))
                    ok, msg = res.ok, res.message
                except ActionError as exc:
                    ok, msg = False, exc.message
                outcomes[name] = msg
                if not ok:
                    failures.append(name)
                    if not p.get("continue_on_error"):
                        stop.set()

        await asyncio.gather(*(one(i, cid, name, dest) for i, (cid, name, dest) in enumerate(moves, 1)))
        phases.append({"phase": "drain", "ok": not failures, "outcomes": outcomes})
        done = sum(1 for m in outcomes.values() if m.startswith("migrated"))
        if token is not None and token.requested:
            left = [n for n, m in outcomes.items() if not m.startswith("migrated")]
            left += [n for _, n, _ in p.get("moves") or [] if n not in outcomes]
            return False, (f"drain {plan.target.node} interrupted ({token.reason}): {done} moved, {len(left)} left "
                           f"on {plan.target.node}" + (f" ({', '.join(left)})" if left else "")
                           + "; it stays cordoned"), None, {"outcomes": outcomes, "moved": done, "left": left}
        if failures:
            return False, (f"drain {plan.target.node}: {done} moved, failed: {', '.join(failures)}"
                           f" ({outcomes[failures[0]]})"), None, {"outcomes": outcomes, "moved": done}
        stays = list(p.get("stays") or [])
        left_here = f"; left on it (they share state): {', '.join(stays)}" if stays else ""
        return True, f"drained {plan.target.node}: {done} container(s) moved{left_here}", None, {
            "outcomes": outcomes, "moved": done}


@dataclass(frozen=True)
class OrphanLock:
    node: str
    id: str
    name: str
    labels: dict[str, str]

    def describe(self) -> str:
        target = self.labels.get(ops.TARGET, "")[:12]
        audit = f", audit {self.labels[AUDIT]}" if self.labels.get(AUDIT) else ""
        why = "its process is gone" if NodeLock.gone(self.labels) else f"older than {STALE_AFTER / 60:g} min"
        return f"{self.node}/{self.name} on {target}: {NodeLock.describe(self.labels)}{audit} ({why})"


@dataclass(frozen=True)
class Orphans:
    locks: list[OrphanLock]
    records: list[dict[str, Any]]  # AuditLog.read() entries
    unchecked: dict[str, str]  # node -> why its locks could not be listed


def describe_dangling(e: Mapping[str, Any]) -> str:
    t = e.get("target") or {}
    where = f"{t.get('node')}/{t.get('name')}" if t.get("id") else str(t.get("node") or "?")
    pid = f", pid {e['pid']} on {e.get('host')} (gone)" if e.get("pid") else ""
    return f"{e.get('id')}  {e.get('action')} {where}  by {e.get('who')} at {e.get('at')}{pid}"


def describe_params(params: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k not in ("moves", "kept")}, default=str)
