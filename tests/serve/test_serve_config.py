"""`[serve]` and `[[user]]`: what parses, and every refusal as one line naming file and line (exit 2)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servekit import REPO, free_port, make_key, team_toml  # noqa: E402

from console.config import ConfigError, parse_inventory  # noqa: E402
from console.serve.config import Listen, load_serve, parse_listen, parse_serve  # noqa: E402

NODE = '[[node]]\nname = "n1"\nurl = "unix:///tmp/nowhere.sock"\n'


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("keys")
    return {name: make_key(d, name) for name in ("alice", "bob", "eve")}


def test_a_team_inventory_parses_and_the_nodes_still_load(tmp_path: Path, keys: dict) -> None:
    text = NODE + team_toml(2222, [("alice", "operator", keys["alice"])]) + \
        f'\n[[user]]\nname = "bob"\nkeys = ["{keys["bob"].public}"]\n'
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    config = load_serve(path)
    assert config.ssh == Listen("127.0.0.1", 2222)
    assert config.host_key == tmp_path / "berth_host_ed25519"  # relative to the file
    assert config.max_sessions == 32
    assert [(u.name, u.role) for u in config.users] == [("alice", "operator"), ("bob", "viewer")]
    alice = config.users[0].keys[0]
    assert alice.fingerprint == keys["alice"].fingerprint  # as `ssh-keygen -l` prints it
    assert config.user_for_key(alice.blob)[0].name == "alice"
    assert [n.name for n in parse_inventory(text, path).nodes] == ["n1"]  # `berth` accepts the same file


@pytest.mark.parametrize(("body", "line", "needle"), [
    ('[serve]\nssh = "0.0.0.0"\n', 2, "[serve] ssh '0.0.0.0' has no port"),
    ('[serve]\nssh = "0.0.0.0:99999"\n', 2, "port '99999' is not a number from 0 to 65535"),
    ('[serve]\nmax_sessions = 0\n', 2, "max_sessions must be at least 1"),
    ('[serve]\nsssh = "1.2.3.4:22"\n', 2, "unknown key 'sssh' (did you mean 'ssh'?)"),
    ('[[user]]\nname = "al"\nrole = "admin"\nkeys = ["{alice}"]\n', 3, "user 'al': unknown role 'admin'"),
    ('[[user]]\nname = "al"\nkeys = ["ssh-ed25519 AAAAnotbase64 al@x"]\n', 3, "key #1"),
    ('[[user]]\nname = "al"\nkeys = ["just words"]\n', 3, "is not an OpenSSH public key"),
    ('[[user]]\nname = "al"\nkeys = []\n', 3, "keys must be a non-empty array"),
    ('[[user]]\nname = "al"\n', 1, "missing required key 'keys'"),
    ('[[user]]\nname = "al"\nkeys = ["{alice}"]\n\n[[user]]\nname = "al"\nkeys = ["{bob}"]\n', 6,
     "duplicate user name 'al' (first defined on line 2)"),
    ('[[user]]\nname = "al"\nkeys = ["{alice}"]\n\n[[user]]\nname = "bo"\nkeys = [\n  "{bob}",\n  "{alice}",\n]\n',
     9, "is already user 'al''s (line 3)"),
    ('[[user]]\nname = "al"\nkeys = ["{alice}", "{alice}"]\n', 3, "listed twice for this user"),
    ('[[user]]\nname = "' + "a" * 64 + '"\nkeys = ["{alice}"]\n', 2, "is 64 characters long (at most 63)"),
    ('[[user]]\nname = "al/ice"\nkeys = ["{alice}"]\n', 2, "name 'al/ice' is not allowed"),
    ('[user]\nname = "al"\n', 1, "write [[user]]"),
])
def test_a_bad_serve_table_is_one_line_with_file_and_line(tmp_path: Path, keys: dict, body: str, line: int,
                                                          needle: str) -> None:
    text = body.replace("{alice}", keys["alice"].public).replace("{bob}", keys["bob"].public)
    path = tmp_path / "team.toml"
    with pytest.raises(ConfigError) as info:
        parse_serve(text, path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message


def test_listen_addresses() -> None:
    assert parse_listen("[::1]:2222") == Listen("::1", 2222)
    assert str(parse_listen("[::1]:2222")) == "[::1]:2222"
    for bad in ("", "::1:22", "host:", ":22", "a b:22"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", "serve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                                      "XDG_STATE_HOME": str(cwd / "state"), "HOME": str(cwd)})


@pytest.mark.parametrize(("body", "needle"), [
    ('[[user]]\nname = "al"\nrole = "root"\nkeys = ["{alice}"]\n', "unknown role 'root'"),
    ('[serve]\nssh = "127.0.0.1:2222"\n', "no [[user]]"),
    ('[[user]]\nname = "al"\nkeys = ["{alice}"]\n', "nothing to serve"),
    ('[serve]\nssh = "127.0.0.1:2222"\nweb = "127.0.0.1:8080"\n[[user]]\nname = "al"\nkeys = ["{alice}"]\n',
     "the browser door is not built"),
])
def test_berth_serve_refuses_a_bad_team_file_with_one_line_and_exit_2(tmp_path: Path, keys: dict, body: str,
                                                                      needle: str) -> None:
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(NODE + body.replace("{alice}", keys["alice"].public))
    result = _serve("--inventory", str(inventory), cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path, keys: dict) -> None:
    port = free_port()
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(team_toml(port, [("alice", "operator", keys["alice"])]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = _serve("--demo", "--inventory", str(inventory), cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    bad = _serve("--demo", "--inventory", str(inventory), "--ssh", "nowhere", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--ssh 'nowhere' has no port" in bad.stderr
