"""Actions on containers and nodes: restart, isolate, migrate, drain; node-side locks; the audit log.

No Textual here: the TUI and the CLI both call ``Actions`` (resolve -> plan -> execute).
"""

from console.actions.audit import AuditLog
from console.actions.core import Actions
from console.actions.types import (
    ACTIONS,
    ActionError,
    Plan,
    Progress,
    ReadOnlyError,
    Result,
    Target,
)

__all__ = ["ACTIONS", "ActionError", "Actions", "AuditLog", "Plan", "Progress", "ReadOnlyError", "Result", "Target"]
