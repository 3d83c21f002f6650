"""Fixtures for the fault tests: real-daemon labs (from tests/lab/dockerlab.py) and the timing report.

- `fault_lab` (module): 3 fresh nodes with the busybox image, each running one
  idle container (`lab.workload["idle-nX"]`).  Tests may kill, freeze, unlink
  or slow one node, but must hand it back healthy; the `healthy_lab` fixture
  checks that (and repairs what a failed test left behind) before each test.

Lab skips go through the house gate (tests/lab/labgate.py): loud ("LAB SKIPPED:
...", repeated at the end of the run) and failures under BERTH_REQUIRE_LAB=1.

Fault timings recorded with `faultkit.record` are printed in the terminal
summary and written to tests/faults/fault_timings.md (runtime output, ignored by git).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

# dockerlab lives in tests/lab; our helpers beside this file. Import by path whatever
# pytest's import mode is (importlib mode does not put test directories on sys.path).
_HERE = Path(__file__).resolve().parent
for _dir in (str(_HERE.parent / "lab"), str(_HERE)):
    if _dir not in sys.path:
        sys.path.insert(0, _dir)

import faultkit  # noqa: E402
import labgate  # noqa: E402
from dockerlab import BUSYBOX_REF, Lab, LabError, Placement  # noqa: E402


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # tests/lab/conftest.py repeats lab skips at the end of a full run; alone, this suite does it.
    lab_conftest = str(_HERE.parent / "lab" / "conftest.py")
    plugins = terminalreporter.config.pluginmanager.get_plugins()
    if not any(getattr(p, "__file__", None) == lab_conftest for p in plugins):
        for reason in sorted(labgate.SKIP_REASONS):
            terminalreporter.write_sep("!", f"LAB SKIPPED: {reason}; real-daemon fault tests did not run",
                                       red=True, bold=True)
    if faultkit.TIMINGS:
        terminalreporter.write_sep("-", f"fault timings (also in {faultkit.TIMINGS_FILE.name})")
        for line in faultkit.timings_markdown().splitlines()[4:]:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if faultkit.TIMINGS:
        try:
            faultkit.TIMINGS_FILE.write_text(faultkit.timings_markdown())
        except OSError as exc:  # a read-only checkout must not fail the run
            print(f"cannot write {faultkit.TIMINGS_FILE}: {exc}", file=sys.stderr)


def run_idle(lab: Lab, index: int, name: str) -> str:
    with closing(lab.nodes[index].client()) as client:
        c = client.containers.run(BUSYBOX_REF, faultkit.IDLE, name=name, detach=True, init=True,
                                  labels={"tenant": "faults"})
        return str(c.id)


@pytest.fixture(scope="module")
def fault_lab() -> Iterator[Lab]:
    faultkit.require_lab()
    the_lab = Lab(3, prefix="berth-lab-")
    try:
        the_lab.start()
        the_lab.import_image()
        for i, node in enumerate(the_lab.nodes):
            name = f"idle-{node.name.removeprefix('lab-')}"
            the_lab.workload[name] = Placement(node.name, run_idle(the_lab, i, name))
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture
def healthy_lab(fault_lab: Lab) -> Lab:
    """The module lab, every daemon running, thawed, on its socket, with its idle container running."""
    for node in fault_lab.nodes:
        hidden = Path(f"{node.sock}.hidden")
        if not node.sock.exists() and hidden.exists():
            os.link(hidden, node.sock)
        hidden.unlink(missing_ok=True)
        if node.frozen:
            node.thaw()
        if not node.running:
            node.start()
        name = f"idle-{node.name.removeprefix('lab-')}"
        with closing(node.client()) as client:
            c = client.containers.get(name)
            if c.status != "running":
                c.start()
        if node.ping() is None:
            raise LabError(f"{node.name} is not healthy before the test")
    return fault_lab
