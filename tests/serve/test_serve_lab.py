"""`berth serve` on real dockerd nodes, reached as people reach it: the stock OpenSSH client in tmux.

Given a 2-node lab with the standard workload and a team of an operator (alice) and a viewer (bob):
alice sees the hosts with live figures and restarts acme-burn with `r` and `y`, and the audit record
names her, her key, the door and her address; bob's console offers no mutating key and his
`restart --yes` is refused with exit 3, nothing changed; consoles joining do not add connections to
the nodes (one poller).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from dockerlab import Lab, run_standard_workload
from labgate import require_lab
from servekit import (
    ServeProcess,
    Tmux,
    free_port,
    make_key,
    node_connections,
    ssh_run,
    ssh_shell,
    team_toml,
)

pytestmark = pytest.mark.lab

MUTATING = ("Restart", "Stop", "Pause", "Isolate", "Migrate", "Drain", "Cordon")


@pytest.fixture(scope="module")
def serve_lab() -> Iterator[Lab]:
    require_lab(None if shutil.which("tmux") and shutil.which("ssh") else "tmux or ssh not installed")
    lab = Lab(2, prefix="berth-serve-lab-")
    try:
        lab.start()
        lab.import_image()
        run_standard_workload(lab)
        yield lab
    finally:
        lab.close()


class Served:
    def __init__(self, lab: Lab, tmp: Path) -> None:
        os.chmod(tmp, 0o700)
        self.lab = lab
        self.port = free_port()
        self.keys = {name: make_key(tmp, name) for name in ("alice", "bob")}
        self.inventory = lab.write_inventory(tmp / "inventory.toml", node_settings={"stats_idle_interval": 1})
        with self.inventory.open("a") as f:
            f.write("\n" + team_toml(self.port, [("alice", "operator", self.keys["alice"]),
                                                 ("bob", "viewer", self.keys["bob"])]))
        self.known_hosts = tmp / "known_hosts"
        self.server = ServeProcess(["--inventory", str(self.inventory)], {"XDG_STATE_HOME": str(tmp / "state")})
        self.server.wait_ready()
        self.terms: list[Tmux] = []

    def console(self, user: str, width: int = 120, height: int = 30) -> Tmux:
        term = Tmux(f"berth-serve-{user}-{os.getpid()}-{len(self.terms)}", width, height,
                    ssh_shell(self.port, self.keys[user], user, self.known_hosts) + "; echo EXIT=$?; sleep 60")
        self.terms.append(term)
        return term

    def ssh(self, user: str, *command: str) -> object:
        return ssh_run(self.port, self.keys[user], user, self.known_hosts, *command)

    def close(self) -> None:
        for term in self.terms:
            term.kill()
        self.server.stop()


@pytest.fixture
def served(serve_lab: Lab, tmp_path: Path) -> Iterator[Served]:
    s = Served(serve_lab, tmp_path)
    try:
        yield s
    finally:
        s.close()


def _started_at(lab: Lab, name: str) -> str:
    placement = lab.workload[name]
    with closing(lab.node(placement.node).client()) as client:
        return str(client.api.inspect_container(placement.id)["State"]["StartedAt"])


def confirm(term: Tmux, what: str) -> None:
    """Press y as a person would: again if the first press came before the dialog had finished its first
    frame (such keys are dropped on purpose, console/ui/screens/dialogs.py), until the action starts."""
    for _ in range(10):
        term.send("y")
        try:
            term.wait_for(f"{what} to start", lambda s: f"{what}: started" in s or f"✔ {what}" in s, timeout=2)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{what} never started; screen:\n{term.capture()}")


def _first_container(screen: str) -> str | None:
    """The name in the containers pane's first row (the one the cursor is on)."""
    lines = screen.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("NAME ")), None)
    if header is None or header + 1 >= len(lines) or not lines[header + 1].split():
        return None
    return lines[header + 1].split()[0]


