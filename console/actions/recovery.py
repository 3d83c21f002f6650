"""Recovery of a migration that Berth did not see to its end (killed, or a node away for too long).

The journal (console/actions/journal.py) says how far the migration got; ``assess`` reads the live
state of both nodes and decides what each way out would do, or why it must not:

finish    complete the move. Only when the journal says the final copy was done (the target holds
          every byte the stopped source had) and the source has not run since; then: target started
          under its restart policy, source renamed (or removed), helpers and the stale lock removed.
rollback  undo it. Target side removed (only what the journal says the migration made), the source's
          restart policy restored and the source started if it was running. Refused once the target
          runs: it may hold writes the source never saw.

Both are idempotent: every step checks first, and what the operator already fixed by hand is said,
not redone. Nothing here trusts the journal over the daemons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from console.actions import engine_ops as ops
from console.actions.journal import MigrationRecord
from console.actions.locks import lock_name
from console.actions.migrate import rename_kept
from console.actions.types import ActionError
from console.engine.client import EngineClient

NEVER = "0001-01-01T00:00:00Z"
MODES = ("finish", "rollback")


def _name(doc: dict[str, Any] | None) -> str:
    return str((doc or {}).get("Name", "")).lstrip("/")


def _running(doc: dict[str, Any] | None) -> bool:
    return bool(((doc or {}).get("State") or {}).get("Running"))


def _policy(doc: dict[str, Any] | None) -> str:
    return str((((doc or {}).get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no")


def _state(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return "gone"
    return f"{(doc.get('State') or {}).get('Status')}, named {_name(doc)}, restart policy {_policy(doc)}"


@dataclass
class Assessment:
    """What both nodes hold now, for one journaled migration."""

    record: MigrationRecord
    source: dict[str, Any] | None
    target: dict[str, Any] | None
    helpers: list[str]
    volumes: list[str]  # journaled target volumes that still exist
    networks: list[str]  # journaled target networks that still exist
    lock: dict[str, Any] | None  # the stale lock container on the source, when it is this migration's
    foreign_lock: str | None  # a lock held by someone else (never touched)
    notes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # journaled image references added on the target, still there

    @property
    def target_ran(self) -> bool:
        started = str(((self.target or {}).get("State") or {}).get("StartedAt") or NEVER)
        return not started.startswith("0001-")

    def refusal(self, mode: str) -> str | None:
        r, src, dst = self.record, self.record.source_node, self.record.target_node
        if mode == "finish":
            if _running(self.source) and _running(self.target):
                return (f"two copies run: {src}/{_name(self.source)} and {dst}/{_name(self.target)}; stop the one "
                        f"that must not run by hand, then recover again")
            if self.target is None:
                return f"the target container is not on {dst} (any more): roll back instead"
            if not r.final_copy_done and not self.target_ran:
                return (f"the final copy was not completed (Berth stopped in {r.phase}): the target on {dst} may "
                        f"lack data the source had; roll back instead")
            if _running(self.source):
                return (f"the source runs again on {src}: the target's copy is older than its data; roll back "
                        f"instead")
            return None
        if _running(self.target):
            return (f"the target runs on {dst} (since {((self.target or {}).get('State') or {}).get('StartedAt')}) "
                    f"and may hold writes the source never saw: finish instead, or stop it by hand to roll back")
        if self.source is None:
            return f"the source container is gone from {src}: nothing to roll back to"
        return None

    def done(self, mode: str) -> bool:
        """Already in the end state ``mode`` leads to (e.g. fixed by hand)."""
        r = self.record
        clean_target = not self.helpers and self.lock is None
        if mode == "finish":
            source_put_away = self.source is None or (not _running(self.source) and _name(self.source) != r.name)
            return _running(self.target) and source_put_away and clean_target
        source_ok = (self.source is not None and _running(self.source) == r.was_running
                     and _policy(self.source) == str(r.source_policy.get("Name") or "no"))
        return (self.target is None and not self.volumes and not self.networks and not self.tags and clean_target
                and source_ok)

    def lines(self, mode: str) -> list[str]:
        r = self.record
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(r.started))
        out = [
            f"migration: {r.audit_id}, begun by {r.who} at {when}, stopped in {r.phase}"
            + (" (final copy done)" if r.final_copy_done else ""),
            f"container: {r.name} ({r.source_id[:12]})", f"node: {r.source_node} -> {r.target_node}",
            f"tenant: {r.tenant}",
            f"now on {r.source_node}: source {_state(self.source)}",
            f"now on {r.target_node}: target {_state(self.target)}"
            + (f"; {len(self.helpers)} helper(s)" if self.helpers else ""),
        ]
        if self.lock is not None:
            out.append(f"stale lock on {r.source_node}: {lock_name(r.source_id)} (left by the stopped migration)")
        if self.foreign_lock:
            out.append(f"warning: {self.foreign_lock} (not touched)")
        if self.done(mode):
            out.append(f"effect: none needed, it is already {'finished' if mode == 'finish' else 'rolled back'} "
                       f"(by hand?): the journal entry is closed")
        elif mode == "finish":
            keep = "remove it" if r.remove_source else f"rename it {r.kept_as or r.name + '-migrated-<time>'}"
            out.append(f"effect: start the target on {r.target_node} (restart policy "
                       f"{r.source_policy.get('Name') or 'no'}), keep the stopped source ({keep}), remove the lock")
        else:
            out.append(f"effect: remove the target side on {r.target_node}, restore the source's restart policy "
                       f"({r.source_policy.get('Name') or 'no'})"
                       + (f", start it on {r.source_node}" if r.was_running else "") + ", remove the lock")
        return out


async def assess(record: MigrationRecord, src: EngineClient, dst: EngineClient) -> Assessment:
    source = await ops.find_container(src, record.source_id)
    created = record.created or {}
    target: dict[str, Any] | None = None
    if created.get("container"):
        target = await ops.find_container(dst, str(created["container"]))  # gone: removed by hand
    else:
        # The create may have happened without its answer reaching Berth: same name, made by Berth after
        # the migration began, with the source's labels.
        found = await ops.find_container(dst, record.name)
        if found is not None and _made_for(found, record, source):
            target = found
    helpers = [c["Id"] for c in await dst.containers(all=True, filters={"label": [f"{ops.ROLE}=helper",
                                                                                f"{ops.TARGET}={record.source_id}"]})]
    volumes = [v for v in created.get("volumes") or [] if await ops.inspect_volume(dst, v) is not None]
    networks = [n for n in created.get("networks") or [] if await ops.inspect_network(dst, n) is not None]
    lock_doc = await ops.find_container(src, lock_name(record.source_id))
    lock, foreign = None, None
    if lock_doc is not None:
        labels = (lock_doc.get("Config") or {}).get("Labels") or {}
        ours = lock_doc["Id"] == record.lock_id or (
            labels.get(ops.ACTION) == "migrate" and labels.get(ops.OWNER) == record.who
            and float(labels.get(ops.SINCE) or 0) >= record.started - 1.0 and record.lock_id is None)
        if ours:
            lock = lock_doc
        else:
            foreign = f"{lock_name(record.source_id)} is held by {labels.get(ops.OWNER, '?')} doing " \
                      f"{labels.get(ops.ACTION, '?')}"
    image = str(created.get("image") or "")
    tags = []
    for tag in created.get("tags") or []:
        doc = await ops.inspect_image(dst, str(tag))
        if doc is not None and doc.get("Id") == image:
            tags.append(str(tag))
    return Assessment(record, source, target, helpers, volumes, networks, lock, foreign, tags=tags)


def _made_for(doc: dict[str, Any], record: MigrationRecord, source: dict[str, Any] | None) -> bool:
    from console.fleet.poller import parse_time

    created = parse_time(doc.get("Created")) or 0.0
    if created < record.started - 5.0:
        return False
    if source is None:
        return True
    return ((doc.get("Config") or {}).get("Labels") or {}) == ((source.get("Config") or {}).get("Labels") or {})


async def finish(a: Assessment, src: EngineClient, dst: EngineClient, step: Any) -> list[str]:
    """Complete the move; returns what was done or found, one note per object."""
    r = a.record
    notes: list[str] = []
    target = a.target or {}
    tid = target["Id"]
    if _running(target):
        notes.append(f"target already running on {r.target_node}")
    else:
        step(f"starting {r.name} on {r.target_node}")
        await dst.container_action(tid, "start", timeout=60.0)
        hc = (target.get("Config") or {}).get("Healthcheck") or {}
        healthy = bool(hc.get("Test")) and hc["Test"][0] != "NONE"
        await ops.wait_up(dst, tid, healthy=healthy, timeout=120.0)
        notes.append(f"target started on {r.target_node}")
    if _policy(target) != str(r.source_policy.get("Name") or "no"):
        await ops.update(dst, tid, {"RestartPolicy": r.source_policy})
    notes.append(f"{r.name} runs on {r.target_node} ({tid[:12]})")
    if a.source is None:
        notes.append(f"source already gone from {r.source_node}")
    elif r.remove_source:
        step(f"removing the stopped source on {r.source_node}")
        await ops.remove_container(src, r.source_id, force=False)
        notes.append(f"source removed from {r.source_node}")
    else:
        if _policy(a.source) != "no":  # a kept source must never come back as a second copy
            await ops.update(src, r.source_id, {"RestartPolicy": {"Name": "no"}})
        current = _name(a.source)
        if current != r.name:
            notes.append(f"stopped source already kept on {r.source_node} as {current}")
        else:
            kept = r.kept_as or f"{r.name}-migrated-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
            step(f"keeping the stopped source as {kept}")
            await rename_kept(src, r.source_id, kept)
            notes.append(f"stopped source kept on {r.source_node} as {kept}")
    notes += await _tidy(a, src, dst)
    return notes


async def rollback(a: Assessment, src: EngineClient, dst: EngineClient, step: Any) -> list[str]:
    r = a.record
    notes: list[str] = []
    removed = []
    for helper in a.helpers:
        await ops.remove_container(dst, helper, force=True)
        removed.append(f"helper {helper[:12]}")
    if a.target is not None:
        step(f"removing the target container on {r.target_node}")
        await ops.remove_container(dst, a.target["Id"], force=True, volumes=True)
        removed.append(f"container {a.target['Id'][:12]}")
    for vol in a.volumes:
        if await ops.remove_volume(dst, vol):
            removed.append(f"volume {vol}")
    for net in a.networks:
        err = await ops.best_effort(ops.remove_network(dst, net))
        if err:
            notes.append(f"network {net} left on {r.target_node}: {err}")
        else:
            removed.append(f"network {net}")
    for tag in a.tags:  # after the container: the image goes with the tag when nothing else uses it
        err = await ops.best_effort(ops.remove_tag(dst, tag, str((r.created or {}).get("image") or "")))
        if err:
            notes.append(f"image tag {tag} left on {r.target_node}: {err}")
        else:
            removed.append(f"image tag {tag}")
    notes.append(f"removed from {r.target_node}: {', '.join(removed)}" if removed
                 else f"target side on {r.target_node} already clean")
    if a.source is None:
        raise ActionError(f"the source container is gone from {r.source_node}: nothing to roll back to")
    if _name(a.source) != r.name:
        taken = await ops.find_container(src, r.name)
        if taken is None:
            await ops.rename(src, r.source_id, r.name)
            notes.append(f"source renamed back to {r.name}")
    want = str(r.source_policy.get("Name") or "no")
    if _policy(a.source) != want:
        await ops.update(src, r.source_id, {"RestartPolicy": r.source_policy})
        notes.append(f"source restart policy {want} again")
    if r.was_running:
        if _running(a.source):
            notes.append(f"source already running on {r.source_node}")
        else:
            step(f"starting {r.name} on {r.source_node}")
            await src.container_action(r.source_id, "start", timeout=60.0)
            await ops.wait_up(src, r.source_id, healthy=False, timeout=60.0)
            notes.append(f"source restarted on {r.source_node}")
    notes.append(f"{r.name} runs on {r.source_node} ({r.source_id[:12]})" if r.was_running
                 else f"{r.name} stays stopped on {r.source_node}, as it was")
    notes += await _tidy(a, src, dst, helpers=False)
    return notes


async def _tidy(a: Assessment, src: EngineClient, dst: EngineClient, helpers: bool = True) -> list[str]:
    notes = []
    if helpers:
        for helper in a.helpers:
            await ops.remove_container(dst, helper, force=True)
        if a.helpers:
            notes.append(f"{len(a.helpers)} helper(s) removed from {a.record.target_node}")
    if a.lock is not None:
        await ops.remove_container(src, a.lock["Id"], force=True)
        notes.append(f"stale lock removed from {a.record.source_node}")
    return notes
