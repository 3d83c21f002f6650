"""One person's console in the server process: a Textual app on its own thread, drawn through a driver
bound to a remote terminal instead of this process's tty.

Door-independent: a front door (SSH today, a websocket tomorrow) gives a ``Session`` an ``Output``
(bytes to the client, and how many are still queued for it), the terminal's type and size, and then
feeds it the client's input bytes and resizes. The door never touches Textual; the app never touches
the door.

Frames and slow clients: Textual writes a frame as a few ``write`` calls ended by ``flush``; the
driver sends each frame whole or not at all. While the client has more than ``HIGH_WATER`` bytes
queued, frames are skipped (the client loses frames, the server keeps no growing buffer, other
sessions never wait); once the queue is below ``LOW_WATER`` again, one full repaint brings the screen
back to the truth.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from codecs import getincrementaldecoder
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from rich.console import Console
from textual import events
from textual._xterm_parser import XTermParser
from textual.app import App
from textual.driver import Driver
from textual.geometry import Size

log = logging.getLogger(__name__)

HIGH_WATER = 256 * 1024  # bytes queued for a client beyond which frames are skipped
LOW_WATER = 32 * 1024  # ... and below which the screen is repainted in full
MAX_PENDING_INPUT = 64 * 1024  # input bytes waiting for the app; beyond, input is dropped (a flood, not typing)
MAX_WIDTH, MAX_HEIGHT = 1000, 400  # a wall is big; a client claiming more is not believed
ESCAPE_TIMEOUT = 0.1  # a lone ESC is a key once this long passes without the rest of a sequence


class Output(Protocol):
    """The door's side: where frames go. Both methods are called from the session's thread."""

    def send(self, data: bytes) -> None:
        """Queue ``data`` for the client; never blocks."""

    def backlog(self) -> int:
        """Bytes queued and not yet taken by the client (in flight to the door plus its own buffer)."""


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    width: int = 80
    height: int = 24
    term: str = "xterm-256color"  # the client's TERM (SSH pty-req)
    colorterm: str = ""  # COLORTERM when the client sent it (truecolor, 24bit)

    def clamped(self) -> tuple[int, int]:
        return clamp_size(self.width, self.height)


def clamp_size(width: int, height: int) -> tuple[int, int]:
    return max(10, min(int(width or 80), MAX_WIDTH)), max(5, min(int(height or 24), MAX_HEIGHT))


@dataclass
class SessionStats:
    frames_sent: int = 0
    frames_skipped: int = 0
    repaints: int = 0
    bytes_sent: int = 0
    input_dropped: int = 0


class SessionDriver(Driver):
    """A Textual driver whose terminal is a ``Session``: input arrives as bytes from the door, frames
    leave through the session's ``Output``. Everything here runs on the app's own event loop."""

    session: ClassVar[Session]

    @classmethod
    def bound(cls, session: Session) -> type[SessionDriver]:
        return type("BoundSessionDriver", (cls,), {"session": session})

    def __init__(self, app: App[Any], *, debug: bool = False, mouse: bool = True,
                 size: tuple[int, int] | None = None) -> None:
        super().__init__(app, debug=debug, mouse=mouse, size=size or self.session.size)
        self._frame: list[str] = []
        self._parser: XTermParser = XTermParser(debug)
        self._decode = getincrementaldecoder("utf-8")(errors="replace").decode
        self._tick: asyncio.TimerHandle | None = None
        self._skipping = False
        self._drain_watch: asyncio.TimerHandle | None = None
        self._input = False

    # -- output ----------------------------------------------------------------------------

    def write(self, data: str) -> None:
        self._frame.append(data)

    def flush(self) -> None:
        if not self._frame:
            return
        data = "".join(self._frame).encode("utf-8", "replace")
        self._frame.clear()
        session = self.session
        if self._skipping or session.output.backlog() > HIGH_WATER:
            session.stats.frames_skipped += 1
            if not self._skipping:
                self._skipping = True
                self._watch_drain()
            return
        session.stats.frames_sent += 1
        session.stats.bytes_sent += len(data)
        session.output.send(data)

    def _watch_drain(self) -> None:
        """While skipping: look again shortly; once the client has caught up, repaint everything."""
        self._drain_watch = None
        if not self._skipping or self.session.ended:
            return
        if self.session.output.backlog() <= LOW_WATER:
            self._skipping = False
            self.session.stats.repaints += 1
            log.info("%s: the client caught up (%d frames skipped so far): full repaint", self.session.name,
                     self.session.stats.frames_skipped)
            self._app.refresh(repaint=True, layout=True)
            return
        self._drain_watch = self._loop.call_later(0.05, self._watch_drain)

    # -- application mode ----------------------------------------------------------------

    def start_application_mode(self) -> None:
        width, height = self.session.size
        write = self.write
        write("\x1b[?1049h")  # alternate screen
        if self._mouse:
            write("\x1b[?1000h\x1b[?1003h\x1b[?1015h\x1b[?1006h")
        write("\x1b[?25l")  # hide the cursor
        write("\x1b[?1004h")  # focus in/out
        write("\x1b[?2004h")  # bracketed paste
        write("\x1b[?7l")  # no line wrap
        write("\033[?2026$p")  # does the terminal do synchronized output? (the answer arrives as input)
        self.flush()
        size = Size(width, height)
        self._app.post_message(events.Resize(size, size))
        self._input = True
        self.session.driver_started(self)

    def disable_input(self) -> None:
        self._input = False

    def stop_application_mode(self) -> None:
        self.disable_input()
        for handle in (self._tick, self._drain_watch):
            if handle is not None:
                handle.cancel()
        self._skipping = False
        write = self.write
        if self._mouse:
            write("\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l")
        write("\x1b[?2004l\x1b[?7h\x1b[?1004l")
        write("\x1b[?1049l\x1b[?25h")  # main screen, cursor back
        self.flush()

    # -- input (called on the app loop by Session.feed / Session.resize) --------------------

    def feed(self, data: bytes) -> None:
        self.session.consumed(len(data))
        if not self._input:
            return
        text = self._decode(data)
        if not text:  # half a UTF-8 character: the rest comes with the next bytes (and "" would mean EOF)
            return
        try:
            for event in self._parser.feed(text):
                self.process_message(event)
        except Exception:
            log.debug("unparseable input on %s; parser reset", self.session.name, exc_info=True)
            self._parser = XTermParser(self._debug)
        if self._tick is None:
            self._tick = self._loop.call_later(ESCAPE_TIMEOUT, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        try:
            for event in self._parser.tick():
                self.process_message(event)
        except Exception:  # noqa: BLE001 - as in feed
            self._parser = XTermParser(self._debug)

    def resize(self, width: int, height: int) -> None:
        self._size = (width, height)
        size = Size(width, height)
        self._app.post_message(events.Resize(size, size))

    def send_message(self, message: Any) -> None:
        """On the app's loop already: post directly (the base class hops through another thread-safe call)."""
        self._app.post_message(message)