def _live_hosts(screen: str, names: list[str]) -> bool:
    """Every node on screen, up, with a CPU figure (cores used / cores) beside it."""
    lines = screen.splitlines()
    return all(any(line.startswith(n) and " up " in line and re.search(r"\d+\.\d+/\d+", line) for line in lines)
               for n in names)


def test_an_operator_restarts_and_the_audit_says_who_a_viewer_cannot(served: Served) -> None:
    lab = served.lab
    names = [n.name for n in lab.nodes]
    before = _started_at(lab, "acme-burn")

    # Given alice's console: the hosts pane with live figures
    alice = served.console("alice")
    alice.wait_for("the hosts with live figures", lambda s: _live_hosts(s, names), timeout=60)
    # When she picks the busiest container and restarts it, confirming
    alice.send("2")
    alice.wait_for("acme-burn on top", lambda s: _first_container(s) == "acme-burn")
    alice.send("r")
    alice.wait_for("the confirmation", lambda s: "Restart acme-burn" in s)
    confirm(alice, "restart acme-burn")
    alice.wait_for("the result", lambda s: "✔ restart acme-burn" in s, timeout=60)
    # Then the container was restarted, and the audit names her key, the door and her address
    assert _started_at(lab, "acme-burn") != before
    audit = served.ssh("bob", "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    end = [json.loads(line) for line in audit.stdout.splitlines()][-1]
    assert end["action"] == "restart" and end["target"]["name"] == "acme-burn" and end["ok"] is True
    assert end["identity"] == {"user": "alice", "role": "operator", "door": "ssh",
                               "fingerprint": served.keys["alice"].fingerprint, "address": "127.0.0.1"}

    # Given bob's console (a viewer) at 80x24: no mutating key in the footer or the help
    bob = served.console("bob", 80, 24)
    screen = bob.wait_for("bob's hosts", lambda s: all(n in s for n in names) and "READ-ONLY" in s, timeout=60)
    footer = screen.rstrip().splitlines()[-1]
    assert "Help" in footer and not any(word in footer for word in MUTATING), footer
    bob.send("?")
    help_screen = bob.wait_for("the help", lambda s: "Quit" in s and "Filter" in s)
    assert not any(word in help_screen for word in MUTATING), help_screen
    bob.send("Escape")
    # When bob asks for the restart anyway, from the command line with --yes
    after_alice = _started_at(lab, "acme-burn")
    refused = served.ssh("bob", "restart", "acme-burn", "--yes")
    # Then the server refuses it as his role, and nothing changed
    assert refused.returncode == 3, refused
    assert refused.stderr.strip() == "berth: bob is a viewer: restart refused (only operators act)"
    assert _started_at(lab, "acme-burn") == after_alice
    alice.send("q")
    assert "EXIT=0" in alice.wait_for("alice's ssh ended", lambda s: "EXIT=" in s)


def test_consoles_share_one_poller_node_connections_stay_flat(served: Served) -> None:
    lab = served.lab
    names = [n.name for n in lab.nodes]
    sockets = [n.sock for n in lab.nodes]
    pid = served.server.proc.pid

    def steady() -> dict[str, int]:
        """The counts once three readings a second apart agree (a one-shot read may come and go)."""
        readings: list[dict[str, int]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            readings.append(node_connections(pid, sockets))
            if len(readings) >= 3 and readings[-1] == readings[-2] == readings[-3]:
                return readings[-1]
            time.sleep(1.0)
        return max(readings, key=lambda r: sum(r.values()))

    first = served.console("bob")
    first.wait_for("the first console's hosts", lambda s: _live_hosts(s, names), timeout=60)
    first.send("2")  # its containers on screen: the poller keeps them at the full rate
    one = steady()
    assert all(v > 0 for v in one.values()), one  # the poller's streams to every node
    others = [served.console("alice"), served.console("bob", 80, 24)]
    for term in others:
        term.wait_for("another console's hosts", lambda s: all(n in s for n in names) and " up " in s, timeout=60)
        term.send("2")
    three = steady()
    print(f"node connections: 1 console {one}, 3 consoles {three}")
    assert three == one, f"1 console: {one}; 3 consoles: {three}"
