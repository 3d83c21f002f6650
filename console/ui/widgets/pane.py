"""One pane (hosts, containers or tenants): a title line and a virtual table over the model.

The pane owns its view state — sort, filter text, drill-down scope — and turns
a snapshot into rows with plain Python (filter, then sort) before handing the
table a list. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical

from console.fleet.model import FleetSnapshot
from console.ui import query
from console.ui.cells import COLUMNS, Context, cell_for
from console.ui.sorting import Sort, sort_rows
from console.ui.widgets.header import OneLine
from console.ui.widgets.table import VirtualTable

TITLES = {"hosts": "Hosts", "containers": "Containers", "tenants": "Tenants"}
KEYS = {"hosts": "1", "containers": "2", "tenants": "3"}
_ROW_KEY: dict[str, Callable[[Any], Hashable]] = {
    "hosts": lambda n: n.name,
    "containers": lambda c: c.id,
    "tenants": lambda t: t.name,
}
_MATCHER: dict[str, Callable[[query.Query], Callable[[Any], bool]]] = {
    "hosts": query.node_matcher, "containers": query.container_matcher, "tenants": query.tenant_matcher}
_DEFAULT_SORT = {"hosts": Sort("name", False), "containers": Sort("cpu", True), "tenants": Sort("cpu", True)}


@dataclass(frozen=True, slots=True)
class Scope:
    """A drill-down: the containers of one node or one tenant."""

    kind: str  # "node" | "tenant"
    name: str

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


class Pane(Vertical, can_focus=False):
    DEFAULT_CSS = """
    Pane { height: 1fr; width: 1fr; }
    Pane > .pane--title { height: 1; width: 1fr; }
    """

    def __init__(self, kind: str) -> None:
        super().__init__(id=f"pane-{kind}", classes="pane")
        self.kind = kind
        self.sort = _DEFAULT_SORT[kind]
        self.filter_text = ""
        self.scope: Scope | None = None
        self.total = 0
        self._query = query.parse("")
        self._snapshot: FleetSnapshot | None = None
        self._ctx = Context(now=0.0)
        self.table = VirtualTable(COLUMNS[kind], cell_for(kind), _ROW_KEY[kind], id=f"table-{kind}")
        self.table.sort_key = self.sort.key
        self.table.sort_arrow = self.sort.arrow

    def compose(self) -> ComposeResult:
        yield OneLine("", classes="pane--title", id=f"title-{self.kind}", markup=False)
        yield self.table

    # -- view state ----------------------------------------------------------

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._query = query.parse(self.filter_text)
        self.recompute()

    def set_sort(self, key: str) -> None:
        """A new order starts at its top (k9s): the row under the cursor is not what was asked for."""
        self.sort = self.sort.toggled(key)
        self.table.sort_key = self.sort.key
        self.table.sort_arrow = self.sort.arrow
        self.recompute()
        if self.table.rows:
            self.table.action_edge(0)

    def set_scope(self, scope: Scope | None) -> None:
        self.scope = scope
        self.recompute()

    @property
    def query_errors(self) -> tuple[str, ...]:
        return self._query.errors

    # -- data ----------------------------------------------------------------

    def update(self, snapshot: FleetSnapshot, context: Context) -> None:
        self._snapshot = snapshot
        self._ctx = context
        self.recompute()

    def source_rows(self, snapshot: FleetSnapshot) -> list[Any]:
        if self.kind == "hosts":
            return list(snapshot.nodes)
        if self.kind == "tenants":
            return list(snapshot.tenants)
        rows = snapshot.containers
        if self.scope is not None:
            if self.scope.kind == "node":
                return [c for c in rows if c.node == self.scope.name]
            return [c for c in rows if c.tenant == self.scope.name]
        return list(rows)

    def recompute(self) -> None:
        snap = self._snapshot
        if snap is None:
            return
        rows = self.source_rows(snap)
        self.total = len(rows)
        if not self._query.empty:
            match = _MATCHER[self.kind](self._query)
            rows = [r for r in rows if match(r)]
        rows = sort_rows(self.kind, rows, self.sort)
        if self.filter_text:
            self.table.empty_text = f"no {self.kind} match “{self.filter_text}” (esc clears the filter)"
        else:
            self.table.empty_text = f"no {self.kind}" + (f" on {self.scope.describe()}" if self.scope else "")
        self.table.set_rows(rows, self._ctx)
        self._update_title(len(rows))

    def title_text(self, shown: int) -> str:
        parts = [f"{KEYS[self.kind]} {TITLES[self.kind]}"]
        if self.scope is not None:
            parts[0] += f" › {self.scope.describe()}"
        count = f"{shown}" if shown == self.total else f"{shown} of {self.total}"
        parts.append(count)
        parts.append(f"sort {self.sort.describe()}")
        if self.filter_text:
            parts.append(f"/{self.filter_text}")
        return " · ".join(parts)

    def _update_title(self, shown: int) -> None:
        if self.is_mounted:
            self.query_one(".pane--title", OneLine).set(self.title_text(shown))
