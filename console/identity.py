"""Who asks: the person behind an intent, as the front door that let them in knows them.

An ``Identity`` travels with every intent from the UI (or a CLI verb, or a remote
session) to ``console.actions``, which decides there, where the action runs, whether
that person may act, and writes them into the audit log. Nothing here does I/O
beyond reading the local user's name.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
Door = Literal["local", "ssh", "web"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A person at a front door. ``role`` decides; ``fingerprint``/``address`` are evidence for the audit."""

    user: str
    role: Role = "operator"
    door: Door = "local"
    fingerprint: str | None = None  # the SSH key's, as `ssh-keygen -l` prints it (SHA256:...)
    address: str | None = None  # the client's, for remote doors

    @property
    def may_act(self) -> bool:
        return self.role == "operator"

    @property
    def label(self) -> str:
        """'alice (viewer, ssh from 10.0.0.5)': for refusals and the audit pane."""
        where = f"{self.door} from {self.address}" if self.address else self.door
        return f"{self.user} ({self.role}, {where})"

    def record(self) -> dict[str, Any]:
        """The audit log's view: every field, none left out when unset (the reader sees what was known)."""
        return {"user": self.user, "role": self.role, "door": self.door, "fingerprint": self.fingerprint,
                "address": self.address}


def local_user() -> str:
    """OS user@host; the invoking user when run under sudo."""
    user = os.environ.get("SUDO_USER")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
            user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def local(role: Role = "operator", user: str | None = None) -> Identity:
    """The person at this terminal: an operator unless the console was started read-only."""
    return Identity(user or local_user(), role, "local")
