"""Action core pieces that need no daemon: masking, the audit file, tar filtering, path selection,
placement arithmetic, read-only refusal and the CLI's refusals."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from console.actions import ACTIONS, Actions, AuditLog, ReadOnlyError, Target
from console.actions.migrate import clone_body, layer_paths
from console.actions.placement import Need, NodeLoad, fit_problems
from console.actions.redact import mask, mask_env, mask_text
from console.actions.tarstream import TarFilter
from console.cli import main
from console.config import Inventory, NodeConfig

INV = Inventory(nodes=(NodeConfig("a", "unix:///nonexistent/a.sock"), NodeConfig("b", "unix:///nonexistent/b.sock")))
TARGET = Target("a", "f" * 64, "web", "t1", "running")


# -- secrets ---------------------------------------------------------------------------------------

def test_env_values_with_secret_names_are_masked_and_names_kept() -> None:
    assert mask_env(["API_KEY=abc", "DB_PASSWORD=hunter2", "MODE=prod", "GITHUB_TOKEN=x", "AUTH_HEADER=y"]) == [
        "API_KEY=***", "DB_PASSWORD=***", "MODE=prod", "GITHUB_TOKEN=***", "AUTH_HEADER=***"]


def test_url_credentials_and_inline_assignments_are_masked() -> None:
    text = "connect postgres://app:s3cret@db:5432/x then SECRET_KEY=topsecret done"
    out = mask_text(text)
    assert "s3cret" not in out and "topsecret" not in out
    assert "postgres://app:***@db:5432/x" in out and "SECRET_KEY=***" in out


def test_mask_walks_nested_records() -> None:
    rec = {"params": {"password": "p", "reason": "token: abc"}, "Env": ["X_PASS=1"], "list": ["http://u:p@h"]}
    out = mask(rec)
    assert out == {"params": {"password": "***", "reason": "token: ***"}, "Env": ["X_PASS=***"],
                   "list": ["http://u:***@h"]}


# -- audit -----------------------------------------------------------------------------------------

def test_audit_file_is_private_and_written_before_and_after(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "deep" / "audit.jsonl", user="ops@host")
    aid = log.begin("restart", TARGET, {"reason": "db_password=hunter2"})
    assert log.read()[0]["ok"] is None  # begin alone: recorded as unfinished
    log.end(aid, True, [{"phase": "restart", "ok": True}], None, 0.5, {"state": "running"})
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "deep" / "audit.jsonl").stat().st_mode) == 0o600
    raw = (tmp_path / "deep" / "audit.jsonl").read_text()
    assert "hunter2" not in raw and len(raw.splitlines()) == 2
    [entry] = log.read()
    assert entry["who"] == "ops@host" and entry["ok"] is True and entry["target"]["name"] == "web"
    assert entry["duration"] == 0.5 and entry["details"] == {"state": "running"}


def test_audit_default_path_follows_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert AuditLog().path == tmp_path / "berth" / "audit.jsonl"


def test_audit_who_prefers_sudo_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    assert AuditLog(tmp_path / "a.jsonl").user.startswith("alice@")


def test_audit_read_limit_keeps_the_newest(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", user="u@h")
    ids = [log.begin("stop", TARGET, {}) for _ in range(5)]
    assert [e["id"] for e in log.read(2)] == ids[-2:]


# -- tar filtering ---------------------------------------------------------------------------------

def _tar(files: dict[str, bytes], mtime: float = 1000.0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in files.items():
            info = tarfile.TarInfo(f"data/{name}")
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _through(raw: bytes, tar: TarFilter, step: int = 333) -> bytes:
    return b"".join(tar.feed(raw[i:i + step]) for i in range(0, len(raw), step)) + tar.close()


def test_filter_passes_everything_and_records_entries() -> None:
    raw = _tar({"a": b"x" * 5000, "b" * 150: b"long name"})
    tar = TarFilter(prefix="/")
    out = _through(raw, tar)
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        assert t.extractfile(f"data/{'b' * 150}").read() == b"long name"
    assert set(tar.entries) == {"data", "data/a", f"data/{'b' * 150}"}
    assert tar.entries["data/a"].size == 5000


def test_filter_drops_unchanged_entries_and_keeps_a_valid_archive() -> None:
    raw = _tar({"same": b"1" * 700, "changed": b"2" * 10})
    tar = TarFilter(keep=lambda e: e.path.endswith("changed"))
    out = _through(raw, tar, step=7)
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        assert [m.name for m in t.getmembers()] == ["data/changed"]
        assert t.extractfile("data/changed").read() == b"2" * 10
    assert tar.kept == 1 and tar.dropped == 2


# -- path selection, placement, clone -------------------------------------------------------------

def test_layer_paths_picks_archive_roots_outside_mounts() -> None:
    changes = [{"Path": "/opt", "Kind": 1}, {"Path": "/opt/a", "Kind": 1}, {"Path": "/etc", "Kind": 0},
               {"Path": "/etc/new", "Kind": 1}, {"Path": "/etc/gone", "Kind": 2}, {"Path": "/data", "Kind": 1},
               {"Path": "/data/x", "Kind": 1}, {"Path": "/proc/x", "Kind": 1}, {"Path": "/srv", "Kind": 1}]
    roots, deleted = layer_paths(changes, ["/data", "/srv/vol"])
    assert roots == ["/etc/new", "/opt"]
    assert deleted == ["/etc/gone"]


def test_fit_refuses_cordon_overcommit_and_port_clash() -> None:
    load = NodeLoad("b", ncpu=2, mem_total=1000, driver="overlay2", running=1, total=1, cpu_limits=1.5,
                    mem_limits=900, ports={("", "8080", "tcp")}, cordoned=True, cordon_note="cordoned by x")
    need = Need(cpu=1.0, mem=700, ports=frozenset({("127.0.0.1", "8080", "tcp")}), running=True)
    problems = " | ".join(fit_problems(load, need, cpu_max=1.0, mem_max=1.5))
    assert "cordoned" in problems and "memory committed would be 160%" in problems
    assert "CPU committed would be 125%" in problems and "8080/tcp" in problems
    assert fit_problems(NodeLoad("c", 4, 10_000, "overlay2"), need, 4.0, 1.5) == []


def test_clone_body_holds_restart_policy_and_drops_generated_hostname() -> None:
    cid = "abcdef0123456789" * 4
    doc = {"Id": cid, "Config": {"Hostname": cid[:12], "Env": ["A=1"], "Labels": {"x": "y"}, "Image": "img"},
           "HostConfig": {"NetworkMode": "app", "RestartPolicy": {"Name": "always"}, "Memory": 5}}
    body = clone_body(doc, "sha256:1", {"app": {"Aliases": ["web"]}})
    assert "Hostname" not in body and body["Image"] == "sha256:1" and body["Env"] == ["A=1"]
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert body["HostConfig"]["Memory"] == 5
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"app": {"Aliases": ["web"]}}}


# -- read-only and the CLI's refusals -------------------------------------------------------------

@pytest.mark.parametrize("action", ACTIONS)
async def test_read_only_refuses_every_action_before_any_io(action: str) -> None:
    actions = Actions(INV, read_only=True, audit=AuditLog(Path("/nonexistent/never-written")))
    with pytest.raises(ReadOnlyError, match="read-only"):
        await actions.plan(action, "a/web")


@pytest.mark.parametrize("argv", [["restart", "web"], ["isolate", "a/web", "--freeze"],
                                  ["migrate", "web", "--to", "b"], ["drain", "a"], ["cordon", "a"]])
def test_cli_read_only_is_one_line_and_exit_3(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--read-only"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only" in err


def test_cli_unknown_target_is_one_line_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n')
    assert main(["stop", "web", "--yes", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no container 'web'" in err and "Traceback" not in err


def test_cli_audit_lists_actions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog()
    aid = log.begin("stop", TARGET, {})
    log.end(aid, False, [], "stop a/web failed: boom", 0.2, {})
    assert main(["audit"]) == 0
    out = capsys.readouterr().out
    assert "stop a/web  FAILED" in out and "boom" in out
    assert main(["audit", "--json", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == "stop a/web failed: boom"


@pytest.mark.parametrize("spec", ["", "   "])
def test_cli_empty_target_is_a_usage_error(spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "inv.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/a.sock"\n')
    assert main(["restart", spec, "--yes", "-i", str(inv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no target given" in err


# -- locks and audit records left by a process that is gone ------------------------------------------

def _lock_labels(action: str, *, host: str | None = None, pid: int, pid_start: str | None, age: float = 5.0
                 ) -> dict[str, str]:
    import socket
    import time

    return {"berth.role": "lock", "berth.action": action, "berth.owner": "op@h", "berth.since": f"{time.time() - age}",
            "berth.host": host or socket.gethostname(), "berth.pid": str(pid), "berth.pid_start": pid_start or ""}


def test_a_lock_whose_process_is_gone_from_this_host_is_stale_at_once_elsewhere_only_by_age() -> None:
    import os

    from console.actions.journal import proc_start
    from console.actions.locks import NodeLock

    me = _lock_labels("restart", pid=os.getpid(), pid_start=proc_start(os.getpid()))
    dead = _lock_labels("restart", pid=os.getpid(), pid_start="1")  # this pid, another (earlier) process
    remote = _lock_labels("restart", host="elsewhere.example", pid=2**22 + 1, pid_start="1")
    # A live holder refuses; a dead holder on this host may be broken, with no --break-stale
    assert NodeLock.refusal(me) is not None and "pid" in NodeLock.refusal(me)
    assert NodeLock.gone(dead) and NodeLock.refusal(dead) is None
    # Another host's lock: its process cannot be seen from here, so only its age counts
    assert not NodeLock.gone(remote) and NodeLock.refusal(remote) is not None
    assert NodeLock.refusal(remote, break_stale=True) is not None
    old = {**remote, "berth.since": "1"}
    assert NodeLock.refusal(old, break_stale=True) is None
    # Written where a process's start time cannot be read (no /proc): never taken for dead, only by age
    unknown = _lock_labels("restart", pid=2**22 + 1, pid_start=None)
    assert not NodeLock.gone(unknown) and NodeLock.refusal(unknown) is not None


def test_a_dead_migrations_lock_is_not_broken_but_sent_to_recover() -> None:
    import os

    from console.actions.locks import NodeLock

    for action in ("migrate", "recover"):
        why = NodeLock.refusal(_lock_labels(action, pid=os.getpid(), pid_start="1"))
        assert why is not None and "berth recover" in why and "gone" in why


def test_audit_dangling_is_a_begin_without_end_whose_process_is_gone(tmp_path: Path) -> None:
    import time

    log = AuditLog(tmp_path / "audit.jsonl", user="op@h")
    live = log.begin("restart", TARGET, {})  # this process: still running it
    ended = log.begin("stop", TARGET, {})
    log.end(ended, True)
    dead = log.begin("pause", TARGET, {})
    recs = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    for r in recs:
        if r["id"] == dead:
            r["pid_start"] = "1"  # the same pid, another process: gone
    old_format = {"id": "20200101T000000-00000000", "event": "begin", "at": "x", "ts": time.time() - 7200,
                  "who": "op@h", "action": "restart", "target": {}, "params": {}}
    (tmp_path / "audit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*recs, old_format]))
    assert [e["id"] for e in log.dangling(1800.0)] == [dead, old_format["id"]]
    assert live not in [e["id"] for e in log.dangling(1800.0)]
    # Closed by recover: an end record, not ok, status interrupted, by whom
    log.end(dead, False, error="closed", status="interrupted")
    closed = {e["id"]: e for e in log.read()}[dead]
    assert closed["ok"] is False and closed["status"] == "interrupted" and closed["ended_by"] == "op@h"
