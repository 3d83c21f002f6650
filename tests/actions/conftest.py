"""Fixtures for the action tests: labs of real dockerd nodes (tests/lab/dockerlab.py), an inventory
for them, an audit log in a temp dir, and a sweep that leaves every node empty after each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# dockerlab (the lab library) and action_helpers by path, whatever pytest's import mode.
for _dir in (Path(__file__).resolve().parents[1] / "lab", Path(__file__).resolve().parent):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from action_helpers import inventory_for, require_lab
from dockerlab import BUSYBOX_REF, Lab

from console.actions import Actions, AuditLog
from console.config import Inventory


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
