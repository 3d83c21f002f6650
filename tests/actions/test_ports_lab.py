"""The UI⇄core seam (console.ports) over real dockerd: who asks travels with every intent, a viewer
is refused where the action runs, and the detail reads (inspect, logs) go through the feed.

Given a real node and a container, when the local ports are used as the console uses them, then
the audit log names the person and their door, and a viewer changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from action_helpers import dk, run
from dockerlab import Lab

from console.actions import Actions, AuditLog, ReadOnlyError
from console.config import Inventory
from console.engine.client import EngineClient
from console.identity import Identity
from console.engine.reads import IOLoop
from console.local import LocalActions, LocalFeed
from console.ports import ActionsPort, FleetFeed

pytestmark = pytest.mark.lab

ALICE = Identity("alice", "operator", "ssh", "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "127.0.0.1")
BOB = Identity("bob", "viewer", "web", None, "127.0.0.2")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_viewer_is_refused_where_the_action_runs(lab: Lab, inventory: Inventory, tmp_path: Path) -> None:
    box = run(lab, "lab-n1", "seam-viewer")
    started = dk(lab, "lab-n1").containers.get(box.id).attrs["State"]["StartedAt"]
    audit = AuditLog(tmp_path / "audit.jsonl", user="host@lab")
    io = IOLoop()
    try:
        port = LocalActions(Actions(inventory, audit=audit), BOB, io)
        assert isinstance(port, ActionsPort)
        assert port.read_only
        with pytest.raises(ReadOnlyError, match="bob is a viewer: restart refused"):
            await port.plan("restart", "lab-n1/seam-viewer")
        # A plan made for an operator (the UI could be lying about who it is) is still refused for bob.
        plan = await Actions(inventory, audit=audit).plan("restart", "lab-n1/seam-viewer")
        with pytest.raises(ReadOnlyError, match="bob is a viewer"):
            await port.execute(plan)
    finally:
        io.close()
    assert dk(lab, "lab-n1").containers.get(box.id).attrs["State"]["StartedAt"] == started
    assert not audit.path.exists() or audit.read() == []  # refused before anything: nothing to record


async def test_operator_intent_carries_identity_into_audit_and_lock(lab: Lab, inventory: Inventory,
                                                                    tmp_path: Path) -> None:
    box = run(lab, "lab-n1", "seam-operator")
    audit = AuditLog(tmp_path / "audit.jsonl", user="host@lab")
    io = IOLoop()
    try:
        port = LocalActions(Actions(inventory, audit=audit), ALICE, io)
        plan = await port.plan("restart", "lab-n1/seam-operator", timeout=1)
        result = await port.execute(plan)
    finally:
        io.close()
    assert result.ok, result.message
    begin, end = _records(audit.path)
    for rec in (begin, end):
        assert rec["who"] == "alice"
        assert rec["identity"] == {"user": "alice", "role": "operator", "door": "ssh",
                                   "fingerprint": ALICE.fingerprint, "address": "127.0.0.1"}
    [entry] = audit.read()
    assert entry["identity"]["door"] == "ssh" and entry["ok"] is True
    assert dk(lab, "lab-n1").containers.get(box.id).attrs["State"]["Running"]


async def test_engine_client_logs_reads_real_frames(lab: Lab, inventory: Inventory) -> None:
    box = run(lab, "lab-n1", "seam-logs", cmd=["sh", "-c", "echo one; echo two >&2; sleep 1000000"])
    node = next(n for n in inventory.nodes if n.name == "lab-n1")
    client = EngineClient(node)
    try:
        deadline = time.monotonic() + 20
        data = b""
        while time.monotonic() < deadline and (b"one" not in data or b"two" not in data):
            data = b"".join([c async for c in client.logs(box.id, follow=False)])
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    # Not a TTY: multiplexed frames, stream 1 (stdout) then stream 2 (stderr), 8-byte headers.
    assert data[:1] in (b"\x01", b"\x02") and b"one\n" in data and b"two\n" in data


async def test_local_feed_answers_detail_reads_from_its_own_loop(lab: Lab, inventory: Inventory) -> None:
    box = run(lab, "lab-n2", "seam-feed", cmd=["sh", "-c", "echo hello-feed; sleep 1000000"])
    feed = LocalFeed(inventory)
    assert isinstance(feed, FleetFeed)
    try:
        doc = await feed.inspect("lab-n2", box.id)
        assert doc["Name"] == "/seam-feed"
        chunks: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(b"hello-feed" in c for c in chunks):
            chunks.clear()
            await feed.follow_logs("lab-n2", box.id, chunks.append, follow=False)
        assert any(b"hello-feed" in c for c in chunks)
        with pytest.raises(Exception, match="unknown node 'nope'"):
            await feed.inspect("nope", box.id)
    finally:
        feed.stop()
