"""The house rules, checked by tools in the test command (STYLE.md, practice 10), not by memory.

- import-linter: the layers in pyproject.toml ([tool.importlinter]); the core never imports
  Textual or Rich; the simulator uses nothing of Berth's client or model.
- A runtime check of the same promise: importing every core module does not load Textual.
- ruff over the whole tree, mypy over the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ("console.engine.client", "console.engine.reads", "console.fleet.poller", "console.fleet.runner",
        "console.actions", "console.actions.cli", "console.metrics", "console.metrics.cli", "console.sim.fleet",
        "console.sim.server", "console.config", "console.identity", "console.ports", "console.local",
        "console.status", "console.safefs", "console.fmt")


def _run(*argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: `pip install -e '.[test]'` brings it")
    return path


def test_import_contracts_are_kept() -> None:
    done = _run(_tool("lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" not in done.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_the_core_imports_without_textual() -> None:
    """Rich is not probed here: httpx imports it (with click and pygments) for its own CLI whenever it is
    installed, so only the import-linter contract above can say that Berth's core never imports it."""
    probe = ("import sys\n"
             f"for name in {CORE!r}:\n"
             "    __import__(name)\n"
             "ui = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
             "print(' '.join(ui))\n")
    done = _run(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", f"the core pulled in: {done.stdout.strip()}"


def test_ruff_is_clean() -> None:
    done = _run(_tool("ruff"), "check", "console", "tests", "bench")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_mypy_is_clean_on_the_package() -> None:
    done = _run(_tool("mypy"), "console", timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
