"""An isolate's evidence keeps no secret a container printed (issue 16, item 3), on a real dockerd.

Given a container whose logs carry a session id, cookies and a bearer token (in the shapes a
web server logs them), when it is isolated, then the audit record's evidence.logs_tail shows each
of them masked whole, as the console's logs view and `berth audit` show them, and the audit file
holds none of the secret values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from action_helpers import run
from dockerlab import Lab

from console.actions import Actions, AuditLog
from console.config import Inventory
from console.ui.inspect_view import log_line

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]

LINES = {  # what the container prints -> how every place must show it
    "SESSION_ID=abc": "SESSION_ID=***",
    "COOKIE=y": "COOKIE=***",
    "Cookie: y": "Cookie: ***",
    "Authorization: Bearer x": "Authorization: ***",
    "Set-Cookie: sid=s3ssv4l; Path=/; HttpOnly": "Set-Cookie: ***",
    "Proxy-Authorization: Basic cHJveHk6cHc=": "Proxy-Authorization: ***",
    "GET /orders 200": "GET /orders 200",
}


async def test_isolate_evidence_keeps_no_secret_the_container_logged(lab: Lab, inventory: Inventory) -> None:
    script = "".join(f"echo '{line}'; " for line in LINES) + "exec sleep 1000000"
    run(lab, "lab-n1", "leaky", cmd=["sh", "-c", script], network="bridge")
    audit = AuditLog(user="tester@lab")  # the default place ($XDG_STATE_HOME, private to this test): `berth audit` reads it
    actions = Actions(inventory, audit=audit)
    try:
        result = await actions.execute(await actions.plan("isolate", "leaky", reason="leaking cookies"))
        assert result.ok, result.message
        undo = await actions.execute(await actions.plan("unisolate", "leaky"))  # the lab's sweep needs it gone
        assert undo.ok, undo.message
    finally:
        await actions.aclose()

    raw = audit.path.read_text()
    [end] = [r for r in map(json.loads, raw.splitlines()) if r["event"] == "end" and r["details"].get("evidence")]
    tail = end["details"]["evidence"]["logs_tail"].splitlines()
    assert tail == list(LINES.values())  # each masked whole, and the same as the logs view shows it
    assert [log_line(line) for line in LINES] == tail
    for secret in ("abc", "Bearer x", "s3ssv4l", "cHJveHk6cHc=", "COOKIE=y", "Cookie: y"):
        assert secret not in raw, secret

    shown = subprocess.run([sys.executable, "-m", "console", "audit", "--json"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert shown.returncode == 0, shown.stderr
    [entry] = [e for e in map(json.loads, shown.stdout.splitlines()) if e["action"] == "isolate"]
    assert entry["details"]["evidence"]["logs_tail"].splitlines() == tail
