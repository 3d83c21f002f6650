"""The UI's rules for turning a row under the cursor into an intent (console.actions' vocabulary)."""

from __future__ import annotations

from console.actions.types import Target
from console.fleet.model import ContainerSnapshot, NodeSnapshot


def target_for(row: ContainerSnapshot | NodeSnapshot) -> Target:
    """The action target captured from a row at key-press time (the table may change under the finger)."""
    if isinstance(row, ContainerSnapshot):
        return Target(node=row.node, id=row.id, name=row.name, tenant=row.tenant, state=row.state)
    return Target(node=row.name, id="", name=row.name, tenant="", state="cordoned" if row.cordoned else "up")


def verb_for(command: str, target: ContainerSnapshot | NodeSnapshot) -> str:
    """The concrete verb a toggle key means for this target, decided at key-press time."""
    if isinstance(target, ContainerSnapshot):
        if command == "stop":
            return "stop" if target.state in ("running", "paused", "restarting") else "start"
        if command == "pause":
            return "unpause" if target.state == "paused" else "pause"
        if command == "isolate":
            return "unisolate" if target.isolated else "isolate"
    elif command == "cordon":
        return "uncordon" if target.cordoned else "cordon"
    return command
