"""A virtual table: draws only the rows on screen (the Line API), so 5,000 rows cost what 40 do.

Rows are plain model objects (frozen snapshots) in the order the pane computed;
cells come from a pure function `cell(row, column_key, context, width)`. The
table never measures content: column widths come from `columns.fit` on resize.
Pattern: Toolong's `log_lines.py` (ScrollView + render_line).

Because rows are immutable, a drawn row is kept (by the row object and whether
the cursor is on it) until the context, the width or the styles change: a
re-sort, a filter keystroke, a pane switch or a scroll redraws from that cache,
and a cursor move repaints only the two lines it touches.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.fmt import printable
from console.ui.cells import Cell, Context
from console.ui.columns import GAP, Column, Placed, clip, fit

STYLE_NAMES = ("ok", "warm", "hot", "dim", "bad", "stale", "spark", "badge-iso", "badge-busy")


class VirtualTable(ScrollView, can_focus=True):
    """Header on line 0 (fixed), rows below; a cursor that stays on the same row key across updates."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vtable--header", "vtable--cursor", "vtable--cursor-blurred", "vtable--empty", "vtable--sorted",
        *(f"vtable--{name}" for name in STYLE_NAMES),
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "page(1)", "Page down", show=False),
        Binding("home,g", "edge(0)", "Top", show=False),
        Binding("end,G", "edge(1)", "Bottom", show=False),
        Binding("enter", "select", "Open", show=False),
    ]
    DEFAULT_CSS = """
    VirtualTable { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False, repaint=False)  # watch_cursor repaints

    class Selected(Message):
        """Enter or double-click on a row."""

        def __init__(self, table: VirtualTable, row: Any) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> VirtualTable:
            return self.table

    class HeaderClicked(Message):
        def __init__(self, table: VirtualTable, column: Column) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(self, columns: tuple[Column, ...], cell: Callable[[Any, str, Context, int], Cell],
                 key: Callable[[Any], Hashable], *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = columns
        self.cell = cell
        self.row_key = key
        self.rows: Sequence[Any] = ()
        self.context = Context(now=0.0)
        self.empty_text = "nothing to show"
        self.sort_key: str | None = None
        self.sort_arrow = ""
        self._placed: tuple[Placed, ...] = fit(columns, 80)
        self._placed_for = -1
        self._styles: dict[str, Style] = {}
        self._combos: dict[tuple[Style, str, str | None], Style] = {}
        self._cursor_key: Hashable | None = None
        self._base: Style | None = None  # self.rich_style: walks the DOM, so once per style change
        # id(row), row mode -> (row, strip): the row is kept so its id cannot be reused meanwhile
        self._strips: dict[tuple[int, str], tuple[Any, Strip]] = {}

    # -- data --------------------------------------------------------------

    def set_rows(self, rows: Sequence[Any], context: Context) -> None:
        """Replace the rows; keep the cursor on the same key when it is still there."""
        self.rows = rows
        if context is not self.context:
            self._strips.clear()
        self.context = context
        index = -1
        if self._cursor_key is not None:
            key = self.row_key
            want = self._cursor_key
            for i, row in enumerate(rows):
                if key(row) == want:
                    index = i
                    break
        if index < 0:
            index = min(self.cursor, max(0, len(rows) - 1))
        self.virtual_size = Size(1, len(rows) + 1)
        self._set_cursor(index, scroll=index != self.cursor)
        self.refresh()

    def visible_rows(self) -> Sequence[Any]:
        """The rows on screen now (none when the table is not displayed)."""
        if not self.display or not self.is_mounted:
            return ()
        top = int(self.scroll_offset.y)
        return self.rows[top: top + max(0, self.size.height - 1)]  # one line is the header

    @property
    def current(self) -> Any | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor]
        return None

    def move_to_key(self, key: Hashable) -> bool:
        for i, row in enumerate(self.rows):
            if self.row_key(row) == key:
                self._set_cursor(i)
                return True
        return False

    def _set_cursor(self, index: int, scroll: bool = True) -> None:
        index = max(0, min(index, len(self.rows) - 1)) if self.rows else 0
        self._cursor_key = self.row_key(self.rows[index]) if self.rows else None
        self.cursor = index
        if scroll:
            self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def watch_cursor(self, old: int, new: int) -> None:
        """Repaint the lines the cursor left and reached; a scroll repaints the rest itself."""
        top = int(self.scroll_y)
        width, height = self.size
        for index in {old, new}:
            y = index - top + 1
            if 1 <= y < height:
                self.refresh(Region(0, y, width, 1))

    # -- actions -----------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        page = max(1, self.scrollable_content_region.height - 2)
        self._set_cursor(self.cursor + direction * page)

    def action_edge(self, end: int) -> None:
        self._set_cursor(len(self.rows) - 1 if end else 0)

    def action_select(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.Selected(self, row))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            for placed in self._layout():
                if placed.x <= event.x < placed.x + placed.width + GAP and placed.column.sort:
                    self.post_message(self.HeaderClicked(self, placed.column))
                    return
            return
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < len(self.rows):
            already = index == self.cursor
            self._set_cursor(index)
            if already or event.chain > 1:
                self.action_select()

    # -- rendering ---------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(1, len(self.rows) + 1)
        self._scroll_to_cursor()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._combos.clear()
        self._strips.clear()
        self._base = None

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"vtable--{name}", partial=True)
        return style

    def _layout(self, width: int | None = None) -> tuple[Placed, ...]:
        if width is None:
            width = self.scrollable_content_region.width
        if width != self._placed_for and width > 0:
            self._placed = fit(self.columns, width)
            self._placed_for = width
            self._strips.clear()
        return self._placed

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        placed = self._layout(width)
        base = self._base
        if base is None:
            base = self._base = self.rich_style
        if y == 0:
            return self._header(placed, width, base)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.rows):
            if index == 0 and not self.rows:
                text = clip(printable(f"  {self.empty_text}"), width)
                return Strip([Segment(text, base + self._style("empty"))], width)
            return Strip.blank(width, base)
        row = self.rows[index]
        mode = ("cursor" if self.has_focus else "cursor-blurred") if index == self.cursor else ""
        key = (id(row), mode)
        hit = self._strips.get(key)
        if hit is not None and hit[0] is row:
            return hit[1]
        if len(self._strips) > 1024:
            self._strips.clear()
        strip = self._row(row, mode, placed, width, base)
        self._strips[key] = (row, strip)
        return strip

    def _row(self, row: Any, mode: str, placed: tuple[Placed, ...], width: int, base: Style) -> Strip:
        ctx = self.context
        cell = self.cell
        segments: list[Segment] = []
        combo = self._combo
        row_style = combo(base, mode, None)
        gap = Segment(" " * GAP, row_style)
        last = len(placed) - 1
        for i, p in enumerate(placed):
            text, style_name = cell(row, p.column.key, ctx, p.width)
            # engine text (names, tenants, images, errors) never reaches the terminal raw
            segments.append(Segment(clip(printable(text), p.width, p.column.align, p.column.cut),
                                    combo(base, mode, style_name)))
            if i < last:
                segments.append(gap)
        return Strip(segments).adjust_cell_length(width, row_style)

    def _combo(self, base: Style, mode: str, name: str | None) -> Style:
        """base + row mode (cursor) + cell style, memoised: thousands of cells share a dozen styles."""
        key = (base, mode, name)
        style = self._combos.get(key)
        if style is None:
            style = base
            if mode and name and not name.startswith("badge"):
                # On the cursor row the cursor's colours win: a density colour on the cursor's
                # background may be unreadable (NOC: green on white). The cell keeps bold/italic;
                # badges keep their own background.
                style = style + self._style(name) + self._style(mode)
            else:
                if mode:
                    style = style + self._style(mode)
                if name:
                    style = style + self._style(name)
            self._combos[key] = style
        return style

    def _header(self, placed: tuple[Placed, ...], width: int, base: Style) -> Strip:
        head = base + self._style("header")
        segments: list[Segment] = []
        for i, p in enumerate(placed):
            label = p.column.label
            style = head
            if p.column.sort and p.column.sort == self.sort_key:
                label = f"{label}{self.sort_arrow}"
                style = head + self._style("sorted")
            segments.append(Segment(clip(label, p.width, p.column.align), style))
            if i < len(placed) - 1:
                segments.append(Segment(" " * GAP, head))
        return Strip(segments).adjust_cell_length(width, head)
