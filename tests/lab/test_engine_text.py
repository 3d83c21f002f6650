"""Engine text on a real dockerd reaches the terminal escaped (issue 16, item 1).

Given a container started by anyone who can start one, whose tenant label, other labels, env,
command and log output carry a screen clear, a window-title change, a bell and a bidi override,
when `berth status` prints it and the console (in tmux) shows it on every pane that names it,
then no raw ESC, BEL or bidi character reaches the terminal, each is shown escaped (`\\x1b`,
`\\u202e`), the screen keeps its header and title, and `--json` carries the exact label value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from dockerlab import BUSYBOX_REF, FAST_STOP_TIMEOUT, Lab
from labgate import require_lab
from support.tmux import Tmux

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]

EVIL_TENANT = "evil\x1b[2J\x1b]0;PWNED\x07\u202eslbl"
EVIL_LABEL = "x\x08\x08\x08\r[/]\u2066y"
ENV = ["GREETING=hi\x1b[5mblink", "MODE=prod"]
# busybox printf: \033 is ESC, \007 BEL, \342\200\256 is U+202E in UTF-8
LOG_SCRIPT = r"printf 'before\033[2Jafter\n\342\200\256reversed\n'; exec sleep 1000000"
UNSAFE = ("\x1b", "\x07", "\x08", "\r", "\u202e", "\u2066")


@pytest.fixture(scope="module")
def text_lab() -> Iterator[tuple[Lab, str]]:
    require_lab(None if shutil.which("tmux") else "tmux not installed (apt-get install tmux)")
    lab = Lab(1, prefix="berth-text-lab-")
    try:
        lab.start()
        lab.import_image()
        node = lab.nodes[0]
        with closing(node.client()) as client:  # run_container has no env: the SDK's create, the lab's way
            api = client.api
            created = api.create_container(
                BUSYBOX_REF, ["sh", "-c", LOG_SCRIPT + " # \x1b]0;cmd-title\x07"], name="hostile",
                labels={"tenant": EVIL_TENANT, "note": EVIL_LABEL}, environment=ENV,
                stop_timeout=FAST_STOP_TIMEOUT, host_config=api.create_host_config(init=True))
            api.start(created["Id"])
        yield lab, node.name
    finally:
        lab.close()


def berth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=REPO, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def assert_no_raw(data: str, where: str) -> None:
    for ch in UNSAFE:
        assert ch not in data, f"raw {ch!r} in {where}:\n{data!r}"


def test_status_prints_engine_text_escaped_and_json_keeps_it_exact(text_lab, tmp_path: Path) -> None:
    lab, _ = text_lab
    inventory = lab.write_inventory(tmp_path / "inventory.toml")
    table = berth("status", "--inventory", str(inventory), "--timeout", "30")
    out = table.stdout.decode()
    assert table.returncode == 0, table.stderr.decode()
    assert_no_raw(out, "berth status")
    assert "evil\\x1b[2J\\x1b]0;PWNED\\x07\\u202eslbl" in out, out

    raw = berth("status", "--inventory", str(inventory), "--json", "--timeout", "30")
    assert raw.returncode == 0, raw.stderr.decode()
    assert_no_raw(raw.stdout.decode(), "berth status --json")
    doc = json.loads(raw.stdout)
    [hostile] = [c for c in doc["containers"] if c["name"] == "hostile"]
    assert hostile["tenant"] == EVIL_TENANT
    assert [t["name"] for t in doc["tenants"]] == [EVIL_TENANT]


def test_an_action_plan_and_its_refusal_print_engine_text_escaped(text_lab, tmp_path: Path) -> None:
    lab, _ = text_lab
    inventory = lab.write_inventory(tmp_path / "inventory.toml")
    refused = berth("restart", "hostile", "--inventory", str(inventory), env={"XDG_STATE_HOME": str(tmp_path)})
    out, err = refused.stdout.decode(), refused.stderr.decode()
    assert refused.returncode == 3, err  # no terminal on stdin and no --yes: refused, nothing changed
    assert_no_raw(out + err, "berth restart's plan and refusal")
    assert "evil\\x1b[2J\\x1b]0;PWNED\\x07\\u202eslbl" in out, out
    assert len(err.splitlines()) == 1 and err.startswith("berth: restart needs confirmation"), err


def test_console_shows_engine_text_escaped_on_every_pane(text_lab, tmp_path: Path) -> None:
    lab, node = text_lab
    inventory = lab.write_inventory(tmp_path / "inventory.toml")
    term = Tmux(f"berth-text-{os.getpid()}", 160, 48,
                f"env -u COLUMNS -u LINES XDG_STATE_HOME={tmp_path} PYTHONPATH={REPO} {sys.executable} -m console "
                f"--inventory {inventory}; sleep 60")
    try:
        def intact(s: str) -> bool:  # the header survives: nothing cleared the screen under it
            return s.lstrip().startswith("berth") and "nodes 1/1" in s

        screen = term.wait_for("the tenants pane naming the evil tenant, escaped",
                               lambda s: intact(s) and "evil\\x1" in s and "202eslbl" in s)  # cut in the middle
        term.send("2")
        screen = term.wait_for("the hostile container with its tenant escaped",
                               lambda s: intact(s) and "hostile" in s and "2 Containers" in s)
        term.send("Enter")  # the only container, under the cursor
        screen = term.wait_for("the detail view with labels, env and command",
                               lambda s: intact(s) and "Labels" in s and "GREETING" in s)
        assert "tenant=evil\\x1b[2J\\x1b]0;PWNED\\x07\\u202eslbl" in screen, screen
        assert "note=x\\x08\\x08\\x08\\r[/]\\u2066y" in screen, screen
        assert "GREETING=hi\\x1b[5mblink" in screen and "\\x1b]0;cmd-title\\x07" in screen, screen
        term.send("l")
        screen = term.wait_for("the log lines, escaped", lambda s: "› logs" in s and "reversed" in s)
        assert "before\\x1b[2Jafter" in screen and "\\u202ereversed" in screen, screen
        assert "PWNED" not in term.title() and "cmd-title" not in term.title()
        term.send("q")
    finally:
        term.kill()
