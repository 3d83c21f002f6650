"""Typed Engine API errors: every failure names its node, endpoint, status and the daemon's words."""

from __future__ import annotations

import orjson

MAX_BODY_TEXT = 200  # characters of a non-JSON error body kept in a message


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


class DuplicateEngine(EngineError):
    """This node's daemon is one another node of the inventory already watches (same /info ID):
    counting its containers again would count every one twice."""

    kind = "duplicate"

    def __str__(self) -> str:
        return f"{self.node}: {self.message}"


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


def body_text(body: bytes, content_type: str | None = None) -> str:
    """One line for an HTTP error body: the daemon's JSON `message`, else the first line of a plain
    text body, and for a markup page (a web server or proxy, not a Docker API) only its content type:
    a whole HTML page must never land in a node's state column."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return " ".join(doc["message"].split()) or "(empty message)"
    except orjson.JSONDecodeError:
        pass
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    head = body[:512].lstrip().lower()
    if "html" in ctype or "xml" in ctype or head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return f"({ctype or 'text/html'}, not a Docker API)"
    text = body[:4096].decode("utf-8", errors="replace").strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return "(empty body)"
    return line if len(line) <= MAX_BODY_TEXT else line[: MAX_BODY_TEXT - 1] + "…"
