"""Fixtures for the action tests: labs of real dockerd nodes (tests/lab/dockerlab.py), an inventory
for them, an audit log in a temp dir, and a sweep that leaves every node empty after each test."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

_LAB = str(Path(__file__).resolve().parents[1] / "lab")
if _LAB not in sys.path:
    sys.path.insert(0, _LAB)

from dockerlab import BUSYBOX_REF, Lab, lab_available

from console.actions import Actions, AuditLog
from console.config import Inventory, resolve_inventory


def require_lab() -> None:
    reason = lab_available()
    if reason is None:
        return
    if os.environ.get("BERTH_REQUIRE_LAB") == "1":
        pytest.fail(f"LAB REQUIRED (BERTH_REQUIRE_LAB=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"LAB SKIPPED: {reason}")


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes the operator's real audit log."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def alab() -> Iterator[Lab]:
    """Three nodes with the busybox image, shared by one test module."""
    require_lab()
    lab = Lab(3, prefix="berth-act-")
    try:
        lab.start()
        lab.import_image()
        yield lab
    finally:
        lab.close()


def sweep(lab: Lab) -> None:
    """Remove every container, volume, user network and extra image on every running node."""
    for node in lab.nodes:
        if not node.running:
            continue
        client = node.client()
        try:
            for c in client.containers.list(all=True):
                c.remove(force=True, v=True)
            for v in client.volumes.list():
                v.remove(force=True)
            for n in client.networks.list():
                if n.name not in ("bridge", "host", "none"):
                    n.remove()
            for image in client.images.list():
                if BUSYBOX_REF not in image.tags:
                    client.images.remove(image.id, force=True)
        finally:
            client.close()


@pytest.fixture
def lab(alab: Lab) -> Iterator[Lab]:
    yield alab
    sweep(alab)


def inventory_for(lab: Lab, tmp_path: Path) -> Inventory:
    return resolve_inventory(str(lab.write_inventory(tmp_path / "inventory.toml")))


@pytest.fixture
def inventory(lab: Lab, tmp_path: Path) -> Inventory:
    return inventory_for(lab, tmp_path)


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl", user="tester@lab")


@pytest.fixture
async def actions(inventory: Inventory, audit: AuditLog) -> AsyncIterator[Actions]:
    a = Actions(inventory, audit=audit)
    try:
        yield a
    finally:
        await a.aclose()
