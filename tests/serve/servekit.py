"""Helpers for the `berth serve` tests: keys made with ssh-keygen, a team inventory, the server as a
real process, the stock OpenSSH client (in tmux when a person would be looking), and a count of the
server's connections to each node's socket."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from support.tmux import Tmux  # noqa: F401  (re-exported: the serve suites take it from here)

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Key:
    path: Path
    public: str

    @property
    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-f", str(self.path) + ".pub"], check=True, capture_output=True,
                             text=True).stdout
        return out.split()[1]


def make_key(directory: Path, name: str) -> Key:
    path = directory / f"id_{name}"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(path)],
                       check=True)
    return Key(path, (directory / f"id_{name}.pub").read_text().strip())


def team_toml(port: int | None, users: Iterable[tuple[str, str, Key]], max_sessions: int | None = None,
              extra: str = "") -> str:
    lines = ["[serve]"]
    if port is not None:
        lines.append(f'ssh = "127.0.0.1:{port}"')
    if max_sessions is not None:
        lines.append(f"max_sessions = {max_sessions}")
    lines.append(extra)
    for name, role, key in users:
        lines += ["", "[[user]]", f'name = "{name}"', f'role = "{role}"', f'keys = ["{key.public}"]']
    return "\n".join(lines) + "\n"


class ServeProcess:
    """`python -m console serve ...` with its stderr collected; ``wait_ready`` reads the bound address."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "console", "serve", *args], cwd=REPO,
                                     env={**os.environ, "PYTHONPATH": str(REPO), **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, what: str, check: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.log):
                return self.log
            if self.proc.poll() is not None:
                self._reader.join(2)
                if check(self.log):
                    return self.log
                raise AssertionError(f"berth serve exited ({self.proc.returncode}) before {what}:\n{self.log}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; berth serve said:\n{self.log}")

    def wait_ready(self) -> str:
        log = self.wait_for("the ssh door", lambda s: " ssh on " in s)
        match = re.search(r"host key (SHA256:\S+?)[,;)]", log)
        assert match, log
        return match.group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            self._reader.join(2)


def ssh_argv(port: int, key: Key, user: str, known_hosts: Path, *command: str, strict: str = "accept-new",
             tty: bool = False, batch: bool = True) -> list[str]:
    return ["ssh", "-p", str(port), "-i", str(key.path), "-o", f"StrictHostKeyChecking={strict}",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "IdentitiesOnly=yes",
            "-o", f"BatchMode={'yes' if batch else 'no'}", "-o", "LogLevel=ERROR", "-F", "/dev/null",
            *(["-tt"] if tty else []), f"{user}@127.0.0.1", *command]


def ssh_run(port: int, key: Key, user: str, known_hosts: Path, *command: str, strict: str = "accept-new",
            timeout: float = 60.0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh_argv(port, key, user, known_hosts, *command, strict=strict), capture_output=True,
                          text=True, timeout=timeout, input=stdin if stdin is not None else "")


def ssh_shell(port: int, key: Key, user: str, known_hosts: Path) -> str:
    """The command line a person types to open the console (for tmux)."""
    return " ".join(ssh_argv(port, key, user, known_hosts, batch=False))


def node_connections(pid: int, sockets: Iterable[Path]) -> dict[str, int]:
    """How many of process ``pid``'s sockets are connected to each node socket (by the peer inodes that
    `ss -x` reports for the listening side), e.g. {'/tmp/lab/n1/docker.sock': 5}."""
    wanted = {str(s) for s in sockets}
    peers: dict[str, set[str]] = {s: set() for s in wanted}
    out = subprocess.run(["ss", "-xH"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[4] in wanted:
            peers[fields[4]].add(fields[7])
    mine: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    return {s: len(peers[s] & mine) for s in wanted}
