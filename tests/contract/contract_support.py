"""Shared pieces of the contract tests (named to stay unique on sys.path: tests/ has no packages)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

API = "/v1.41"
BUSYBOX_REF = "berth/busybox:test"  # what the lab imports on real nodes; present on every sim node


@dataclass
class Engine:
    """One Engine API endpoint under test."""

    kind: str  # sim-v1 | sim-v2 | real (dockerd) | podman (its Docker-compatible service)
    socket: str
    cgroup: str

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def real(self) -> bool:
        """A real daemon, dockerd or Podman (the simulators are not)."""
        return self.kind in ("real", "podman")

    @property
    def podman(self) -> bool:
        return self.kind == "podman"

    def http(self, timeout: float = 30.0) -> httpx.Client:
        """A client on the bare socket (paths written in full, versioned or not)."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket), base_url="http://docker", timeout=timeout)

    def run(self, client: httpx.Client, command: list[str], **host_config: Any) -> tuple[str, str]:
        """Create and start a busybox container the way `docker run -d --init` does; (id, name)."""
        name = f"contract-{uuid.uuid4().hex[:8]}"
        if self.podman:
            # The lab's choice, not Podman's: its compat API would put the container on the podman0
            # bridge with host NAT rules; the dockerd lab node runs --bridge=none.
            host_config.setdefault("NetworkMode", "none")
        body = {"Image": BUSYBOX_REF, "Cmd": command, "Labels": {"tenant": "contract", "purpose": "berth-test"},
                "HostConfig": {"Init": True, **host_config}}
        r = client.post(f"{API}/containers/create", params={"name": name}, json=body)
        assert r.status_code == 201, r.text
        cid = r.json()["Id"]
        r = client.post(f"{API}/containers/{cid}/start")
        assert r.status_code == 204, r.text
        return cid, name


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll a condition (the daemons act asynchronously); fail loudly on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g} s")
        time.sleep(0.05)


def keys_of(doc: Any, path: str = "") -> set[str]:
    """Every key path of a JSON document ("a.b", "a.list[].c"); list items are merged."""
    out: set[str] = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            sub = f"{path}.{key}" if path else key
            out.add(sub)
            out |= keys_of(value, sub)
    elif isinstance(doc, list):
        for item in doc:
            out |= keys_of(item, f"{path}[]")
    return out
