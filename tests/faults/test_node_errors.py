"""What a node's error says on screen: one line, the node named once, never a web page.

A real non-Docker HTTP server (Python's own http.server, answering every path
with its HTML 404 page) stands in for an inventory entry that points at the
wrong port: the node is down with a one-line reason naming the content type.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import faultkit
import pytest

from console.engine.errors import body_text
from console.fleet.alerts import derive_alerts
from console.fleet.model import NodeState
from console.fleet.poller import Fleet
from console.config import AlertThresholds
from console.ui.cells import Context, node_state


@pytest.fixture
def web_server(tmp_path) -> Iterator[str]:
    """A plain web server with an empty document root: every Engine API path is its HTML 404 page."""

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_web_servers_404_page_is_one_line_naming_its_content_type(web_server: str) -> None:
    """Given a node whose URL answers with a web server's HTML 404 page, when Berth connects,
    then the node is down with one short line naming text/html, without the page or the node's name."""
    inv = faultkit.inventory([("web", web_server, "insecure = true", "timeout = 3")])

    async def watch():
        async with Fleet(inv, publish_interval=0.1) as fleet:
            return await faultkit.wait_for(fleet, lambda s: faultkit.state(s, "web") is NodeState.DOWN
                                           and bool(s.node("web").error), 15, "web node down")

    snap = asyncio.run(watch())
    node = snap.node("web")
    assert node.error == "GET /_ping: 404 (text/html, not a Docker API)"
    cell = node_state(node, Context(now=snap.taken_at), width=60)
    assert "\n" not in cell.text and "<" not in cell.text and len(cell.text) <= 60
    alert = next(a for a in derive_alerts(snap, AlertThresholds(), snap.taken_at) if a.kind == "node-down")
    assert alert.text == "web down: GET /_ping: 404 (text/html, not a Docker API)"
    assert alert.text.count("web") == 1


@pytest.mark.parametrize(("body", "ctype", "expected"), [
    (b'{"message":"page not found"}', "application/json", "page not found"),
    (b"<!DOCTYPE html>\n<html><body><h1>404</h1>" + b"x" * 5000, None, "(text/html, not a Docker API)"),
    (b"<html><title>502</title></html>", "text/html; charset=utf-8", "(text/html, not a Docker API)"),
    (b"upstream connect error\nsecond line", "text/plain", "upstream connect error"),
    (b"y" * 1000, "text/plain", "y" * 199 + "…"),
    (b"", None, "(empty body)"),
])
def test_error_bodies_become_one_bounded_line(body: bytes, ctype: str | None, expected: str) -> None:
    assert body_text(body, ctype) == expected
