"""Fixtures for tests against real dockerd nodes (the lab lives in dockerlab.py).

- `lab` (session): 3 nodes, the busybox test image on each, the standard
  three-tenant workload running.  Shared and read-mostly: do not kill, freeze
  or restart its daemons, and remove whatever containers a test adds.
- `workload` (session): the lab's containers, name -> Placement(node, id).
- `scratch_lab` (function): 2 fresh nodes with the image and no workload, for
  destructive tests (kill, freeze, restart daemons); destroyed after the test.
- `make_lab` (function): factory for other shapes (`make_lab(1, live_restore=True)`).
- `inventory_file`: a Berth inventory TOML for `lab`.
- `mixed_fleet` (module): one dockerd node and one Podman node (tests/lab/podmanlab.py),
  the image on both; `podmanlab.write_mixed_inventory` names them side by side.

Where the lab cannot run, these fixtures skip with a reason starting with
"LAB SKIPPED"; with BERTH_REQUIRE_LAB=1 (CI) they fail instead, so a broken
CI host cannot pass by skipping every integration test.

Labs are torn down in `finally` blocks, and `Lab` registers an atexit hook as
a backstop, so a failing test does not leak daemons or mounts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Import dockerlab by path whatever pytest's import mode (importlib mode does not
# put test directories on sys.path).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from dockerlab import Lab, LabError, Placement, run_standard_workload
from labgate import SKIP_REASONS, require_lab
from podmanlab import PodmanLab


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat a lab skip at the end of the run: `-q` hides skip reasons, and this one matters."""
    for reason in sorted(SKIP_REASONS):
        terminalreporter.write_sep("!", f"LAB SKIPPED: {reason}; real-daemon tests did not run", red=True, bold=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    require_lab()
    the_lab = Lab(3)
    try:
        the_lab.start()
        the_lab.import_image()
        run_standard_workload(the_lab)
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture(scope="session")
def workload(lab: Lab) -> dict[str, Placement]:
    return lab.workload


@pytest.fixture
def scratch_lab() -> Iterator[Lab]:
    require_lab()
    the_lab = Lab(2)
    try:
        the_lab.start()
        the_lab.import_image()
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Factory for labs of another shape, e.g. `make_lab(1, live_restore=True)`; all closed after the test."""
    require_lab()
    labs: list[Lab] = []

    def make(size: int = 2, *, live_restore: bool = False, image: bool = True) -> Lab:
        new = Lab(size, live_restore=live_restore)
        labs.append(new)
        new.start()
        if image:
            new.import_image()
        return new

    try:
        yield make
    finally:
        errors = []
        for each in labs:
            try:
                each.close()
            except LabError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def inventory_file(lab: Lab, tmp_path: Path) -> Path:
    return lab.write_inventory(tmp_path / "inventory.toml")


@pytest.fixture(scope="module")
def mixed_fleet() -> Iterator[tuple[Lab, PodmanLab]]:
    """One dockerd node (`lab-n1`) and one Podman node (`pm-n1`), the busybox image on both,
    no workload: a module's tests add and remove their own containers."""
    from podmanlab import podman_available

    require_lab(podman_available())
    docker_lab = Lab(1)
    podman_lab = PodmanLab(1)
    try:
        docker_lab.start()
        podman_lab.start()
        docker_lab.import_image()
        podman_lab.import_image(docker_lab.image_tar)
        yield docker_lab, podman_lab
    finally:
        try:
            podman_lab.close()
        finally:
            docker_lab.close()

