"""Fleet summary line, the alerts strip and the NOC wall summary.

All three read the same snapshot and alert list; colours are theme variables
in markup (`$density-hot`, `$stale`), never literals.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Digits, Label, Static

from console.fleet.alerts import Alert, Severity
from console.fleet.model import FleetSnapshot
from console.fmt import printable
from console.ui.cells import short_size
from console.ui.markup import escape

SEVERITY_MARK = {Severity.CRITICAL: "✖", Severity.WARNING: "▲", Severity.INFO: "●"}
SEVERITY_STYLE = {Severity.CRITICAL: "$alert-critical", Severity.WARNING: "$alert-warning",
                  Severity.INFO: "$alert-info"}
# On the alert strip, whose background turns red-ish while a critical alert is open (NOC: ANSI red).
STRIP_STYLE = {**SEVERITY_STYLE, Severity.CRITICAL: "b $alert-strip-critical"}


def density_var(ratio: float, warn: float = 0.9) -> str:
    return "$density-hot" if ratio > warn else "$density-warm" if ratio > warn * 0.8 else "$density-ok"


def run_text(snap: FleetSnapshot, width: int) -> str:
    """Running/all on live nodes; containers on down nodes apart (their state is unknown)."""
    text = f"run {snap.running}/{snap.live_containers}"
    unknown = snap.stale_containers
    if unknown:
        text += f" [$stale](+{unknown} on down nodes)[/]" if width >= 100 else f" [$stale]+{unknown}?[/]"
    return text


def summary_markup(snap: FleetSnapshot | None, now: float, *, mode: str, stale_after: float,
                   width: int, warmed: bool = False) -> str:
    if snap is None:
        return f"[b]berth[/] [$text-muted]waiting for the first snapshot…[/]{mode}"
    age = now - snap.taken_at
    nodes_up, nodes = snap.nodes_up, len(snap.nodes)
    node_style = "$density-ok" if nodes_up == nodes else "$alert-critical"
    parts = ["[b]berth[/]"]
    if age > stale_after:  # first: at 80 columns nothing may push it off the line
        parts.append(f"[reverse $stale] DATA {age:.0f}s OLD [/]")
    parts += [
        f"nodes [{node_style}]{nodes_up}/{nodes}[/]",
        run_text(snap, width),
        f"cpu [{density_var(snap.cpu_density)}]{snap.cpu_density * 100:.0f}%[/]",
        f"mem [{density_var(snap.mem_density)}]{snap.mem_density * 100:.0f}%[/]",
    ]
    if snap.observer is not None and width >= 70:
        parts.append(f"[$text-muted]self {snap.observer.cpu_percent:.0f}% {short_size(snap.observer.rss)}[/]")
    # only before the first complete round: a container started later must not make it flicker
    if age <= stale_after and not snap.complete and not warmed:
        parts.append("[$text-muted]warming up[/]")
    text = "  ".join(parts) + mode
    if width >= 100:
        text += "  [$text-muted]" + time.strftime("%H:%M:%S", time.gmtime(snap.taken_at)) + "Z[/]"
    return text


class OneLine(Static):
    """A fixed-height line that repaints only when its text changes, and never asks for a layout pass
    (Static.update() re-lays out the whole screen by default: tens of ms per snapshot)."""

    DEFAULT_CSS = "OneLine { height: 1; width: 1fr; }"
    _shown: str | None = None

    def set(self, markup: str) -> None:
        """Markup when the line renders markup (outside strings in it went through escape()),
        plain text otherwise: then it is shown printable here."""
        if markup != self._shown:
            self._shown = markup
            self.update(markup if self._render_markup else printable(markup), layout=False)


class FleetHeader(OneLine):
    def show(self, snap: FleetSnapshot | None, now: float, *, mode: str, stale_after: float) -> None:
        self.set(summary_markup(snap, now, mode=mode, stale_after=stale_after, width=self.size.width or 80,
                                warmed=bool(getattr(self.app, "warmed", False))))


class AlertStrip(OneLine, can_focus=False):
    """The most severe alerts on one line; a click opens the alert list."""

    class Opened(Message):
        """The operator asked for the full alert list."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.alerts: list[Alert] = []

    def show(self, alerts: list[Alert]) -> None:
        self.alerts = alerts
        if not alerts:
            self.set_class(False, "-alerting")
            self.set("[$density-ok]✓ no alerts[/]")
            return
        self.set_class(any(a.severity is Severity.CRITICAL for a in alerts), "-alerting")
        crit = sum(1 for a in alerts if a.severity is Severity.CRITICAL)
        warn = sum(1 for a in alerts if a.severity is Severity.WARNING)
        head = f"[b]{len(alerts)} alert{'s' if len(alerts) != 1 else ''}[/]"
        if crit:
            head += f" [b $alert-strip-critical]{crit}✖[/]"
        if warn:
            head += f" [$alert-warning]{warn}▲[/]"
        # Only what can fit: a fleet with hundreds of alerts must not build (and parse) a huge line.
        budget = max(80, (self.size.width or 80) * (self.size.height or 1))
        items: list[str] = []
        used = 0
        for a in alerts:
            if used > budget:
                break
            items.append(f"[{STRIP_STYLE[a.severity]}]{SEVERITY_MARK[a.severity]}[/] {escape(a.text)}")
            used += len(a.text) + 4
        self.set(head + " [$text-muted](a)[/]  " + "  ".join(items))

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Opened())


class NocSummary(Horizontal):
    """Big figures for a wall screen: readable from across a room."""

    DEFAULT_CSS = """
    NocSummary { height: 5; width: 1fr; }
    NocSummary > Vertical { width: 1fr; height: 5; align-horizontal: center; }
    NocSummary Label { width: 1fr; content-align: center middle; text-style: bold; }
    NocSummary Digits { width: auto; }
    """
    FIGURES: ClassVar[tuple[tuple[str, str], ...]] = (
        ("nodes", "NODES UP"), ("running", "RUNNING"), ("cpu", "FLEET CPU"), ("mem", "FLEET MEM"),
        ("alerts", "ALERTS"),
    )

    def compose(self) -> ComposeResult:
        for key, label in self.FIGURES:
            with Vertical(id=f"noc-{key}"):
                yield Label(label)
                yield Digits("-", id=f"noc-digits-{key}")

    def show(self, snap: FleetSnapshot | None, alerts: list[Alert]) -> None:
        if snap is None:
            return
        values = {
            "nodes": (f"{snap.nodes_up}/{len(snap.nodes)}", snap.nodes_up < len(snap.nodes)),
            "running": (str(snap.running), False),
            "cpu": (f"{snap.cpu_density * 100:.0f}%", snap.cpu_density > 0.9),
            "mem": (f"{snap.mem_density * 100:.0f}%", snap.mem_density > 0.9),
            "alerts": (str(len(alerts)), any(a.severity is Severity.CRITICAL for a in alerts)),
        }
        for key, (text, bad) in values.items():
            digits = self.query_one(f"#noc-digits-{key}", Digits)
            digits.update(text)
            digits.set_class(bad, "-bad")
