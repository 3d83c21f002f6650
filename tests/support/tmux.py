"""A terminal as a person uses one: a private tmux server running a command, keys in, screen out.

Each Tmux has its own server (its own socket, no config file), so the size asked for is the size
drawn, nobody's ~/.tmux.conf changes what is seen, and closing it kills only what it started.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Tmux:
    def __init__(self, name: str, width: int, height: int, command: str, *, cwd: Path = REPO) -> None:
        self.name = name
        self.tmux = ["tmux", "-L", name, "-f", "/dev/null"]
        subprocess.run([*self.tmux, "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command],
                       check=True, cwd=cwd)

    def capture(self) -> str:
        """The screen now; empty once the server is gone (the command ended and took it along)."""
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], check=False, capture_output=True,
                              text=True).stdout

    def title(self) -> str:
        return subprocess.run([*self.tmux, "display-message", "-p", "-t", self.name, "#{pane_title}"], check=True,
                              capture_output=True, text=True).stdout.strip()

    def send(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, what: str, check: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The first screen ``check`` accepts; else fail naming ``what`` and showing the last screen."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if check(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)
