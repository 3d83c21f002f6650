"""End to end: `berth` in a real terminal (tmux, 80x24) against real dockerd nodes from tests/lab.

Given a 3-node lab running the standard workload, when the console starts, then
every node name is on screen, the CPU-bound container (acme-burn, capped at 0.5
core) tops the containers pane with a plausible figure, and a node whose daemon
is killed turns "down" on screen.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_LAB = str(Path(__file__).resolve().parents[1] / "lab")
if _LAB not in sys.path:
    sys.path.insert(0, _LAB)

from dockerlab import Lab, run_standard_workload  # noqa: E402
from labgate import require_lab  # noqa: E402
from support.tmux import Tmux  # noqa: E402

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ui_lab() -> Iterator[Lab]:
    """A lab of our own: this test kills one of its daemons."""
    require_lab(None if shutil.which("tmux") else "tmux not installed (apt-get install tmux)")
    lab = Lab(3, prefix="berth-ui-lab-")
    try:
        lab.start()
        lab.import_image()
        run_standard_workload(lab)
        yield lab
    finally:
        lab.close()


def _containers_rows(screen: str) -> list[list[str]]:
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    return [line.split() for line in lines[start + 1:] if line.strip() and not line.startswith("/ ")]


def test_console_shows_the_real_fleet_and_a_killed_node_going_down(ui_lab: Lab, tmp_path: Path) -> None:
    inventory = ui_lab.write_inventory(tmp_path / "inventory.toml")
    env = f"XDG_STATE_HOME={tmp_path}"  # the audit log of this run stays in the test dir
    term = Tmux(f"berth-e2e-{os.getpid()}", 80, 24,
                f"env {env} {sys.executable} -m console --inventory {inventory}; sleep 60")
    try:
        names = [n.name for n in ui_lab.nodes]
        screen = term.wait_for("every node name", lambda s: all(n in s for n in names) and " up " in s)
        assert "nodes 3/3" in screen

        term.send("2")

        def burn_on_top(s: str) -> bool:
            if "2 Containers" not in s:
                return False
            rows = _containers_rows(s)
            return bool(rows) and rows[0][0] == "acme-burn" and re.fullmatch(r"[0-9.]+", rows[0][4] or "") is not None

        screen = term.wait_for("acme-burn at the top of the containers pane", burn_on_top)
        cpu = float(_containers_rows(screen)[0][4])
        assert 25.0 <= cpu <= 65.0, f"acme-burn is capped at 0.5 core; shown {cpu}%\n{screen}"

        victim = ui_lab.node(names[-1])
        victim.kill()
        term.send("1")
        screen = term.wait_for(f"{victim.name} down", lambda s: any(
            line.startswith(victim.name) and "down" in line for line in s.splitlines()), timeout=45)
        assert "nodes 2/3" in screen
        term.send("q")
    finally:
        term.kill()
