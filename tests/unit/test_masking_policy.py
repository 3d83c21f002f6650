"""One masking rule, the same at every place that shows or stores text (issue 16, item 3).

Each row is a line as a container, a daemon error or an operator might produce it, and how it
must look wherever it appears: the redact function itself, an audit record written from an
action's evidence, the console's detail view (command, labels, env) as Textual draws it, the logs
view, the console's activity line, the audit pane, and the CLI (`berth audit`, a one-line error).
Before, the audit log kept `SESSION_ID=abc` and `Cookie: y` in clear and turned
`Authorization: Bearer x` into `Authorization: *** x`, while the detail view masked otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.content import Content

from console.actions.audit import AuditLog
from console.actions.cli import _err
from console.actions.redact import MASK, mask, mask_env_entry, mask_text
from console.actions.types import Target
from console.cli import main
from console.ui.inspect_view import inspect_sections, log_line
from console.ui.markup import escape
from console.ui.screens.audit import audit_cells

CASES = [
    # (text, masked everywhere)
    ("SESSION_ID=abc", "SESSION_ID=***"),
    ("COOKIE=y", "COOKIE=***"),
    ("Cookie: y", "Cookie: ***"),
    ("Cookie: a=1; theme=dark; sid=9f8e", "Cookie: ***"),
    ("Set-Cookie: sid=s3ssv4l; Path=/; HttpOnly", "Set-Cookie: ***"),
    ("Authorization: Bearer x", "Authorization: ***"),
    ("authorization: Basic dXNlcjpwYXNz", "authorization: ***"),
    ("Proxy-Authorization: Digest username=u, response=r3sp", "Proxy-Authorization: ***"),
    ("X-Api-Key: k3yv4l", "X-Api-Key: ***"),
    ('curl -H "Authorization: Bearer t0k3n" https://api', 'curl -H "Authorization: ***" https://api'),
    ('{"cookie": "sid=1; b=2", "path": "/"}', '{"cookie": "***", "path": "/"}'),
    ("sent Bearer t0k3n upstream", "sent Bearer *** upstream"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl", "jwt ***"),
    ("db_password=hunter2 retry=3", "db_password=*** retry=3"),
    ("connect postgres://app:s3cret@db:5432/x", "connect postgres://app:***@db:5432/x"),
    ("--password hunter2 --user bob", "--password *** --user bob"),
    ("password:hunter2", "password:***"),
    ("pulled berth/auth-proxy:v2 from session-db:5432", "pulled berth/auth-proxy:v2 from session-db:5432"),
    ("GET /api/session 200", "GET /api/session 200"),  # prose, paths, image tags keep their words
    ("token refresh ok", "token refresh ok"),
]
IDS = [text.split()[0][:20] for text, _ in CASES]


@pytest.mark.parametrize("text,masked", CASES, ids=IDS)
def test_the_redact_rule(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert mask_text(masked) == masked  # masking what is masked changes nothing


@pytest.mark.parametrize("text,masked", CASES, ids=IDS)
def test_an_audit_record_of_evidence(text: str, masked: str, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "berth" / "audit.jsonl", user="ops")
    aid = log.begin("isolate", Target("n1", "f" * 64, "web", "t1", "running"), {"reason": text})
    log.end(aid, True, [], text, 0.1, {"evidence": {"logs_tail": f"{text}\n{text}"}})
    begin, end = (json.loads(line) for line in log.path.read_text().splitlines())
    assert begin["params"]["reason"] == masked and end["error"] == masked
    assert end["details"]["evidence"]["logs_tail"] == f"{masked}\n{masked}"


@pytest.mark.parametrize("text,masked", CASES, ids=IDS)
def test_the_detail_view(text: str, masked: str) -> None:
    doc = {"Config": {"Cmd": ["sh", "-c", text], "Labels": {"note": text}, "Env": [f"NOTE={text}"]}}
    sections = dict(inspect_sections(doc))

    def drawn(item: str) -> str:  # what DetailScreen.load_inspect puts on screen
        return Content.from_markup(f"  {escape(item)}").plain

    assert drawn(sections["Command"][0]) == f"  sh -c {masked}"
    assert drawn(sections["Labels"][0]) == f"  note={masked}"
    assert drawn(sections["Env"][0]) == f"  NOTE={masked}"


@pytest.mark.parametrize("text,masked", CASES, ids=IDS)
def test_the_logs_view_the_activity_line_and_the_audit_pane(text: str, masked: str) -> None:
    from console.ui.app import BerthApp

    assert log_line(text) == masked
    app = BerthApp()
    app.activity(f"isolate web on n1 failed: {text}", error=True)
    assert app.last_activity == f"isolate web on n1 failed: {masked}"
    record = {"at": "t", "who": "ops", "action": "isolate", "ok": False, "target": {"node": "n1"}, "error": text}
    assert audit_cells(record)[-1].plain == masked  # even a record written before the rule
    from types import SimpleNamespace

    from console.ui.screens.recovery import RecoveryScreen

    journal = SimpleNamespace(describe=lambda: "a1 migrate web n1 -> n2", outcome=text)
    assert Content.from_markup(RecoveryScreen._text(journal)).plain.endswith(f"last known: {masked}")


@pytest.mark.parametrize("text,masked", CASES, ids=IDS)
def test_the_cli(text: str, masked: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
    _err(f"isolate n1/web failed: {text}")
    assert capsys.readouterr().err == f"berth: isolate n1/web failed: {masked}\n"

    # `berth audit`, on a record written before this rule (so not masked on disk)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "berth").mkdir(mode=0o700)
    path = tmp_path / "berth" / "audit.jsonl"
    path.write_text(json.dumps({"id": "a1", "event": "begin", "at": "t", "who": "ops", "action": "isolate",
                                "target": {"node": "n1", "id": "x", "name": "web"}, "params": {}}) + "\n"
                    + json.dumps({"id": "a1", "event": "end", "at": "t", "ok": False, "error": text,
                                  "details": {"evidence": {"logs_tail": text}}}) + "\n")
    os.chmod(path, 0o600)
    assert main(["audit"]) == 0
    assert capsys.readouterr().out.rstrip("\n").endswith(f"— {masked}")
    assert main(["audit", "--json"]) == 0
    [entry] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert entry["error"] == masked and entry["details"]["evidence"]["logs_tail"] == masked


def test_env_entries_follow_the_same_rule_by_name() -> None:
    assert mask_env_entry("SESSION_ID=abc") == "SESSION_ID=***"
    assert mask_env_entry("COOKIE=a=1; b=2") == "COOKIE=***"
    assert mask_env_entry("HTTP_AUTHORIZATION=Bearer x") == "HTTP_AUTHORIZATION=***"
    assert mask_env_entry("BLOB=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo") == f"BLOB={MASK}"
    assert mask_env_entry("MODE=prod") == "MODE=prod"
    assert mask({"Env": ["SESSION_ID=abc", "MODE=prod"]}) == {"Env": ["SESSION_ID=***", "MODE=prod"]}


# -- any line, any secret-looking name ---------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

names = st.sampled_from(["SESSION_ID", "COOKIE", "db_password", "API_KEY", "GITHUB_TOKEN", "X-Auth-Token",
                         "client_secret", "csrftoken", "Cookie", "Authorization", "Set-Cookie"])
values = st.from_regex(r"\A[A-Za-z0-9]{6,16}\Z")
seps = st.sampled_from(["=", ": ", " = ", ":\t"])
words = st.lists(st.sampled_from(["GET", "/v1/items", "200", "user=bob", "ok", "ms=12", "retry", "->"]), max_size=4)


@settings(max_examples=300, deadline=None)
@given(names, seps, values, words, words)
def test_a_secret_value_never_survives_in_any_line(name, sep, value, before, after):
    line = " ".join([*before, f"{name}{sep}{value}", *after])
    masked = mask_text(line)
    assert value not in masked
    assert mask_text(masked) == masked
    assert log_line(line) == masked.expandtabs(8)  # the logs view shows what the audit log keeps


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_masking_any_text_never_raises_and_is_idempotent(text):
    masked = mask_text(text)
    assert mask_text(masked) == masked


async def test_the_detail_screen_as_drawn_masks_every_case() -> None:
    """The same rows through the real DetailScreen (inspect from an engine double), read off the screen."""
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
    from screen_text import screen_text
    from uifakes import INSPECT_DOC, FakeEngine, make_app

    from console.ui.screens.detail import DetailScreen

    class Engine(FakeEngine):
        async def inspect(self, cid: str) -> dict:
            doc = dict(INSPECT_DOC)
            doc["Config"] = {**INSPECT_DOC["Config"], "Cmd": ["run"],
                             "Labels": {f"note{i:02d}": text for i, (text, _) in enumerate(CASES)},
                             "Env": [f"NOTE{i:02d}={text}" for i, (text, _) in enumerate(CASES)]}
            return doc

    app = make_app(engine=Engine)
    async with app.run_test(size=(200, 120)) as pilot:
        app.open_detail(app.snapshot.containers[0])
        deadline = time.monotonic() + 60
        while not (isinstance(app.screen, DetailScreen) and "NOTE00=" in screen_text(app)):
            assert time.monotonic() < deadline, "the detail screen's inspect data"
            await pilot.pause(0.05)
        lines = [line.strip() for line in screen_text(app).splitlines()]
        for i, (_, masked) in enumerate(CASES):
            assert f"note{i:02d}={masked}" in lines and f"NOTE{i:02d}={masked}" in lines, (i, masked)
