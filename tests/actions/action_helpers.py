"""Small helpers for lab tests: run containers, read files through the archive API."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import docker
from dockerlab import BUSYBOX_REF, Lab
from labgate import require_lab  # noqa: F401  (re-exported for the action suites)

from console.config import Inventory, resolve_inventory

LOOP = ["sh", "-c", "echo started; while true; do sleep 0.2; done"]


def dk(lab: Lab, node: str) -> docker.DockerClient:
    return lab.node(node).client()


def run(lab: Lab, node: str, name: str, image: str = BUSYBOX_REF, cmd: list[str] | None = None,
        **kw: Any) -> Any:
    """A running container; init=True so SIGTERM stops it at once."""
    kw.setdefault("init", True)
    kw.setdefault("network_mode", "none") if "network" not in kw else None
    return dk(lab, node).containers.run(image, cmd or LOOP, name=name, detach=True, **kw)


def read_file(container: Any, path: str) -> bytes:
    """A file's bytes via GET /containers/{id}/archive (works on stopped containers too)."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        assert member is not None
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def names(lab: Lab, node: str) -> list[str]:
    return sorted(c.name for c in dk(lab, node).containers.list(all=True))


def inventory_for(lab: Lab, tmp_path: Path) -> Inventory:
    return resolve_inventory(str(lab.write_inventory(tmp_path / "inventory.toml")))


def target_side(lab: Lab, node: str) -> dict[str, list[str]]:
    """What a migration could have left on `node`: containers, volumes, non-default networks."""
    client = dk(lab, node)
    return {"containers": [c.name for c in client.containers.list(all=True)],
            "volumes": [v.name for v in client.volumes.list()],
            "networks": [n.name for n in client.networks.list() if n.name not in ("bridge", "host", "none")]}


def running(lab: Lab, nodes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(node, name) of every running container on these nodes: exactly one copy, or none."""
    return sorted((n, c.name) for n in nodes for c in dk(lab, n).containers.list())
