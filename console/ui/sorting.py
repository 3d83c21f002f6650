"""Sort keys for the three panes: pure functions over snapshot lists.

CPU and memory sort descending first (the question is always "who is eating
this node"), names ascending; pressing the same key again reverses. Rows with
no figure yet (no second stats sample, node down) always sort last, so an
unknown never masquerades as zero at the top or the bottom of a ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from console.fleet.model import ContainerSnapshot, NodeSnapshot, TenantSnapshot

T = TypeVar("T")

SORT_KEYS = ("cpu", "mem", "name")
_DESCENDING_FIRST = {"cpu", "mem"}


@dataclass(frozen=True, slots=True)
class Sort:
    key: str = "cpu"
    reverse: bool = True  # True = descending

    def toggled(self, key: str) -> Sort:
        if key == self.key:
            return Sort(key, not self.reverse)
        return Sort(key, key in _DESCENDING_FIRST)

    @property
    def arrow(self) -> str:
        return "↓" if self.reverse else "↑"

    def describe(self) -> str:
        return f"{self.key} {self.arrow}"


_CONTAINER: dict[str, Callable[[ContainerSnapshot], Any]] = {
    "cpu": lambda c: None if c.stale else c.cpu_percent,  # a down node's last known sorts as unknown
    "mem": lambda c: None if c.stale else c.mem_used,
    "name": lambda c: c.name.lower(),
}
_NODE: dict[str, Callable[[NodeSnapshot], Any]] = {
    "cpu": lambda n: n.density.cpu_density if n.up else None,
    "mem": lambda n: n.density.mem_density if n.up else None,
    "name": lambda n: n.name.lower(),
}
_TENANT: dict[str, Callable[[TenantSnapshot], Any]] = {
    "cpu": lambda t: t.cpu_cores_used,
    "mem": lambda t: t.mem_used,
    "name": lambda t: t.name.lower(),
}
KEYS: dict[str, dict[str, Callable[[Any], Any]]] = {"containers": _CONTAINER, "hosts": _NODE, "tenants": _TENANT}
_TIE: dict[str, Callable[[Any], Any]] = {
    "containers": lambda c: (c.name, c.node, c.id),
    "hosts": lambda n: n.name,
    "tenants": lambda t: t.name,
}


def sort_rows(kind: str, rows: Sequence[T], sort: Sort) -> list[T]:
    """Stable, deterministic order: the key, then name as the tie-break; unknown figures last."""
    key = KEYS[kind][sort.key]
    ordered = sorted(rows, key=_TIE[kind])
    known = [r for r in ordered if key(r) is not None]
    unknown = [r for r in ordered if key(r) is None]
    known.sort(key=key, reverse=sort.reverse)
    return known + unknown
