"""`berth serve --demo` reached with the stock OpenSSH client: keys decide who, the server decides what.

The simulated fleet needs no root; the same door on real dockerd nodes is tests/serve/test_serve_lab.py.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servekit import (  # noqa: E402
    Key,
    ServeProcess,
    Tmux,
    free_port,
    make_key,
    ssh_argv,
    ssh_run,
    ssh_shell,
    team_toml,
)


class Team:
    def __init__(self, tmp: Path, max_sessions: int | None = None) -> None:
        self.dir = tmp
        self.port = free_port()
        self.keys = {name: make_key(tmp, name) for name in ("alice", "bob", "eve")}
        self.inventory = tmp / "team.toml"
        self.inventory.write_text(team_toml(self.port, [("alice", "operator", self.keys["alice"]),
                                                        ("bob", "viewer", self.keys["bob"])], max_sessions))
        self.known_hosts = tmp / "known_hosts"
        self.env = {"XDG_STATE_HOME": str(tmp / "state")}
        self.server: ServeProcess | None = None

    def start(self, *extra: str) -> str:
        self.server = ServeProcess(["--demo", "--inventory", str(self.inventory), *extra], self.env)
        return self.server.wait_ready()

    def ssh(self, user: str, *command: str, key: str | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
        return ssh_run(self.port, self.keys[key or user], user, self.known_hosts, *command, **kw)  # type: ignore[arg-type]

    def stop(self) -> int:
        return self.server.stop() if self.server is not None else 0


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    os.chmod(tmp_path, 0o700)
    t = Team(tmp_path)
    try:
        yield t
    finally:
        t.stop()


def test_the_host_key_is_made_once_0600_and_known_hosts_keeps_trusting_it(team: Team) -> None:
    first = team.start()
    key_file = team.dir / "berth_host_ed25519"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "new" in team.server.log  # type: ignore[union-attr]
    assert team.ssh("bob", "status", "--timeout", "30").returncode == 0  # accept-new records it
    assert team.stop() == 0
    second = team.start()
    assert second == first and "new" not in team.server.log  # type: ignore[union-attr]
    assert Key(key_file, "").fingerprint == first  # what `ssh-keygen -l` says of the file
    again = team.ssh("bob", "status", "--json", strict="yes")  # known_hosts must accept it as it is
    assert again.returncode == 0, again.stderr
    assert {n["name"] for n in json.loads(again.stdout)["nodes"]} >= {"sim-01", "sim-02"}


def test_keys_decide_who_and_nothing_else_gets_in(team: Team) -> None:
    team.start()
    unknown = team.ssh("bob", "status", key="eve")
    assert unknown.returncode == 255 and "Permission denied (publickey)" in unknown.stderr
    wrong_name = team.ssh("alice", "status", key="bob")
    assert wrong_name.returncode == 255 and "Permission denied (publickey)" in wrong_name.stderr
    no_user = team.ssh("root", "status", key="alice")
    assert no_user.returncode == 255
    log = team.server.wait_for("the refusals logged", lambda s: s.count("refused: key") >= 3)  # type: ignore[union-attr]
    assert f"key {team.keys['eve'].fingerprint} is not listed" in log
    assert f"key {team.keys['bob'].fingerprint} is user 'bob''s" in log


def test_commands_run_as_the_caller_with_local_exit_codes(team: Team) -> None:
    team.start()
    refused = team.ssh("bob", "restart", "acme-api-0101", "--yes")
    assert refused.returncode == 3, refused
    assert refused.stderr.strip() == "berth: bob is a viewer: restart refused (only operators act)"
    assert refused.stdout == ""
    unconfirmed = team.ssh("alice", "restart", "acme-api-0101")  # no terminal: nobody to say yes
    assert unconfirmed.returncode == 3 and "needs confirmation" in unconfirmed.stderr
    done = team.ssh("alice", "restart", "acme-api-0101", "--yes")
    assert done.returncode == 0, done.stderr
    assert "restart sim-01/acme-api-0101" in done.stdout and "restarted" in done.stdout
    audit = team.ssh("bob", "audit", "--json")
    assert audit.returncode == 0
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    mine = [r for r in records if r.get("action") == "restart"]
    assert mine and all(r["who"] == "alice" for r in mine)
    assert mine[-1]["identity"] == {"user": "alice", "role": "operator", "door": "ssh",
                                    "fingerprint": team.keys["alice"].fingerprint, "address": "127.0.0.1"}
    lines = team.ssh("bob", "audit").stdout
    assert f"alice (ssh {team.keys['alice'].fingerprint} from 127.0.0.1)  restart sim-01/acme-api-0101" in lines
    assert team.ssh("alice", "status", "--inventory", "/etc/passwd").returncode == 2
    sim = team.ssh("alice", "sim", "--nodes", "1")
    assert sim.returncode == 2 and "'sim' is not served over ssh" in sim.stderr
    usage = team.ssh("alice", "restart")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    helped = team.ssh("alice", "restart", "--help")
    assert helped.returncode == 0 and "usage: berth restart" in helped.stdout


def test_a_confirmation_is_asked_on_the_callers_terminal(team: Team) -> None:
    team.start()
    term = Tmux(f"berth-serve-ask-{os.getpid()}", 100, 20,
                " ".join(ssh_argv(team.port, team.keys["alice"], "alice", team.known_hosts, "restart",
                                  "acme-api-0101", tty=True)) + "; echo EXIT=$?; sleep 30")
    try:
        term.wait_for("the plan and the question", lambda s: "Go ahead? [y/N]" in s)
        term.send("n", "Enter")
        screen = term.wait_for("the exit status", lambda s: "EXIT=" in s)
        assert "not confirmed: nothing changed" in screen and "EXIT=3" in screen
    finally:
        term.kill()


def test_max_sessions_refuses_clearly_and_frees_the_seat(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    team = Team(tmp_path, max_sessions=1)
    try:
        team.start()
        watch = subprocess.Popen(ssh_argv(team.port, team.keys["bob"], "bob", team.known_hosts, "status", "--watch",
                                          "--interval", "0.5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, text=True)
        try:
            assert watch.stdout is not None and "nodes" in watch.stdout.readline()  # it holds the one seat
            second = team.ssh("alice", "status")
            assert second.returncode == 1
            assert "all 1 sessions are in use (max_sessions)" in second.stderr
        finally:
            watch.terminate()
            watch.wait(10)
        deadline = time.monotonic() + 30
        while (again := team.ssh("alice", "status")).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # the watcher's channel closes a moment after its client went
        assert again.returncode == 0, again.stderr
    finally:
        team.stop()


def test_failed_logins_are_logged_and_shut_out_only_their_address(team: Team) -> None:
    team.start()
    for _ in range(12):
        subprocess.run(ssh_argv(team.port, team.keys["eve"], "eve", team.known_hosts, "status")[:1]
                       + ["-b", "127.0.0.2"] + ssh_argv(team.port, team.keys["eve"], "eve", team.known_hosts,
                                                        "status")[1:], capture_output=True, timeout=30)
    log = team.server.wait_for("the shut-out", lambda s: "127.0.0.2: 10 failed logins" in s)  # type: ignore[union-attr]
    assert log.count("127.0.0.2: login as 'eve' refused") == 10  # the rest never reached a key exchange
    shut = subprocess.run(["ssh", "-b", "127.0.0.2", *ssh_argv(team.port, team.keys["alice"], "alice",
                                                                 team.known_hosts, "status")[1:]],
                          capture_output=True, text=True, timeout=30)
    assert shut.returncode == 255  # even a good key, from that address, for now
    assert team.ssh("alice", "status", "--timeout", "30").returncode == 0  # other addresses: as before


def test_sigterm_ends_consoles_with_a_message(team: Team) -> None:
    team.start()
    term = Tmux(f"berth-serve-term-{os.getpid()}", 100, 30,
                ssh_shell(team.port, team.keys["bob"], "bob", team.known_hosts) + "; echo EXIT=$?; sleep 30")
    try:
        screen = term.wait_for("the viewer's console", lambda s: "Hosts" in s and "sim-01" in s)
        assert "READ-ONLY" in screen
        assert team.stop() == 0
        screen = term.wait_for("the goodbye", lambda s: "EXIT=" in s)
        assert "berth serve: stopped (SIGTERM); sessions end now" in screen and "EXIT=1" in screen
    finally:
        term.kill()


def test_metrics_are_the_shared_pollers_figures(team: Team) -> None:
    import urllib.request

    port = free_port()
    team.start("--metrics", f"127.0.0.1:{port}")
    assert f"metrics on http://127.0.0.1:{port}/metrics" in team.server.log  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    body = ""
    while "berth_node_up" not in body and time.monotonic() < deadline:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        time.sleep(0.2)
    assert 'berth_node_up{node="sim-01"' in body


def test_sigterm_lets_a_running_action_reach_a_safe_point_and_audit_its_end(team: Team) -> None:
    team.start()
    # Given alice draining a node over ssh (many migrations, one after another)
    drain = subprocess.Popen(ssh_argv(team.port, team.keys["alice"], "alice", team.known_hosts, "drain", "sim-04",
                                      "--yes"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
    assert drain.stdout is not None
    lines = []
    while not any(line.startswith("[") for line in lines):  # its first progress line: it is running
        line = drain.stdout.readline()
        assert line, f"the drain ended before it began: {lines} {drain.stderr.read() if drain.stderr else ''}"
        lines.append(line)
    # When berth serve is stopped
    assert team.stop() == 0
    out, err = drain.communicate(timeout=90)
    # Then the drain was asked to stop at a safe point, said so, and its audit record ended
    log = team.server.log  # type: ignore[union-attr]
    assert "asking 1 running action(s) to stop at their next safe point" in log, log
    assert "did not reach a safe point" not in log
    assert "interrupted (stopped (SIGTERM))" in err + out, (out, err)
    assert re.search(r"\(audit \d{8}T\d{6}-[0-9a-f]+\)", err), err
    assert "sessions end now" in err and drain.returncode != 0


def test_read_only_overrides_every_role(team: Team) -> None:
    team.start("--read-only")
    assert "read-only for everyone" in team.server.log  # type: ignore[union-attr]
    refused = team.ssh("alice", "restart", "acme-api-0101", "--yes")
    assert refused.returncode == 3, refused
    assert refused.stderr.strip() == "berth: read-only console: restart refused (started with --read-only)"
    term = Tmux(f"berth-serve-ro-{os.getpid()}", 100, 30,
                ssh_shell(team.port, team.keys["alice"], "alice", team.known_hosts) + "; sleep 30")
    try:
        screen = term.wait_for("alice's console", lambda s: "sim-01" in s and "READ-ONLY" in s)
        assert "Restart" not in screen.rstrip().splitlines()[-1]
    finally:
        term.kill()
