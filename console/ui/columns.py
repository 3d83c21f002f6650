"""Column layout: which columns fit a width, dropped by priority, widened where it helps.

Pure: the virtual table asks `fit(columns, width)` on resize only, never per poll,
so widths never jitter while figures change (STYLE.md: no re-measuring per poll).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GAP = 1  # spaces between columns


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int  # minimum width
    priority: int = 0  # 0 never dropped; higher numbers drop first
    align: Literal["left", "right"] = "left"
    grow: int = 0  # extra columns this one may take when space is left
    sort: str | None = None  # sort key a header click selects


@dataclass(frozen=True, slots=True)
class Placed:
    column: Column
    x: int
    width: int


def fit(columns: tuple[Column, ...], width: int) -> tuple[Placed, ...]:
    """Keep columns by priority (stable within a priority) until the width is used; grow the growable."""
    order = sorted(range(len(columns)), key=lambda i: (columns[i].priority, i))
    kept: set[int] = set()
    used = 0
    for i in order:
        need = columns[i].width + (GAP if kept else 0)
        if used + need > width and columns[i].priority > 0:
            continue
        kept.add(i)
        used += need
    chosen = [columns[i] for i in range(len(columns)) if i in kept]
    widths = [c.width for c in chosen]
    spare = max(0, width - used)
    # Spare columns go to growable columns in order of importance (priority, then position),
    # each up to its allowance: the state reason of a down node beats a wider image name.
    extra = [0] * len(chosen)
    for i in sorted((i for i, c in enumerate(chosen) if c.grow), key=lambda i: (chosen[i].priority, i)):
        give = min(spare, chosen[i].grow)
        extra[i] = give
        spare -= give
    placed = []
    x = 0
    for c, w, e in zip(chosen, widths, extra, strict=True):
        placed.append(Placed(c, x, w + e))
        x += w + e + GAP
    return tuple(placed)


def clip(text: str, width: int, align: str = "left") -> str:
    """Exactly `width` cells (ASCII-width assumption for speed; wide glyphs are not used in cells)."""
    if len(text) > width:
        return text[: max(0, width - 1)] + "…" if width > 0 else ""
    return text.rjust(width) if align == "right" else text.ljust(width)
