"""Crash tests' kit: Berth as a child process stopped at a failpoint, then SIGKILLed; `berth` one-shots.

The migration journals the chosen point and waits there (BERTH_FAILPOINT, console/actions/migrate.py);
``Paused.wait_paused`` waits for that in the progress output (bounded, no fixed sleeps), then
reads the journal as it stands.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from action_helpers import dk, run
from dockerlab import Lab

N1, N2 = "lab-n1", "lab-n2"
ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 90.0  # seconds: bound for any one wait (a loaded 2-core machine)


def berth(*args: str, inventory: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    env.pop("BERTH_FAILPOINT", None)
    return subprocess.run([sys.executable, "-m", "console", *args, "-i", str(inventory)], capture_output=True,
                          text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=240, check=False)


class Paused:
    """A `berth` command as a child process stopped at a failpoint; its output read on a thread."""

    def __init__(self, argv: list[str], inventory: Path, state: Path, failpoint: str) -> None:
        env = {**os.environ, "XDG_STATE_HOME": str(state), "BERTH_FAILPOINT": failpoint}
        self.state = state
        self.failpoint = failpoint
        self.proc = subprocess.Popen([sys.executable, "-m", "console", *argv, "-i", str(inventory)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_paused(self) -> dict[str, Any]:
        """Until the failpoint says so in the progress output; then the journal as it stands."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"berth exited ({self.proc.wait()}) before {self.failpoint}:\n{''.join(self.output)}")
            self.output.append(line)
            if f"failpoint {self.failpoint}: paused" in line:
                [path] = (self.state / "berth" / "migrations").glob("*.json")
                journal: dict[str, Any] = json.loads(path.read_text())
                return journal
        pytest.fail(f"no failpoint {self.failpoint} within {DEADLINE:g}s:\n{''.join(self.output)}")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL


def workload(lab: Lab) -> str:
    """web on n1: network app, restart policy always, 16 MiB in volume appdata, a file in its layer."""
    dk(lab, N1).networks.create("app", driver="bridge")
    c = run(lab, N1, "web", network="app", mem_limit="64m", restart_policy={"Name": "always"},
            volumes={"appdata": {"bind": "/data", "mode": "rw"}})
    c.exec_run(["sh", "-c", "dd if=/dev/urandom of=/data/blob bs=1M count=16 2>/dev/null; echo v1 > /etc/layer"])
    return str(c.exec_run(["md5sum", "/data/blob"]).output.split()[0].decode())


def killed_at(lab: Lab, tmp_path: Path, failpoint: str) -> tuple[Path, Path, dict[str, Any], str]:
    """Given web on n1 and Berth SIGKILLed at ``failpoint`` of its migration to n2."""
    digest = workload(lab)
    inv, state = lab.write_inventory(tmp_path / "inv.toml"), tmp_path / "state"
    migrating = Paused(["migrate", "web", "--to", N2, "--yes"], inv, state, failpoint)
    try:
        journal = migrating.wait_paused()
    finally:
        migrating.kill()
    return inv, state, journal, digest


class Running:
    """A `berth` command as a child process, its output read on a thread: wait for a line, signal it."""

    def __init__(self, argv: list[str], inventory: Path, state: Path) -> None:
        env = {**os.environ, "XDG_STATE_HOME": str(state)}
        env.pop("BERTH_FAILPOINT", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "console", *argv, "-i", str(inventory)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str) -> None:
        """Until a line of output contains ``text`` (bounded by DEADLINE)."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"berth exited ({self.proc.wait()}) before saying {text!r}:\n{''.join(self.output)}")
            self.output.append(line)
            if text in line:
                return
        pytest.fail(f"berth did not say {text!r} within {DEADLINE:g}s:\n{''.join(self.output)}")

    def send(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait_exit(self) -> tuple[int, str]:
        """The exit status and the whole output."""
        code = self.proc.wait(timeout=DEADLINE)
        while True:
            try:
                line = self._lines.get(timeout=DEADLINE)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
        return code, "".join(self.output)
