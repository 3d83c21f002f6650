"""`ssh berth-host status`: engine text reaches the remote caller's terminal escaped, as with `berth status`
(issue 16, item 1), and `--json` keeps it exact. The command runs as the server runs it
(remote.run_command), on a fleet whose tenant label carries a screen clear and a bidi override."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))

import fleetdata  # noqa: E402

from console.actions.cli import Caller  # noqa: E402
from console.fleet import density  # noqa: E402
from console.identity import Identity  # noqa: E402
from console.serve.remote import run_command  # noqa: E402

EVIL = "evil\x1b[2J\x1b]0;PWNED\x07\u202eslbl\x85"


def hostile_server() -> SimpleNamespace:
    snap = fleetdata.fleet()
    containers = list(snap.containers)
    containers[0] = replace(containers[0], tenant=EVIL, labels=(("tenant", EVIL),))
    snap = replace(snap, containers=tuple(containers), tenants=density.tenants(containers, fleetdata.QUOTAS))
    return SimpleNamespace(feed=SimpleNamespace(latest=snap))


def run(command: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_command(command, hostile_server(), Identity("alice", "operator"), Caller(out, err, None))
    return code, out.getvalue(), err.getvalue()


def test_remote_status_tables_show_engine_text_escaped() -> None:
    code, out, _ = run("status --timeout 1")
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out and "\x85" not in out
    assert "evil\\x1b[2J\\x1b]0;PWNED\\x07\\u202eslbl\\x85" in out


def test_remote_status_json_is_exact_and_escaped() -> None:
    code, out, _ = run("status --json --timeout 1")
    assert "\x1b" not in out and "\u202e" not in out and "\x85" not in out
    doc = json.loads(out)
    assert EVIL in [c["tenant"] for c in doc["containers"]]
