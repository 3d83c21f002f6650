"""The values actions exchange with their callers (TUI and CLI alike): all frozen, none doing I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTAINER_ACTIONS = ("restart", "stop", "start", "pause", "unpause", "isolate", "unisolate", "migrate")
NODE_ACTIONS = ("cordon", "uncordon", "drain")
RECOVERY_ACTIONS = ("recover",)  # its target is a journaled migration id (console/actions/recovery.py)
ACTIONS = CONTAINER_ACTIONS + NODE_ACTIONS + RECOVERY_ACTIONS


class ActionError(Exception):
    """A refusal or failure the operator reads as one line."""

    def __init__(self, message: str) -> None:
        self.message = " ".join(str(message).split()) or "action failed"
        super().__init__(self.message)


class Refused(ActionError):
    """Refused before anything changed (pre-flight, a lock held by someone else): exit status 3, not 1."""


class ReadOnlyError(ActionError):
    """The console runs read-only: every mutating action is refused."""


@dataclass(frozen=True)
class Target:
    """What an action is aimed at, captured when the operator chose it.

    Node-level actions (cordon, uncordon, drain) use ``id == ""`` and ``name == node``.
    """

    node: str
    id: str
    name: str
    tenant: str
    state: str

    @property
    def is_node(self) -> bool:
        return not self.id

    @property
    def label(self) -> str:
        return self.node if self.is_node else f"{self.node}/{self.name}"


@dataclass(frozen=True)
class Plan:
    """A checked intent: nothing has changed yet. ``summary`` is what the confirmation dialog shows."""

    action: str
    target: Target
    params: Mapping[str, Any]
    summary: tuple[str, ...]

    @property
    def bulk(self) -> bool:
        """Bulk plans (drain) want the operator to type the node name, not just say yes."""
        return self.action == "drain"


@dataclass(frozen=True)
class Progress:
    phase: str  # plan | lock | pre-copy | switch | finalize | rollback | done (migrate); action name otherwise
    detail: str
    bytes_done: int
    elapsed: float  # seconds since execute() began


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str
    audit_id: str
    downtime: float | None = None  # seconds, migrate only: source stopped -> target running (healthy)
    details: Mapping[str, Any] = field(default_factory=dict)
    refused: bool = False  # not ok, and nothing changed: found at execution (the plan was older than the facts)
