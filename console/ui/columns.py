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
    cut: Literal["end", "middle"] = "end"  # names cut in the middle: their distinguishing tail stays


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


def clip(text: str, width: int, align: str = "left", cut: str = "end") -> str:
    """Exactly `width` cells (ASCII-width assumption for speed; wide glyphs are not used in cells).

    `cut="middle"` keeps both ends (`hooli-w…ker-04`): fleet names share a prefix and differ at
    the end, so an end cut (`hooli-worker-0…`) hides what tells them apart. The tail gets the odd cell.
    """
    if len(text) > width:
        if width <= 0:
            return ""
        if cut == "middle" and width >= 5:
            tail = width // 2
            return text[: width - 1 - tail] + "…" + text[len(text) - tail:]
        return text[: width - 1] + "…"
    return text.rjust(width) if align == "right" else text.ljust(width)
