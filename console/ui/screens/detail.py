"""Container detail: live figures from the snapshot, history graphs, and inspect data from a worker."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Sparkline, Static

from console import fmt
from console.fleet.model import ContainerSnapshot, FleetSnapshot
from console.ports import FleetFeed
from console.ui.cells import Context, container_state, short_size
from console.ui.inspect_view import inspect_sections
from console.ui.markup import escape
from console.ui.messages import NeedSnapshot
from console.ui.widgets.footer import StableFooter
from console.ui.widgets.header import FleetHeader


def facts_markup(c: ContainerSnapshot, ctx: Context, gone: bool = False) -> str:
    state = container_state(c)
    badges = []
    if c.isolated:
        badges.append("[reverse $badge-iso] ISOLATED [/]")
    if c.busy:
        badges.append(f"[reverse $badge-busy] {escape(c.busy.upper())} [/]")
    if c.oom_killed and not c.running:
        badges.append("[reverse $alert-critical] OOM-KILLED [/]")
    if gone:
        badges.append("[reverse $stale] GONE — last known figures [/]")
    if c.stale:
        age = f" {fmt.duration(ctx.now - c.sampled_at)} ago" if c.sampled_at else ""
        badges.append(f"[reverse $stale] NODE DOWN — last known{age} [/]")
    stale = c.stale or c.node in ctx.stale_nodes
    unknown = c.stale or c.node in ctx.unknown_nodes
    cpu = "-" if c.cpu_percent is None else f"{c.cpu_percent:.1f}% of a core"
    if c.stats_error and c.cpu_percent is None and c.running:
        cpu = f"[$alert-critical]no figures:[/] {escape(c.stats_error)}"
    if c.cpu_limit:
        cpu += f", {fmt.pct(c.cpu_of_limit)} of its {c.cpu_limit:g}-core limit" if c.cpu_percent is not None \
            else f" (limit {c.cpu_limit:g} cores)"
    mem = short_size(c.mem_used) + (f" of {short_size(c.mem_limit)}" if c.mem_limit else " (no limit)")
    if unknown:
        cpu = f"[$stale]? (last known {cpu}, node {'down' if c.stale else 'data stale'})[/]"
        mem = f"[$stale]? (last known {mem})[/]"
    elif stale:
        cpu = f"[$stale]{cpu} (node data stale)[/]"
        mem = f"[$stale]{mem}[/]"
    uptime = fmt.duration(ctx.now - c.started_at) if c.running and c.started_at else "-"
    if c.stale and c.running:
        uptime = f"[$stale]? (last known {uptime})[/]"
    rows = [
        # While it runs, the uptime row says how long: the daemon's "Up 3 minutes" would be a second,
        # older clock (it is as old as the last listing).
        ("state", escape(state.text) + ("" if c.running else f"  {escape(c.status)}")
         + ("  " + " ".join(badges) if badges else "")),
        ("node", f"{escape(c.node)}    [$text-muted]tenant[/] {escape(c.tenant)}    [$text-muted]id[/] {c.short_id}"),
        ("cpu", cpu),
        ("memory", mem),
        ("uptime", f"{uptime}    [$text-muted]restarts[/] {c.restart_count}    [$text-muted]health[/] "
                   f"{escape(c.health or '-')}" + (f"    [$text-muted]exit[/] {c.exit_code}"
                                                    if c.exit_code is not None and not c.running else "")),
        ("image", escape(c.image)),
    ]
    return "\n".join(f"[$text-muted]{k:>7}[/] {v}" for k, v in rows)


class DetailScreen(Screen[None]):
    DEFAULT_CSS = """
    DetailScreen { layout: vertical; }
    DetailScreen #detail-body { height: 1fr; padding: 0 1; }
    DetailScreen #facts { height: auto; }
    DetailScreen #graphs { height: auto; margin-top: 1; }
    DetailScreen #graphs > Vertical { width: 1fr; height: auto; padding-right: 2; }
    DetailScreen Sparkline { height: 3; width: 1fr; }
    DetailScreen #inspect { height: auto; margin-top: 1; }
    DetailScreen .detail--title { height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, container: ContainerSnapshot, crumb: str, feed: FleetFeed | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.container = container
        self.container_id = container.id
        self.crumb = crumb
        self.gone = False
        self.inspect_doc: dict | None = None

    def compose(self) -> ComposeResult:
        yield FleetHeader(id="header")
        yield Static(self._title(), classes="detail--title", id="detail-title")
        with VerticalScroll(id="detail-body"):
            yield Static("", id="facts")
            with Horizontal(id="graphs"):
                with Vertical():
                    yield Label("CPU cores", id="cpu-label", classes="detail--key")
                    yield Sparkline([], id="cpu-graph")
                with Vertical():
                    yield Label("memory", id="mem-label", classes="detail--key")
                    yield Sparkline([], id="mem-graph")
            yield Static("[$text-muted]inspect: loading…[/]", id="inspect")
        yield StableFooter(compact=True)

    def _title(self) -> str:
        return f"{escape(self.crumb)} › [b]{escape(self.container.name)}[/]   [$text-muted]l logs · esc back[/]"

    def on_mount(self) -> None:
        self.post_message(NeedSnapshot())
        self.load_inspect()

    def apply(self, snap: FleetSnapshot, ctx: Context, mode: str = "") -> None:
        found = next((c for c in snap.containers if c.id == self.container_id), None)
        self.gone = found is None
        if found is not None:
            before, self.container = self.container, found
            if (found.state, found.started_at) != (before.state, before.started_at) and self.is_mounted:
                self.load_inspect()  # it started, stopped or restarted: the inspect below is of before
        self.query_one("#facts", Static).update(facts_markup(self.container, ctx, self.gone))
        self.query_one(FleetHeader).show(snap, ctx.now, mode=mode, stale_after=ctx.stale_after)
        if snap.history is not None:
            cpu = snap.history.cpu(self.container_id)
            mem = snap.history.mem(self.container_id)
            span = fmt.duration(len(cpu))
            self._graph("cpu", cpu, f"CPU {cpu[-1]:.2f} cores, peak {max(cpu):.2f} ({span})"
                        if cpu else "CPU: no history yet")
            self._graph("mem", mem, f"MEM {short_size(mem[-1])}, peak {short_size(max(mem))} ({span})"
                        if mem else "memory: no history yet")

    def _graph(self, key: str, values: tuple[float, ...], label: str) -> None:
        graph = self.query_one(f"#{key}-graph", Sparkline)
        width = max(10, graph.size.width or 60)
        graph.data = list(values[-width:])
        graph.display = bool(values)  # an empty Sparkline still draws a flat line under "no history yet"
        self.query_one(f"#{key}-label", Label).update(escape(label))

    @work(exclusive=True, group="inspect")
    async def load_inspect(self) -> None:
        box = self.query_one("#inspect", Static)
        if self.feed is None or self.feed.reads is not None:
            why = self.feed.reads if self.feed is not None else "no engine connection (test or demo data)"
            box.update(f"[$text-muted]inspect: {escape(why or '')}[/]")
            return
        try:
            doc = await self.feed.inspect(self.container.node, self.container_id)
        except Exception as exc:  # EngineError and friends: shown as state, never raised
            box.update(f"[$alert-critical]inspect failed:[/] {escape(str(exc))}")
            return
        self.inspect_doc = doc
        lines = []
        for title, items in inspect_sections(doc):
            lines.append(f"[b $accent]{title}[/]")
            lines.extend(f"  {escape(item)}" for item in items)
        box.update("\n".join(lines))
