"""Text from outside Berth (engines, audit records, errors, typed input) placed into Textual markup.

Textual parses a widget's string as *its* markup (Content.from_markup), where more than Rich's
tags are live: ``[$accent]`` styles and ``[Bold]`` or ``[ x]`` vanish, and rich.markup.escape
leaves all three alone; a ``[/]`` with nothing open crashes the app (MarkupError). So every
outside string is put into markup through ``escape`` here: shown printable (no control characters
or bidi overrides reach the terminal, see console.fmt.printable) and with every ``[`` escaped,
which Textual's markup turns back into a literal ``[`` whatever follows it.
"""

from __future__ import annotations

from console.fmt import printable


def escape(text: object) -> str:
    """``text`` as literal, terminal-safe Textual markup."""
    out = printable(str(text)).replace("[", "\\[")
    # A trailing backslash would escape the tag the caller puts next ("name\" + "[/]"): Textual's
    # markup has no way to write a backslash right before a tag, so one space keeps them apart.
    return out + " " if out.endswith("\\") else out
