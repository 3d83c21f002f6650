"""Typed Engine API errors: every failure names its node, endpoint, status and the daemon's words."""

from __future__ import annotations


class EngineError(Exception):
    """Base for everything that can go wrong talking to one node."""

    kind = "error"

    def __init__(self, node: str, endpoint: str, message: str, status: int | None = None) -> None:
        self.node = node
        self.endpoint = endpoint
        self.status = status
        self.message = " ".join(str(message).split())[:500] or self.kind
        super().__init__(str(self))

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.node}: {self.endpoint}:{status} {self.message}"


class NodeUnreachable(EngineError):
    """Could not connect at all (socket missing, refused, DNS, TLS handshake)."""

    kind = "unreachable"


class NodeTimeout(EngineError):
    """Connected (or tried to) but the node did not answer in time."""

    kind = "timeout"


class ProtocolError(EngineError):
    """The node answered something that is not the Engine API: bad JSON, wrong type, too big."""

    kind = "protocol"


class UnsupportedVersion(EngineError):
    kind = "version"


class APIError(EngineError):
    """The daemon answered with an HTTP error and (usually) a JSON message."""

    kind = "api"


class NotFound(APIError):
    kind = "not found"


class Conflict(APIError):
    kind = "conflict"


def api_error(node: str, endpoint: str, status: int, message: str) -> APIError:
    cls = NotFound if status == 404 else Conflict if status == 409 else APIError
    return cls(node, endpoint, message, status)
