"""The SSH front door (asyncssh): the key decides who you are, and the server decides what you may do.

* Public-key authentication only (no password, no keyboard-interactive, no host-based, no GSS). A key
  not listed under ``[[user]]`` is refused; a listed key logs in only under its own user's name.
* ``ssh -p 2222 alice@host`` (a pty and a shell) opens the full console, drawn through a
  ``console.serve.session.Session``; ``ssh ... alice@host status --json`` (an exec request) runs the
  verb in the server as alice (console.serve.remote). No port forwarding, agent, X11 or subsystems.
* Failed logins are logged and limited per client address: a connection that refused a key and ended
  without logging in is a failed login; after ``FAILS_PER_ADDRESS`` of them within ``FAIL_WINDOW``
  seconds that address's new connections are closed before the key exchange (no CPU spent on it),
  for the rest of the window; other addresses are not slowed. (Counting connections, not keys: an
  agent offering a few unrelated keys before the right one is not an attack.)
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import logging
import queue
import threading
import time
import warnings
from typing import Any, TextIO, cast

from console.actions.cli import Caller
from console.identity import Identity
from console.serve.config import Listen, ServeConfig, User
from console.serve.server import Server
from console.serve.session import HIGH_WATER, LOW_WATER, Session, TerminalInfo

with warnings.catch_warnings():  # its DSA deprecation notice is for whoever still uses DSA keys, not for us
    warnings.simplefilter("ignore")
    import asyncssh

log = logging.getLogger(__name__)

FAILS_PER_ADDRESS = 10  # failed logins from one address in FAIL_WINDOW before it is shut out
FAIL_WINDOW = 60.0
FAILS_PER_CONNECTION = 6  # as sshd's MaxAuthTries: then the connection is closed
MAX_TRACKED_ADDRESSES = 10_000
LOGIN_TIMEOUT = 30.0
COMMAND_GRACE = 15.0  # seconds a stopping server waits for running commands to print how they ended
EXEC_OUTPUT_LIMIT = 1024 * 1024  # a command's output waiting for a slow client; beyond, the command waits


class FailedLogins:
    """Failures per client address in a sliding window; bounded however many addresses try."""

    def __init__(self, limit: int = FAILS_PER_ADDRESS, window: float = FAIL_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._fails: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._told: dict[str, float] = {}  # address -> when its shut-out was last logged
        self.refused = 0

    def _recent(self, address: str, now: float) -> collections.deque[float]:
        times = self._fails.get(address)
        if times is None:
            return collections.deque()
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            self._fails.pop(address, None)
        return times

    def failed(self, address: str) -> None:
        now = time.monotonic()
        times = self._recent(address, now)
        times.append(now)
        self._fails[address] = times
        self._fails.move_to_end(address)
        while len(self._fails) > MAX_TRACKED_ADDRESSES:
            self._fails.popitem(last=False)

    def shut_out(self, address: str) -> bool:
        now = time.monotonic()
        if len(self._recent(address, now)) < self.limit:
            return False
        self.refused += 1
        if now - self._told.get(address, -1e9) > self.window:
            if len(self._told) > MAX_TRACKED_ADDRESSES:
                self._told = {a: t for a, t in self._told.items() if now - t <= self.window}
            self._told[address] = now
            log.warning("%s: %d failed logins within %gs: its connections are refused for now",
                        address, self.limit, self.window)
        return True


class SSHDoor:
    def __init__(self, server: Server, config: ServeConfig, listen: Listen, host_key: Any) -> None:
        self.server = server
        self.config = config
        self.listen = listen
        self.host_key = host_key
        self.failures = FailedLogins()
        self.channels: set[_Channel] = set()
        self.commands: set[_Channel] = set()  # exec requests still running (server loop only)
        self._acceptor: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> Listen:
        """Listen; OSError when the address cannot be bound (taken, not ours)."""
        self.loop = asyncio.get_running_loop()
        self._acceptor = await asyncssh.create_server(
            lambda: _Connection(self), self.listen.host, self.listen.port,
            server_host_keys=[self.host_key], public_key_auth=True, password_auth=False, kbdint_auth=False,
            host_based_auth=False, gss_host=None, allow_scp=False, agent_forwarding=False,
            x11_forwarding=False, line_editor=False, encoding=None, login_timeout=LOGIN_TIMEOUT,
            keepalive_interval=30, keepalive_count_max=3, server_version="Berth", allow_pty=True)
        host, port = self._acceptor.sockets[0].getsockname()[:2]
        return Listen(self.listen.host if self.listen.host not in ("0.0.0.0", "::") else host, port) \
            if self.listen.port == 0 else self.listen

    async def close(self, reason: str) -> None:
        """Stop listening, end every session with ``reason`` on the client's screen, close the connections."""
        if self._acceptor is not None:
            self._acceptor.close()
        loop = asyncio.get_running_loop()
        left = await loop.run_in_executor(None, self.server.stop_actions, reason)
        if left:
            log.warning("%s: %d action(s) did not reach a safe point in time: cut off (audited as interrupted)",
                        reason, left)
        # A command whose action just stopped still has its result to print (how it ended, its audit id):
        # let it, before the goodbye (bounded: a command that hangs is cut off with the rest).
        deadline = loop.time() + COMMAND_GRACE
        while self.commands and loop.time() < deadline:
            await asyncio.sleep(0.05)
        channels = list(self.channels)
        await loop.run_in_executor(None, self.server.end_all, reason)
        for channel in channels:
            channel.finish(1, f"berth serve: {reason}; sessions end now (reconnect with ssh when it is back)")
        await asyncio.sleep(0.2)  # let the last words leave before the connections close
        for channel in channels:
            channel.close_connection()
        if self._acceptor is not None:
            await self._acceptor.wait_closed()


