"""Engines for the contract tests: the same checks run against simulated nodes and a real dockerd.

- `sim_engines` (session): a `berth sim`-style fleet of two node processes, cgroup v1 and v2.
- `real_engine` (session): one private dockerd from the lab library (tests/lab/dockerlab.py) with
  the busybox test image; skipped with a reason starting "LAB SKIPPED" where it cannot run, and
  failing instead under BERTH_REQUIRE_LAB=1 (CI).
- `podman_engine` (session): one private `podman system service` (tests/lab/podmanlab.py), the
  same image; Podman's compat API is meant to match dockerd's, and where it differs by design
  the test says so for "podman" explicitly.
- `engine` (parametrized): "sim-v1", "sim-v2", "real" and "podman" (both marked `lab`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

_LAB = str(Path(__file__).resolve().parents[1] / "lab")
if _LAB not in sys.path:
    sys.path.insert(0, _LAB)

from contract_support import API, Engine
from dockerlab import Lab
from labgate import require_lab
from podmanlab import PodmanLab, podman_available

from console.sim.fleet import SimFleet


@pytest.fixture(scope="session")
def sim_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Engine]]:
    directory = tmp_path_factory.mktemp("sim")
    with SimFleet(nodes=2, containers_per_node=6, seed=21, dir=directory, cgroup="mixed") as fleet:
        yield {f"sim-v{spec.cgroup}": Engine(f"sim-v{spec.cgroup}", str(fleet.sockets[spec.name]), spec.cgroup)
               for spec in fleet.layout.nodes}


@pytest.fixture(scope="session")
def real_engine() -> Iterator[Engine]:
    require_lab()
    lab = Lab(1, prefix="berth-contract-")
    try:
        lab.start()
        lab.import_image()
        node = lab.nodes[0]
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(node.sock)), base_url="http://docker") as c:
            cgroup = c.get(f"{API}/info").json()["CgroupVersion"]
        yield Engine("real", str(node.sock), cgroup)
    finally:
        lab.close()


@pytest.fixture(scope="session")
def podman_engine() -> Iterator[Engine]:
    require_lab(podman_available())
    lab = PodmanLab(1, prefix="berth-contract-pm-")
    try:
        lab.start()
        node = lab.nodes[0]
        from dockerlab import build_busybox_tar

        node.import_image(build_busybox_tar(lab.base / "busybox.tar"))
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(node.sock)), base_url="http://docker") as c:
            cgroup = str(c.get(f"{API}/info").json()["CgroupVersion"])
        yield Engine("podman", str(node.sock), cgroup)
    finally:
        lab.close()


@pytest.fixture(params=["sim-v1", "sim-v2", pytest.param("real", marks=pytest.mark.lab),
                        pytest.param("podman", marks=pytest.mark.lab)])
def engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "real":
        return request.getfixturevalue("real_engine")  # type: ignore[no-any-return]
    if request.param == "podman":
        return request.getfixturevalue("podman_engine")  # type: ignore[no-any-return]
    engines: dict[str, Engine] = request.getfixturevalue("sim_engines")
    return engines[request.param]


@pytest.fixture
def api(engine: Engine) -> Iterator[httpx.Client]:
    with engine.http() as client:
        yield client


@pytest.fixture
def cleanup(api: httpx.Client) -> Iterator[list[str]]:
    """Container ids a test adds; force-removed afterwards (the real node is shared by the session)."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        api.delete(f"{API}/containers/{cid}", params={"force": "1"})
