"""What screens ask of the app: messages that bubble up, instead of calls into the app.

A screen knows nothing of the app's attributes; it posts one of these and the app
(which owns the snapshot, the activity line and navigation) decides.
"""

from __future__ import annotations

from textual.message import Message

from console.fleet.model import ContainerSnapshot


class NeedSnapshot(Message):
    """A screen was mounted: apply the latest snapshot to it (if there is one yet)."""


class Activity(Message):
    """One line for the activity strip (and a toast for errors and results)."""

    def __init__(self, text: str, *, error: bool = False, ok: bool = False) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.ok = ok


class OpenDetail(Message):
    def __init__(self, container: ContainerSnapshot) -> None:
        super().__init__()
        self.container = container


class RunCommandLine(Message):
    """A `:` command line, as typed."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line