class _Connection(asyncssh.SSHServer):
    def __init__(self, door: SSHDoor) -> None:
        self.door = door
        self.conn: Any = None
        self.address = "?"
        self.identity: Identity | None = None
        self._offered: tuple[User, Any] | None = None
        self._fails = 0
        self._told_name = False

    def connection_made(self, conn: Any) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        if self.door.failures.shut_out(self.address):
            asyncio.get_running_loop().call_soon(conn.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.identity is None and self._fails:
            log.info("%s: disconnected without logging in (%d key(s) refused)", self.address, self._fails)
            self.door.failures.failed(self.address)

    def begin_auth(self, username: str) -> bool:
        return True  # every login needs a key

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def validate_public_key(self, username: str, key: Any) -> bool:
        found = self.door.config.user_for_key(bytes(key.public_data))
        if found is not None and found[0].name == username:
            self._offered = found
            return True
        fingerprint = key.get_fingerprint("sha256")
        if found is None:
            log.warning("%s: login as %r refused: key %s is not listed in [[user]]", self.address, username,
                        fingerprint)
        else:
            log.warning("%s: login as %r refused: key %s is user %r's (a key logs in only as its user)",
                        self.address, username, fingerprint, found[0].name)
            if not self._told_name:
                self._told_name = True
                try:
                    self.conn.send_auth_banner(f"berth: this key is {found[0].name}'s: log in as "
                                               f"{found[0].name}@...\r\n")
                except Exception:
                    log.debug("auth banner not sent", exc_info=True)
        self._fails += 1
        if self._fails >= FAILS_PER_CONNECTION:
            log.warning("%s: %d keys refused on one connection: closed", self.address, self._fails)
            asyncio.get_running_loop().call_soon(self.conn.close)
        return False

    def auth_completed(self) -> None:
        assert self._offered is not None
        user, key = self._offered
        self.identity = Identity(user.name, user.role, "ssh", key.fingerprint, self.address)
        log.info("%s logged in (%s)", self.identity.label, key.fingerprint)

    def session_requested(self) -> Any:
        if self.identity is None:
            return False
        return _Channel(self.door, self.identity, self.conn)


class _Channel(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    """One SSH session channel: a console (pty + shell) or one command (exec)."""

    def __init__(self, door: SSHDoor, who: Identity, conn: Any) -> None:
        self.door = door
        self.who = who
        self.conn = conn
        self.chan: Any = None
        self.loop = asyncio.get_running_loop()
        self.kind: str | None = None
        self.command = ""
        self.term: str | None = None
        self.size = (80, 24)
        self.session: Session | None = None
        self.closed = False
        self.finished = False
        self._inflight = 0
        self._lock = threading.Lock()
        self._input: queue.Queue[bytes | None] = queue.Queue()
        self._admitted = False

    # -- asyncssh callbacks (server loop) -------------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self.chan = chan
        chan.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        self.door.channels.add(self)

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.term = term_type or "xterm"
        self.size = (term_size[0] or 80, term_size[1] or 24)
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = (width or self.size[0], height or self.size[1])
        if self.session is not None:
            self.session.resize(*self.size)

    def shell_requested(self) -> bool:
        self.kind = "shell"
        return True

    def exec_requested(self, command: str | bytes) -> bool:
        self.kind = "exec"
        self.command = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False

    def session_started(self) -> None:
        refusal = self.door.server.admit(self)
        if refusal is not None:
            log.warning("%s: session refused: %s", self.who.label, refusal)
            self.finish(1, refusal)
            return
        self._admitted = True
        if self.kind == "exec":
            log.info("%s runs: %s", self.who.label, " ".join(self.command.split())[:200])
            self.door.commands.add(self)
            threading.Thread(target=self._run_command, name=f"berth-exec-{self.who.user}", daemon=True).start()
        elif self.term is None:
            self.door.server.release(self)
            self.finish(2, "berth: the console needs a terminal: run ssh with -t (or give a command, "
                           "e.g. `status`)")
        else:
            env = self.chan.get_environment() if self.chan is not None else {}
            terminal = TerminalInfo(self.size[0], self.size[1], self.term, str(env.get("COLORTERM", "")))
            self.session = self.door.server.console(self.who, self, terminal, self._console_ended)
            self.session.start()
            log.info("%s opened the console (%dx%d, TERM=%s%s)", self.who.label, self.size[0], self.size[1],
                     self.term, f", COLORTERM={terminal.colorterm}" if terminal.colorterm else "")

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.session is not None:
            self.session.feed(data)
        elif self.kind == "exec":
            self._input.put(bytes(data))

    def eof_received(self) -> bool:
        self._input.put(None)
        return True  # keep our side open: output may still follow

    def break_received(self, msec: int) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.door.channels.discard(self)
        self._input.put(None)
        if self.session is not None:
            self.session.close()  # the client vanished: its app ends, its thread with it
        if self._admitted and self.kind == "shell" and self.session is None:
            self.door.server.release(self)

    # -- Output for the session (called from its thread) ------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        with self._lock:
            self._inflight += len(data)
        try:
            self.loop.call_soon_threadsafe(self._write, data)
        except RuntimeError:  # the server loop is gone
            self.closed = True

    def backlog(self) -> int:
        if self.closed or self.chan is None:
            return 0
        with self._lock:
            inflight = self._inflight
        return inflight + self.chan.get_write_buffer_size()

    def _write(self, data: bytes) -> None:
        with self._lock:
            self._inflight -= len(data)
        if self.closed or self.finished:
            return
        try:
            self.chan.write(data)
        except (BrokenPipeError, OSError, asyncssh.Error):
            self.closed = True

    # -- ends ------------------------------------------------------------------------------

    def _console_ended(self, session: Session) -> None:
        """On the session's thread: the app is gone (quit, closed, or the client left)."""
        code = session.return_code if isinstance(session.return_code, int) else 0
        st = session.stats
        log.info("%s left the console: %d frames sent (%d bytes), %d skipped for a slow link, %d full repaints, "
                 "%d input bytes dropped", self.who.label, st.frames_sent, st.bytes_sent, st.frames_skipped,
                 st.repaints, st.input_dropped)
        message = f"berth: the console failed: {session.error}" if session.error else ""
        try:
            self.loop.call_soon_threadsafe(self._release_and_finish, code, message)
        except RuntimeError:
            pass

    def _release_and_finish(self, code: int, message: str) -> None:
        if self._admitted:
            self.door.server.release(self)
        if self.door.server.closing is None:
            self.finish(code, message)

    def finish(self, status: int, message: str = "") -> None:
        """Last words (stderr) and the exit status, then the channel closes. Server loop only."""
        if self.finished or self.closed:
            return
        self.finished = True
        try:
            if message:
                text = message if message.endswith("\n") else message + "\n"
                if self.term is not None:
                    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
                self.chan.write_stderr(text.encode("utf-8", "replace"))
            self.chan.exit(status)
        except (BrokenPipeError, OSError, asyncssh.Error):
            pass

    def close_connection(self) -> None:
        try:
            self.conn.close()
        except Exception:
            log.debug("connection close failed", exc_info=True)

    # -- exec ------------------------------------------------------------------------------------

    def _run_command(self) -> None:
        from console.cli import PrintableStream
        from console.serve.remote import run_command

        pty = self.term is not None
        out = _ChannelText(self, stderr=False, pty=pty)
        err = _ChannelText(self, stderr=True, pty=pty)
        # Fleet text (names, labels, daemon messages) reaches the caller's terminal printable, as locally.
        caller = Caller(cast(TextIO, PrintableStream(cast(TextIO, out))), cast(TextIO, PrintableStream(cast(TextIO, err))),
                        self._ask if pty else None)
        try:
            status = run_command(self.command, self.door.server, self.who, caller)
        except BrokenPipeError:
            status = 141
        except Exception as exc:
            log.exception("%s: command %r failed", self.who.label, self.command)
            err.write(f"berth: internal error: {type(exc).__name__}: {exc}\n")
            status = 70
        out.drain()
        err.drain()
        try:
            self.loop.call_soon_threadsafe(self._command_done, status)
        except RuntimeError:
            pass

    def _command_done(self, status: int) -> None:
        self.door.commands.discard(self)
        self._release_and_finish(status, "")

    def _ask(self, prompt: str) -> str:
        """A line typed on the caller's terminal (ssh -t), echoed as a terminal would."""
        out = _ChannelText(self, stderr=False, pty=True)
        out.write(prompt)
        out.flush()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        line = ""
        while True:
            data = self._input.get()
            if data is None:
                raise EOFError
            for ch in decoder.decode(data):
                if ch in "\r\n":
                    out.write("\n")
                    out.flush()
                    return line
                if ch in "\x03\x04":  # ^C, ^D
                    out.write("\n")
                    out.flush()
                    raise EOFError
                if ch in "\x7f\b":
                    if line:
                        line = line[:-1]
                        out.write("\b \b")
                elif ch.isprintable():
                    line += ch
                    out.write(ch)
            out.flush()


class _ChannelText:
    """A text stream (what print() needs) onto a channel's stdout or stderr, from a command's thread.
    With a pty, newlines go out as CRLF, as a terminal's line discipline would send them."""

    def __init__(self, channel: _Channel, *, stderr: bool, pty: bool) -> None:
        self.channel = channel
        self.stderr = stderr
        self.pty = pty

    def write(self, text: str) -> int:
        if self.channel.closed:
            raise BrokenPipeError("the client has gone")
        data = (text.replace("\n", "\r\n") if self.pty else text).encode("utf-8", "replace")
        if not data:
            return 0
        while self.channel.backlog() > EXEC_OUTPUT_LIMIT and not self.channel.closed:
            time.sleep(0.05)  # a slow client: this command waits, the server does not buffer without end
        with self.channel._lock:
            self.channel._inflight += len(data)
        try:
            self.channel.loop.call_soon_threadsafe(self._write, data)
        except RuntimeError:
            raise BrokenPipeError("the server is stopping") from None
        return len(text)

    def _write(self, data: bytes) -> None:
        channel = self.channel
        with channel._lock:
            channel._inflight -= len(data)
        if channel.closed or channel.finished:
            return
        try:
            if self.stderr:
                channel.chan.write_stderr(data)
            else:
                channel.chan.write(data)
        except (BrokenPipeError, OSError, asyncssh.Error):
            channel.closed = True

    def flush(self) -> None:
        pass

    def drain(self) -> None:
        """Wait until what was written has been handed to the channel (before the exit status goes)."""
        done = threading.Event()
        try:
            self.channel.loop.call_soon_threadsafe(done.set)
        except RuntimeError:
            return
        done.wait(5)

    def isatty(self) -> bool:
        return self.pty
