"""Streaming logs: tail 200 then follow, in a worker; `f` toggles follow, `/` searches."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Log, Static

from console.actions.redact import mask_text
from console.fleet.model import ContainerSnapshot
from console.ports import FleetFeed
from console.ui.inspect_view import FrameDecoder, log_line
from console.ui.markup import escape
from console.ui.widgets.footer import StableFooter

MAX_LINES = 20_000


class LogView(Log):
    pass


class LogsScreen(Screen[None]):
    DEFAULT_CSS = """
    LogsScreen { layout: vertical; }
    LogsScreen LogView { height: 1fr; }
    LogsScreen #log-status { height: 1; }
    LogsScreen #log-search { height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow", show=True),
        Binding("slash", "search", "Search", show=True, key_display="/"),
        Binding("escape", "back", "Back", show=True, key_display="esc", priority=False),
    ]

    class Lines(Message):
        def __init__(self, lines: list[tuple[int, str]]) -> None:
            super().__init__()
            self.lines = lines

    class Ended(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self, container: ContainerSnapshot, crumb: str, feed: FleetFeed | None = None,
                 tty: bool = False) -> None:
        super().__init__()
        self.feed = feed
        self.container = container
        self.crumb = crumb
        self.tty = tty
        self.follow = True
        self.needle = ""
        self.buffer: deque[str] = deque(maxlen=MAX_LINES)
        self.state = "connecting"

    def compose(self) -> ComposeResult:
        yield Static(f"{escape(self.crumb)} › [b]{escape(self.container.name)}[/] › logs", classes="detail--title")
        yield LogView(max_lines=MAX_LINES, auto_scroll=True, id="log")
        yield Input(id="log-search", classes="command-input", placeholder="search logs (enter keeps, esc clears)")
        yield Static("", id="log-status")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one("#log-search").display = False
        self._status()
        self.query_one(LogView).focus()
        self.stream()

    def _status(self) -> None:
        count = f"{len(self.buffer)} lines"
        if not self.buffer and self.state in ("connecting", "streaming"):
            count = "loading… (a stopped container's logs can take seconds)"
        # the state can be the daemon's error: masked and escaped like any engine text
        parts = [mask_text(self.state), "following" if self.follow else "paused (f follows)", count]
        if self.needle:
            parts.append(f"search “{self.needle}”")
        self.query_one("#log-status", Static).update("[$text-muted]" + escape(" · ".join(parts)) + "[/]")

    @work(exclusive=True, group="logs")
    async def stream(self) -> None:
        feed = self.feed
        if feed is None or feed.reads is not None:
            self.state = (feed.reads if feed is not None else None) or "no engine connection (test or demo data)"
            self._status()
            return
        decoder = FrameDecoder(tty=self.tty)
        screen = self

        def on_chunk(chunk: bytes) -> None:
            # On the feed's thread. Each chunk's whole lines go out as they come: holding them for a
            # later chunk left a quiet container's last lines (often all of them) unshown while it stayed quiet.
            lines = decoder.feed(chunk)
            if lines:
                screen.post_message(screen.Lines(lines))

        self.state = "streaming"
        self._status()
        try:
            await feed.follow_logs(self.container.node, self.container.id, on_chunk)
            rest = decoder.flush()
            if rest:
                self.post_message(self.Lines(rest))
            self.post_message(self.Ended("stream closed (container stopped?)"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # EngineError: shown as state
            self.post_message(self.Ended(f"error: {exc}"))

    def on_logs_screen_lines(self, message: Lines) -> None:
        log = self.query_one(LogView)
        new = [log_line(line) for _, line in message.lines]
        self.buffer.extend(new)
        shown = [line for line in new if self.needle.lower() in line.lower()] if self.needle else new
        if shown:
            log.write_lines(shown, scroll_end=self.follow)
        self._status()

    def on_logs_screen_ended(self, message: Ended) -> None:
        self.state = message.reason
        self._status()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one(LogView)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self._status()

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.value = self.needle
        box.display = True
        self.set_focus(box)  # now: the keys queued behind `/` are the search's (see BerthApp.on_event)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._apply_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply_search(event.value)
        event.input.display = False
        self.query_one(LogView).focus()

    def _apply_search(self, needle: str) -> None:
        self.needle = needle.strip()
        log = self.query_one(LogView)
        log.clear()
        n = self.needle.lower()
        log.write_lines([line for line in self.buffer if n in line.lower()] if n else list(self.buffer),
                        scroll_end=self.follow)
        self._status()

    def action_back(self) -> None:
        """Esc: close the search line, else clear a kept search, else leave."""
        box = self.query_one("#log-search", Input)
        if box.display:
            box.display = False
            if self.needle:
                self._apply_search("")
            self.query_one(LogView).focus()
            return
        if self.needle:
            self._apply_search("")
            return
        self.dismiss(None)
