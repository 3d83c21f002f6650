"""Text from outside Berth reaches the screen literally and harmlessly.

- ctrl+p must not crash: the palette renders titles and help as Textual markup, and the `/` key's
  help once said `[/]` (issue 17: MarkupError, the console exited).
- Names, tenants, labels, log lines and errors are shown as written when they look like markup
  (`[/]`, `[bold]`, `[$accent]`), and with control characters and bidi overrides escaped (`\\x1b`,
  `\\u202e`) when they carry them (issue 16: a tenant label cleared the screen).
"""

from __future__ import annotations

import time
from dataclasses import replace

import fleetdata
import pytest
from screen_text import screen_text
from textual.command import CommandInput, CommandList, CommandPalette
from uifakes import INSPECT_DOC, FakeEngine, frame, make_app

from console.fleet import density
from console.ui.registry import COMMANDS
from console.ui.screens.alerts import AlertsScreen
from console.ui.screens.audit import audit_cells
from console.ui.screens.detail import DetailScreen, facts_markup
from console.ui.screens.logs import LogsScreen

UNSAFE = ("\x1b", "\x07", "\x08", "\r", "\u202e", "\u2066", "\u200f", "\x9b")
EVIL_TENANT = "evil\x1b[2J\x1b]0;PWNED\x07\u202eslbl"
MARKUP_TENANT = "[/]team[bold]"
MARKUP_NAME = "web[$accent]-[/]1"


async def until(pilot, condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def hostile_fleet():
    """The standard fleet with two hostile tenants and a markup-looking container name."""
    snap = fleetdata.fleet()
    containers = list(snap.containers)
    containers[0] = replace(containers[0], tenant=EVIL_TENANT, labels=(("tenant", EVIL_TENANT),),
                            image="img\x1b[31m:1", status="Up\rDOWN")
    containers[1] = replace(containers[1], name=MARKUP_NAME, tenant=MARKUP_TENANT,
                            labels=(("tenant", MARKUP_TENANT),))
    return replace(snap, containers=tuple(containers), tenants=density.tenants(containers, fleetdata.QUOTAS))


def assert_safe(text: str) -> None:
    for ch in UNSAFE:
        assert ch not in text, f"raw {ch!r} on screen:\n{text}"


async def test_palette_searches_every_command_without_crashing():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        palette = app.screen
        for c in COMMANDS:
            if c.id == "palette":
                continue
            palette.query_one(CommandInput).value = c.label
            await until(pilot, lambda c=c: any(
                c.label in str(o.prompt) for o in palette.query_one(CommandList).options), f"a hit for {c.label}")
            assert app.is_running and app.screen is palette
        # the `/` key's help, the one that crashed: shown with its key
        palette.query_one(CommandInput).value = "Filter"
        await until(pilot, lambda: "-negation  [/]" in screen_text(app), "the filter help with its key")


async def test_palette_shows_a_markup_tenant_literally():
    app = make_app()
    app.snapshot = hostile_fleet()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        app.screen.query_one(CommandInput).value = "Tenant"
        await until(pilot, lambda: "Tenant: [/]team[bold]" in screen_text(app), "the tenant, literally")
        assert_safe(screen_text(app))
        app.screen.query_one(CommandInput).value = "evil"
        await until(pilot, lambda: "Tenant: evil\\x1b[2J" in screen_text(app), "the evil tenant, escaped")
        assert_safe(screen_text(app))


async def test_tables_show_markup_and_escapes_literally():
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        app.apply_snapshot(hostile_fleet())
        await pilot.press("2")
        app.fleet.pane.set_filter("tenant:evil")
        await pilot.pause()
        text = screen_text(app)
        # the cells are narrow: the escaped text is cut (in the middle), its ends still show the escapes
        assert "evil\\x1" in text and "202eslbl" in text, text
        assert "img\\x1b[31m:1" in text
        assert_safe(text)
        app.fleet.pane.set_filter("accent")
        await pilot.pause()
        assert MARKUP_NAME in screen_text(app)
        await pilot.press("3")
        await pilot.pause()
        text = screen_text(app)
        assert "[/]team[bold]" in text
        assert_safe(text)


async def test_detail_logs_and_alerts_show_engine_text_escaped():
    snap = hostile_fleet()
    evil = snap.containers[0]
    app = make_app(engine=EvilEngine)
    app.snapshot = snap
    async with app.run_test(size=(160, 48)) as pilot:
        app.apply_snapshot(snap)
        app.open_detail(evil)
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and "Labels" in screen_text(app),
                    "the detail view with inspect data")
        text = screen_text(app)
        assert_safe(text)
        assert "tenant=evil\\x1b[2J" in text
        # the daemon's status text shows while the container is not running (running: the uptime row)
        assert "Up\\rDOWN" in facts_markup(replace(evil, state="exited"), app.context())
        assert "echo \\x1b]0;title\\x07" in text and "[b]not bold[/b]" in text
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and "after" in screen_text(app), "log lines")
        text = screen_text(app)
        assert_safe(text)
        assert "before\\x1b[2Jafter" in text and "\\u202ereversed" in text
        await pilot.press("escape", "escape")
        app.push_screen(AlertsScreen([a for a in app.alerts]))
        await pilot.pause()
        assert_safe(screen_text(app))


