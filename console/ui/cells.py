"""What each table cell says, and which semantic style it wears (pure, no Textual).

Cells name a style ("hot", "stale", ...) rather than a colour; the table maps
those names to component classes whose colours come from the theme.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from console import fmt
from console.fleet.model import ContainerSnapshot, NodeSnapshot, NodeState, TenantSnapshot
from console.ui.columns import Column

_EIGHTHS = " ▏▎▍▌▋▊▉█"
_SPARK = "▁▂▃▄▅▆▇█"


class Cell(NamedTuple):
    text: str
    style: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a row needs beyond itself: the clock, thresholds, and which nodes' data is stale."""

    now: float
    stale_after: float = 15.0
    cpu_warn: float = 0.9
    mem_warn: float = 0.9
    cpu_commit_warn: float = 4.0
    mem_commit_warn: float = 1.5
    stale_nodes: frozenset[str] = frozenset()  # not up, or data old: figures wear the stale style
    unknown_nodes: frozenset[str] = frozenset()  # down, or data older than stale_after: figures are `?`
    age_offset: float = 0.0  # how old the snapshot itself is (now - taken_at): added to every data age


def bar(ratio: float | None, width: int) -> str:
    """A left-to-right bar in eighth blocks; over 100 % fills completely."""
    if ratio is None or width <= 0:
        return " " * max(0, width)
    cells = max(0.0, min(1.0, ratio)) * width
    full = int(cells)
    part = int(round((cells - full) * 8))
    if part == 8:
        full, part = full + 1, 0
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return text.ljust(width)


def sparkline(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The last `width` points, scaled to `top` (default: their maximum)."""
    if width <= 0:
        return ""
    pts = list(values[-width:])
    if not pts:
        return " " * width
    hi = top if top else max(pts)
    if hi <= 0:
        return (_SPARK[0] * len(pts)).rjust(width)
    out = "".join(_SPARK[min(7, max(0, int(v / hi * 7.999)))] for v in pts)
    return out.rjust(width)


def short_size(n: float | None) -> str:
    """Compact bytes for narrow cells: 512M, 12.3G, 1.5T."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(value) < 1024 or unit == "P":
            if unit == "B":
                return f"{value:.0f}B"
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
        value /= 1024
    return "-"  # pragma: no cover


def level(ratio: float | None, warn: float) -> str | None:
    """ok / warm / hot against a threshold: warm from 80 % of it, hot beyond it."""
    if ratio is None:
        return None
    if ratio > warn:
        return "hot"
    if ratio > warn * 0.8:
        return "warm"
    return "ok"


# ---------------------------------------------------------------- containers

CONTAINER_COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME", 15, 0, grow=15, sort="name", cut="middle"),  # cut in the middle: 15 tells them apart
    Column("badge", "", 3, 0),
    Column("node", "NODE", 8, 1, grow=6, cut="middle"),
    Column("tenant", "TENANT", 8, 1, grow=4, cut="middle"),
    Column("state", "STATE", 9, 0, grow=4),
    Column("cpu", "CPU%", 6, 0, "right", sort="cpu"),
    Column("cpu_lim", "CPU%L", 5, 3, "right"),  # CPU % of its limit
    Column("mem", "MEM", 6, 0, "right", sort="mem"),
    Column("mem_lim", "MEM/LIM", 7, 2, "right"),
    Column("uptime", "UP", 5, 2, "right"),
    Column("restarts", "RST", 3, 4, "right"),
    Column("image", "IMAGE", 12, 4, grow=28, cut="middle"),  # the tag is at the end
    Column("id", "ID", 12, 6),
)


def badge(c: ContainerSnapshot) -> Cell:
    if c.busy:
        return Cell(c.busy[:3].upper(), "badge-busy")
    if c.isolated:
        return Cell("ISO", "badge-iso")
    # Badges follow the current state: an OOM kill or a health verdict of an earlier run is history
    # (detail shows it), not a badge on a container that has run since or no longer runs.
    if c.oom_killed and not c.running:
        return Cell("OOM", "bad")
    if c.health == "unhealthy" and c.running:
        return Cell("UNH", "bad")
    return Cell("")


def container_state(c: ContainerSnapshot, width: int = 0) -> Cell:
    if c.stale:  # the node is down: this is the last known state, not the state now
        return Cell(f"{_live_state(c, width - 1 if width else 0).text}?", "stale")
    return _live_state(c, width)


def exited_text(code: int | None, width: int = 0) -> str:
    """`exited(137)`, shortened to fit but never cutting the code: it says how it died."""
    if code is None:
        return "exited"
    forms = (f"exited({code})", f"exit({code})", f"ex({code})", f"({code})")
    return next((f for f in forms if not width or len(f) <= width), forms[-1])


def _live_state(c: ContainerSnapshot, width: int = 0) -> Cell:
    if c.state == "running":
        if c.health == "unhealthy":
            return Cell("unhealthy", "bad")
        if c.health == "starting":
            return Cell("starting", "warm")
        return Cell("running", "ok")
    if c.state == "exited":
        code = c.exit_code
        return Cell(exited_text(code, width), "dim" if code == 0 else "bad")
    if c.state in ("restarting", "dead", "removing"):
        return Cell(c.state, "bad")
    if c.state == "paused":
        return Cell("paused", "warm")
    return Cell(c.state, "dim")