@dataclass(eq=False)  # a session is itself, not its fields: kept in sets
class Session:
    """A console for one person, on its own thread. ``make_app`` builds the app on that thread."""

    name: str
    make_app: Callable[[], App[Any]]
    output: Output
    terminal: TerminalInfo = field(default_factory=TerminalInfo)
    on_end: Callable[[Session], None] | None = None
    stats: SessionStats = field(default_factory=SessionStats)

    def __post_init__(self) -> None:
        self.size = self.terminal.clamped()
        self.app: App[Any] | None = None
        self.ended = False
        self.error: str | None = None
        self.return_code: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: SessionDriver | None = None
        self._pending: list[bytes] = []  # input that arrived before the driver could take it
        self._pending_size = 0
        self._inflight = 0  # input bytes handed to the app loop and not yet parsed
        self._closing = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"berth-session-{self.name}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            app = self.make_app()
            app.driver_class = SessionDriver.bound(self)
            app.console = self._console(app)
            self.app = app
            self.return_code = asyncio.run(self._run(app))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("session %s failed", self.name)
        finally:
            with self._lock:
                self.ended = True
                self._driver = None
                self._loop = None
            self._done.set()
            if self.on_end is not None:
                try:
                    self.on_end(self)
                except Exception:
                    log.exception("session %s: end callback failed", self.name)

    async def _run(self, app: App[Any]) -> int | None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            closing = self._closing
        if closing:
            return None
        result = await app.run_async(size=self.size)
        return result if isinstance(result, int) else app.return_code

    def _console(self, app: App[Any]) -> Console:
        """Textual's console, with the client's terminal deciding the colour depth (not the server's)."""
        old = app.console
        environ = {"TERM": self.terminal.term or "xterm"}
        if self.terminal.colorterm:
            environ["COLORTERM"] = self.terminal.colorterm
        return Console(color_system="auto", file=old.file, markup=True, highlight=False, emoji=False,
                       legacy_windows=False, _environ=environ, force_terminal=True, safe_box=False,
                       soft_wrap=False)

    def driver_started(self, driver: SessionDriver) -> None:
        with self._lock:
            self._driver = driver
            pending, self._pending, self._pending_size = self._pending, [], 0
        for data in pending:
            driver.feed(data)

    def close(self) -> None:
        """End the app (from any thread); the session's thread then finishes and calls ``on_end``."""
        with self._lock:
            self._closing = True
            loop, app = self._loop, self.app
        if loop is not None and app is not None:
            try:
                loop.call_soon_threadsafe(app.exit)
            except RuntimeError:  # the loop closed meanwhile: the app has ended
                pass

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # -- from the door (any thread) -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        with self._lock:
            driver, loop = self._driver, self._loop
            if driver is None or loop is None:
                if self._pending_size + len(data) <= MAX_PENDING_INPUT:
                    self._pending.append(bytes(data))
                    self._pending_size += len(data)
                else:
                    self.stats.input_dropped += len(data)
                return
            if self._inflight + len(data) > MAX_PENDING_INPUT:  # the app is not keeping up: a flood
                self.stats.input_dropped += len(data)
                return
            self._inflight += len(data)
        try:
            loop.call_soon_threadsafe(driver.feed, bytes(data))
        except RuntimeError:
            pass

    def consumed(self, size: int) -> None:
        with self._lock:
            self._inflight -= size

    def resize(self, width: int, height: int) -> None:
        self.size = clamp_size(width, height)
        with self._lock:
            driver, loop = self._driver, self._loop
        if driver is not None and loop is not None:
            try:
                loop.call_soon_threadsafe(driver.resize, *self.size)
            except RuntimeError:
                pass