async def test_activity_line_and_toasts_escape_engine_errors():
    app = make_app()
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        app.activity("restart x failed: daemon said \x1b[2J[/]\u202eboom", error=True)
        await pilot.pause()
        text = screen_text(app)
        assert_safe(text)
        assert "\\x1b[2J[/]\\u202eboom" in text


def test_audit_pane_cells_are_plain_text_not_markup():
    cells = audit_cells({"at": "t", "who": "ops", "action": "restart", "ok": False,
                         "target": {"node": "n1", "id": "x", "name": "[/]web"}, "error": "boom \x1b[2J [bold]"})
    assert [c.plain for c in cells][3] == "n1/[/]web"
    assert cells[-1].plain == "boom \\x1b[2J [bold]"


class EvilEngine(FakeEngine):
    async def inspect(self, cid: str):
        doc = dict(INSPECT_DOC)
        cfg = dict(doc["Config"])
        cfg["Labels"] = {"tenant": EVIL_TENANT, "note": "[b]not bold[/b]"}
        cfg["Cmd"] = ["sh", "-c", "echo \x1b]0;title\x07"]
        cfg["Env"] = ["GREETING=hi\x1b[5m", "MODE=prod"]
        doc["Config"] = cfg
        return doc

    async def log_chunks(self, cid: str, tail: int = 200, follow: bool = True):
        yield frame(1, "before\x1b[2Jafter\n\u202ereversed\n")


@pytest.mark.parametrize("text", ["[/]", "[bold]x", "[$accent]y", "[Bold]", "[ x]", "a\\", "\x1b[2J", "\u202e"])
def test_markup_escape_keeps_every_string_literal(text):
    from textual.content import Content

    from console.fmt import printable
    from console.ui.markup import escape

    assert Content.from_markup(f"[b]{escape(text)}[/b]").plain.rstrip(" ") == printable(text)


class BrokenLogsEngine(FakeEngine):
    async def log_chunks(self, cid: str, tail: int = 200, follow: bool = True):
        yield frame(1, "one line\n")
        raise RuntimeError("daemon said [/]\x1b[2J Authorization: Bearer t0k3n")


async def test_a_logs_stream_error_is_shown_escaped_and_masked():
    app = make_app(engine=BrokenLogsEngine)
    async with app.run_test(size=(160, 30)) as pilot:
        app.push_screen(LogsScreen(fleetdata.fleet().containers[0], "Containers", app.feed))
        await until(pilot, lambda: "error:" in screen_text(app), "the stream's error in the status line")
        text = screen_text(app)
        assert_safe(text)
        assert "daemon said [/]\\x1b[2J Authorization: ***" in text and "t0k3n" not in text


def test_the_ui_escapes_markup_only_through_console_ui_markup():
    """rich.markup.escape misses what Textual's markup parses ([$var], [Bold], '[ x]'): no screen uses it."""
    from pathlib import Path

    import console.ui

    root = Path(console.ui.__file__).parent
    users = [str(p.relative_to(root)) for p in root.rglob("*.py")
             if "from rich.markup import escape" in p.read_text() or "rich.markup.escape(" in p.read_text()]
    assert users == []
