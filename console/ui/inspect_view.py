"""Pure helpers for the container detail and logs screens: inspect → lines, log frames.

What they show is masked by the one policy (console.actions.redact) that the audit log and the
CLI use, so the screen and the audit record of the same value agree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from console.actions.redact import mask_env_entry, mask_labels, mask_text
from console.fmt import printable

def _ports(doc: dict[str, Any]) -> list[str]:
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    for container_port, bindings in sorted(ports.items()):
        if not bindings:
            out.append(f"{container_port} (not published)")
            continue
        for b in bindings:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')} → {container_port}")
    return out


def _networks(doc: dict[str, Any]) -> list[str]:
    nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    return [f"{name}  {n.get('IPAddress') or '-'}" for name, n in sorted(nets.items())] or ["(none)"]


def _mounts(doc: dict[str, Any]) -> list[str]:
    out = []
    for m in doc.get("Mounts") or []:
        mode = "rw" if m.get("RW", True) else "ro"
        src = m.get("Name") or m.get("Source") or "?"
        out.append(f"{m.get('Type', '?')}  {src} → {m.get('Destination', '?')} ({mode})")
    return out or ["(none)"]


def _limits(doc: dict[str, Any]) -> list[str]:
    hc = doc.get("HostConfig") or {}
    out = []
    nano = hc.get("NanoCpus") or 0
    quota, period = hc.get("CpuQuota") or 0, hc.get("CpuPeriod") or 0
    if nano:
        out.append(f"cpus {nano / 1e9:g}")
    elif quota and period:
        out.append(f"cpus {quota / period:g} (quota {quota}/{period})")
    if hc.get("CpusetCpus"):
        out.append(f"cpuset {hc['CpusetCpus']}")
    if hc.get("Memory"):
        out.append(f"memory {hc['Memory'] / 1024**2:.0f}MiB")
    if hc.get("MemoryReservation"):
        out.append(f"reservation {hc['MemoryReservation'] / 1024**2:.0f}MiB")
    if hc.get("PidsLimit"):
        out.append(f"pids {hc['PidsLimit']}")
    policy = (hc.get("RestartPolicy") or {}).get("Name")
    if policy:
        out.append(f"restart {policy}")
    return out or ["(none)"]


def _state_line(state: dict[str, Any]) -> str:
    """Exit code and OOM kill belong to the last run: dockerd keeps OOMKilled true after a start,
    so they are shown only while the container is not running."""
    status = state.get("Status", "?")
    if status in ("running", "paused", "restarting") or state.get("Running"):
        started = f"  started {state['StartedAt']}" if state.get("StartedAt") else ""
        return f"{status}  pid {state.get('Pid', '-')}{started}"
    oom = "  OOM-killed" if state.get("OOMKilled") else ""
    finished = f"  finished {state['FinishedAt']}" if state.get("FinishedAt") else ""
    return f"{status}  exit {state.get('ExitCode', '-')}{oom}{finished}"


def inspect_sections(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Ordered (title, lines) for the detail screen from GET /containers/{id}/json."""
    cfg = doc.get("Config") or {}
    cmd = [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    state = doc.get("State") or {}
    labels = sorted(mask_labels(cfg.get("Labels") or {}).items())
    return [
        ("Image", [str(cfg.get("Image") or doc.get("Image") or "?")]),
        ("Command", [mask_text(" ".join(str(c) for c in cmd)) or "(image default)"]),
        ("State", [_state_line(state)]),
        ("Ports", _ports(doc) or ["(none)"]),
        ("Networks", _networks(doc)),
        ("Mounts", _mounts(doc)),
        ("Limits", _limits(doc)),
        ("Labels", [f"{k}={v}" for k, v in labels] or ["(none)"]),
        ("Env", [mask_env_entry(str(e)) for e in cfg.get("Env") or []] or ["(none)"]),
    ]


class FrameDecoder:
    """Docker's multiplexed log stream (non-tty): 8-byte header [stream, 0, 0, 0, size:uint32be] + payload.

    `tty=True` streams are raw bytes. Lines are split on newlines; a partial last
    line waits for the next chunk.
    """

    def __init__(self, tty: bool = False) -> None:
        self.tty = tty
        self._buf = b""
        self._partial: dict[int, bytes] = {}

    def feed(self, chunk: bytes) -> list[tuple[int, str]]:
        """(stream, line) pairs; stream 1 = stdout, 2 = stderr."""
        out: list[tuple[int, str]] = []
        if self.tty:
            self._emit(1, chunk, out)
            return out
        self._buf += chunk
        while len(self._buf) >= 8:
            stream, size = self._buf[0], struct.unpack(">I", self._buf[4:8])[0]
            if len(self._buf) < 8 + size:
                break
            payload, self._buf = self._buf[8:8 + size], self._buf[8 + size:]
            self._emit(stream if stream in (1, 2) else 1, payload, out)
        return out

    def flush(self) -> list[tuple[int, str]]:
        out = [(s, p.decode("utf-8", "replace")) for s, p in self._partial.items() if p]
        self._partial.clear()
        return out

    def _emit(self, stream: int, data: bytes, out: list[tuple[int, str]]) -> None:
        data = self._partial.pop(stream, b"") + data
        *lines, rest = data.split(b"\n")
        for line in lines:
            out.append((stream, line.rstrip(b"\r").decode("utf-8", "replace")))
        if rest:
            self._partial[stream] = rest


def log_line(line: str) -> str:
    """A container's log line as the logs view shows (and searches) it: secrets masked, tabs laid
    out, control characters and bidi overrides escaped (it can hold any bytes the process wrote)."""
    return printable(mask_text(line).expandtabs(8))


def matching(lines: Iterable[str], needle: str) -> list[int]:
    """Indexes of lines containing `needle` (case-insensitive)."""
    n = needle.lower()
    return [i for i, line in enumerate(lines) if n in line.lower()]