def container_cell(c: ContainerSnapshot, key: str, ctx: Context, width: int = 0) -> Cell:
    stale = c.stale or c.node in ctx.stale_nodes
    unknown = c.stale or c.node in ctx.unknown_nodes  # last known figures: shown as `?`, never as live
    if key == "name":
        return Cell(c.name)
    if key == "badge":
        return badge(c)
    if key == "node":
        return Cell(c.node, "stale" if stale else None)
    if key == "tenant":
        return Cell(c.tenant, "dim" if c.tenant == "unassigned" else None)
    if key == "state":
        return container_state(c, width)
    if key == "cpu":
        if c.stats_error and c.running and not unknown and c.cpu_percent is None:
            return Cell("n/a", "bad")  # its stats give no figures (detail says why)
        if c.cpu_percent is None or unknown:
            return Cell("?" if unknown and c.running else "-", "stale" if stale else "dim")
        style = "stale" if stale else level(c.cpu_of_limit, 0.9) if c.cpu_limit else None
        return Cell(f"{c.cpu_percent:.1f}", style)
    if key == "cpu_lim":
        if unknown and c.cpu_limit:
            return Cell("?" if c.running else "-", "stale")
        return Cell(fmt.pct(c.cpu_of_limit) if c.cpu_limit else "-", level(c.cpu_of_limit, 0.9) or "dim")
    if key == "mem":
        if c.mem_used is None or unknown:
            return Cell("?" if unknown and c.running else "-", "stale" if stale else "dim")
        ratio = c.mem_used / c.mem_limit if c.mem_limit else None
        return Cell(short_size(c.mem_used), "stale" if stale else level(ratio, 0.9) if ratio else None)
    if key == "mem_lim":
        return Cell(short_size(c.mem_limit) if c.mem_limit else "-", None if c.mem_limit else "dim")
    if key == "uptime":
        if c.stale and c.running:
            return Cell("?", "stale")
        if c.running and c.started_at:
            return Cell(fmt.duration(ctx.now - c.started_at))
        return Cell("-", "dim")
    if key == "restarts":
        return Cell(str(c.restart_count), "warm" if c.restart_count else "dim")
    if key == "image":
        return Cell(c.image, "dim")
    if key == "id":
        return Cell(c.short_id, "dim")
    return Cell("")


# ---------------------------------------------------------------- hosts

HOST_COLUMNS: tuple[Column, ...] = (
    Column("name", "NODE", 8, 0, grow=4, sort="name", cut="middle"),
    Column("state", "STATE", 12, 0, grow=32),
    Column("run", "RUN/ALL", 7, 0, "right"),
    Column("cpu", "CPU (cores)", 14, 0, sort="cpu", grow=10),
    Column("mem", "MEMORY", 18, 1, sort="mem", grow=10),
    Column("cpu_commit", "CPU▸", 5, 4, "right"),
    Column("mem_commit", "MEM▸", 5, 4, "right"),
    Column("per_core", "C/CORE", 6, 5, "right"),
    Column("cpu_spark", "CPU HIST", 10, 3, grow=20),
    Column("mem_spark", "MEM HIST", 10, 5, grow=20),
    Column("age", "AGE", 5, 1, "right"),
    Column("engine", "ENGINE", 8, 7),
)


def _reason(prefix: str, error: str | None, width: int) -> str:
    """"down: <error>", keeping the error's last clause when the cell is narrow (it says the most)."""
    if not error:
        return prefix
    full = f"{prefix}: {error}"
    if width and len(full) > width:
        return f"{prefix}: {error.rsplit(': ', 1)[-1]}"
    return full


def node_state(n: NodeSnapshot, ctx: Context, width: int = 0) -> Cell:
    if n.state is NodeState.DOWN:
        return Cell(_reason("down", n.error, width), "bad")
    if n.state is NodeState.DEGRADED:
        return Cell(_reason("degraded", n.error, width), "warm")
    if n.state is NodeState.CONNECTING:
        return Cell("connecting", "dim")
    age = None if n.data_age is None else n.data_age + ctx.age_offset
    if age is not None and age > ctx.stale_after:
        return Cell(f"stale {fmt.duration(age)}", "stale")
    return Cell("up, cordoned" if n.cordoned else "up", "warm" if n.cordoned else "ok")


def engine_label(n: NodeSnapshot) -> str:
    """The engine's version, named when it is not dockerd ("podman 4.3.1"): a bare 4.3.1 would read
    as a very old Docker."""
    version = n.engine_version or "-"
    return f"{n.engine} {version}" if n.engine != "docker" else version


