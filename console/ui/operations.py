"""The UI's side of console.actions: import it if it is there, explain plainly if it is not.

The action bindings exist whether or not the actions package is importable;
without it they answer "actions unavailable: ..." instead of crashing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.safefs import StateFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActionsModule:
    actions: Any | None  # an console.actions.Actions (or a test double with plan/execute/rank_targets)
    unavailable: str | None  # why not, for the operator
    errors: tuple[type[BaseException], ...] = ()  # ActionError, ReadOnlyError when importable
    read_only_error: type[BaseException] | None = None
    audit_log: Any | None = None  # () -> the AuditLog the actions write (the default one without actions)


def _audit_of(actions: Any, default: Any) -> Any:
    """The audit log the actions object writes (a demo's own), else the default one."""
    audit = getattr(actions, "audit", None)
    return (lambda: audit) if callable(getattr(audit, "read", None)) else default


def load(inventory: Any, read_only: bool, demo_state: Path | None = None) -> ActionsModule:
    """``demo_state``: the demo's private state directory; its audit log and journals live there."""
    try:
        from console.actions import ActionError, Actions, ReadOnlyError  # type: ignore[attr-defined]
    except ImportError as exc:
        return ActionsModule(None, f"actions unavailable ({exc})")
    errors = (ActionError, ReadOnlyError, StateFileError)
    audit = None
    try:
        from console.actions import AuditLog  # type: ignore[attr-defined]

        audit = AuditLog
    except ImportError:
        pass
    if inventory is None:
        return ActionsModule(None, "actions unavailable (no inventory)", errors, ReadOnlyError, audit)
    try:
        if demo_state is not None:
            from console.actions.journal import Journal

            actions = Actions(inventory, read_only=read_only,
                              audit=AuditLog(Path(demo_state) / "audit.jsonl", demo=True),
                              journal=Journal(Path(demo_state) / "migrations", root=Path(demo_state)))
        else:
            actions = Actions(inventory, read_only=read_only)
    except Exception as exc:  # a broken actions setup must not take the console down
        log.exception("console.actions failed to start")
        return ActionsModule(None, f"actions unavailable ({type(exc).__name__}: {exc})")
    return ActionsModule(actions, None, errors, ReadOnlyError, _audit_of(actions, audit))


def wrap(actions: Any) -> ActionsModule:
    """A test double or a ready Actions object."""
    errors: tuple[type[BaseException], ...] = ()
    read_only_error = None
    audit = None
    try:
        from console.actions import ActionError, ReadOnlyError  # type: ignore[attr-defined]

        errors = (ActionError, ReadOnlyError, StateFileError)
        read_only_error = ReadOnlyError
        from console.actions import AuditLog  # type: ignore[attr-defined]

        audit = AuditLog
    except ImportError:
        pass
    return ActionsModule(actions, None, errors, read_only_error, _audit_of(actions, audit))


def target_for(snapshot_row: Any) -> Any:
    """The action target captured from a row at key-press time: a console.actions.Target when that
    module is importable (rank_targets needs one), else the "NODE/ID" / "NODE" spec string."""
    is_container = hasattr(snapshot_row, "id") and hasattr(snapshot_row, "node")
    try:
        from console.actions import Target  # type: ignore[attr-defined]
    except ImportError:
        return f"{snapshot_row.node}/{snapshot_row.id}" if is_container else str(snapshot_row.name)
    if is_container:
        return Target(node=snapshot_row.node, id=snapshot_row.id, name=snapshot_row.name,
                      tenant=snapshot_row.tenant, state=snapshot_row.state)
    state = "cordoned" if getattr(snapshot_row, "cordoned", False) else "up"
    return Target(node=snapshot_row.name, id="", name=snapshot_row.name, tenant="", state=state)


def verb_for(command: str, target: Any) -> str:
    """The concrete verb a toggle key means for this target, decided at key-press time."""
    if command == "stop":
        return "stop" if getattr(target, "state", "") in ("running", "paused", "restarting") else "start"
    if command == "pause":
        return "unpause" if getattr(target, "state", "") == "paused" else "pause"
    if command == "isolate":
        return "unisolate" if getattr(target, "isolated", False) else "isolate"
    if command == "cordon":
        return "uncordon" if getattr(target, "cordoned", False) else "cordon"
    return command
