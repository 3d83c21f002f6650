"""Fixtures for the simulated fleet's own tests: an in-process fleet and a plain HTTP client on a node socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from console.sim.fleet import SimFleet


@pytest.fixture(scope="module")
def fleet() -> Iterator[SimFleet]:
    """Three nodes (cgroup v1, v2, v1) of twelve containers, served from this process."""
    with SimFleet(nodes=3, containers_per_node=12, seed=11, in_process=True, cgroup="mixed") as f:
        yield f


@pytest.fixture
def http(fleet: SimFleet) -> Iterator[Callable[[str], httpx.Client]]:
    """http("sim-01") -> an httpx client speaking to that node's socket (closed after the test)."""
    clients: list[httpx.Client] = []

    def make(node: str, timeout: float = 10.0) -> httpx.Client:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(fleet.sockets[node])),
                              base_url="http://docker", timeout=timeout)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
