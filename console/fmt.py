"""Human formatting shared by the CLI and the UI (pure, no I/O)."""

from __future__ import annotations

import re

# What must never reach a terminal raw from an engine: C0 and C1 controls and DEL (ESC starts
# sequences that clear the screen or set the title, CR and BS overwrite, BEL rings), and the
# bidi marks, embeddings, overrides and isolates that reorder what is drawn after them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(m: re.Match[str]) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, keep: str = "") -> str:
    """``text`` as it may reach a terminal: every control character and bidi override shown escaped
    (``\\x1b``, ``\\u202e``, ``\\n``), the way Python's repr shows them; ``keep`` names the few (say
    ``"\\n"``) that are the caller's own layout. Idempotent, and free for plain text (one C-level check).

    Every string an engine supplies (names, labels, image, command, env, log lines, error bodies)
    passes through here on its way to a screen; JSON output uses ``json_safe`` instead.
    """
    if text.isprintable():  # every character _UNSAFE matches is non-printable: nothing to do
        return text
    if keep:
        return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escaped(m), text)
    return _UNSAFE.sub(_escaped, text)


def json_safe(json_text: str) -> str:
    """JSON text with the same characters as JSON escapes (``\\u001b``, ``\\u202e``): the data stays exact.

    Such characters can only stand inside JSON strings (the serialisers escape C0 there but pass
    C1, DEL and bidi marks raw), so rewriting them anywhere in the text is safe; newlines between
    values are kept.
    """
    if json_text.isprintable():
        return json_text
    return _UNSAFE.sub(lambda m: "\n" if m.group() == "\n" else f"\\u{ord(m.group()):04x}", json_text)


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}PiB"  # pragma: no cover


def pct(ratio: float | None, digits: int = 0) -> str:
    return "-" if ratio is None else f"{ratio * 100:.{digits}f}%"


def cores(n: float | None) -> str:
    return "-" if n is None else f"{n:.2f}"


def duration(seconds: float | None) -> str:
    """Compact age/uptime: 45s, 12m, 3h, 5d."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s < 36000 else f"{s // 3600}h"
    return f"{s // 86400}d"


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    """A plain aligned text table for the headless commands; cells are shown ``printable``."""
    right = right or set()
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])