def host_cell(n: NodeSnapshot, key: str, ctx: Context, width: int = 0) -> Cell:
    d = n.density
    live = n.up and n.name not in ctx.stale_nodes
    # A down node's figures are its last known: `?` beside the capacity, and the age column says
    # how old (the last known stays in `berth status --json`, marked stale).
    unknown = not n.live or n.name in ctx.unknown_nodes
    if key == "name":
        return Cell(n.name, None if live else "stale")
    if key == "state":
        return node_state(n, ctx, width)
    if key == "run":
        if unknown and d.containers:
            return Cell(f"?/{d.containers}", "stale")
        return Cell(f"{d.running}/{d.containers}")
    if unknown and key in ("cpu", "mem") and (n.cpus if key == "cpu" else n.mem_total):
        text = f"?/{n.cpus}" if key == "cpu" else f"?/{short_size(n.mem_total)}"
        return Cell(text.rjust(max(len(text), width)) if width else text, "stale")
    if unknown and key in ("cpu_commit", "mem_commit", "per_core"):
        return Cell("?", "stale")
    if key == "cpu":
        if not n.cpus:
            return Cell("-", "dim")
        text = f"{d.cpu_cores_used:.1f}/{n.cpus}"
        return Cell(bar(d.cpu_density, max(1, width - len(text) - 1)) + " " + text,
                    level(d.cpu_density, ctx.cpu_warn) if live else "stale")
    if key == "mem":
        if not n.mem_total:
            return Cell("-", "dim")
        text = f"{short_size(d.mem_used)}/{short_size(n.mem_total)}"
        return Cell(bar(d.mem_density, max(1, width - len(text) - 1)) + " " + text,
                    level(d.mem_density, ctx.mem_warn) if live else "stale")
    if key == "cpu_commit":
        return Cell(f"{d.cpu_committed:.1f}x", level(d.cpu_committed, ctx.cpu_commit_warn) or "dim")
    if key == "mem_commit":
        return Cell(f"{d.mem_committed:.1f}x", level(d.mem_committed, ctx.mem_commit_warn) or "dim")
    if key == "per_core":
        return Cell(f"{d.containers_per_core:.1f}")
    if key == "cpu_spark":
        return Cell(sparkline(n.cpu_history, width, top=float(n.cpus) or None), "spark" if live else "stale")
    if key == "mem_spark":
        return Cell(sparkline(n.mem_history, width, top=float(n.mem_total) or None), "spark" if live else "stale")
    if key == "age":
        if n.data_age is None:
            return Cell("-", "dim")
        age = n.data_age + ctx.age_offset
        return Cell(fmt.duration(age), "stale" if age > ctx.stale_after else "dim")
    if key == "engine":
        return Cell(engine_label(n), "dim")
    return Cell("")


# ---------------------------------------------------------------- tenants

TENANT_COLUMNS: tuple[Column, ...] = (
    Column("name", "TENANT", 10, 0, grow=6, sort="name", cut="middle"),
    Column("run", "RUN/ALL", 7, 0, "right", grow=5),
    Column("nodes", "NODES", 5, 1, "right"),
    Column("cpu", "CPU", 6, 0, "right", sort="cpu"),
    Column("mem", "MEM", 7, 0, "right", sort="mem"),
    Column("cpu_quota", "CPU QUOTA", 14, 1, grow=8),
    Column("mem_quota", "MEM QUOTA", 16, 2, grow=8),
    Column("top", "TOP CONTAINER", 12, 3, grow=24, cut="middle"),
)


def quota_cell(use: float | None, quota_text: str, width: int) -> Cell:
    if use is None:
        return Cell("-", "dim")
    label = f"{use * 100:.0f}% of {quota_text}"
    bar_w = max(0, width - len(label) - 1)
    style = "hot" if use >= 1.0 else "warm" if use >= 0.8 else "ok"
    return Cell((bar(use, bar_w) + " " if bar_w >= 3 else "") + label, style)


def tenant_cell(t: TenantSnapshot, key: str, ctx: Context, width: int = 0) -> Cell:
    if key == "name":
        return Cell(t.name, "dim" if t.name == "unassigned" else None)
    if key == "run":
        # containers on down nodes are not in the live figures: counted apart, state unknown
        more = f" +{t.stale_containers}?" if t.stale_containers else ""
        return Cell(f"{t.running}/{t.containers}{more}", "stale" if more and not t.containers else None)
    if key == "nodes":
        return Cell(str(len(t.nodes)))
    if key == "cpu":
        return Cell(f"{t.cpu_cores_used:.2f}")
    if key == "mem":
        return Cell(short_size(t.mem_used))
    if key == "cpu_quota":
        return quota_cell(t.cpu_quota_use, f"{t.cpu_quota:g}" if t.cpu_quota else "", width)
    if key == "mem_quota":
        return quota_cell(t.mem_quota_use, short_size(t.mem_quota), width)
    if key == "top":
        return Cell(t.top_container or "-", None if t.top_container else "dim")
    return Cell("")


CellFn = Callable[[Any, str, Context, int], Cell]
COLUMNS: dict[str, tuple[Column, ...]] = {
    "hosts": HOST_COLUMNS,
    "containers": CONTAINER_COLUMNS,
    "tenants": TENANT_COLUMNS,
}


def cell_for(kind: str) -> CellFn:
    if kind == "containers":
        return container_cell
    if kind == "hosts":
        return host_cell
    return tenant_cell
