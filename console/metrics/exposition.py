"""`/metrics` over HTTP through prometheus-client, bound to the address the operator gave.

Two sources: the fleet's families from the current snapshot (console.metrics.collector), and
prometheus-client's ``ProcessCollector`` under the ``berth`` namespace for the serving process's
own CPU seconds and resident memory (``berth_process_cpu_seconds_total``,
``berth_process_resident_memory_bytes``). The HTTP server is prometheus-client's threaded WSGI
server on a daemon thread, so a scrape never runs on the poller's event loop (it takes the GIL
while it renders, which is what bench/metrics_scale.py measures).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer

from console.listen import Listen
from console.listen import parse_listen as _parse_listen
from console.metrics.collector import SnapshotCollector, SnapshotSource, render_text

DEFAULT_PORT = 9417  # unassigned in Prometheus' default port allocations wiki at the time of writing
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
# What render_text writes (and every Prometheus 2.x scrapes); the library's own latest is 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` for /metrics (console.listen), examples on Berth's exposition port."""
    return _parse_listen(text, DEFAULT_PORT)


def build_registry(collector: SnapshotCollector) -> CollectorRegistry:
    """A private registry (not the library's global one) with the fleet and this process, for
    callers that serve through prometheus-client's own WSGI/ASGI apps or push gateways."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(namespace="berth", registry=registry)
    return registry


class MetricsApp:
    """The WSGI app: `GET /metrics` answers the text format 0.0.4, gzipped when the scraper accepts it.

    The fleet's families are written by ``render_text`` (the same families ``SnapshotCollector``
    gives prometheus-client); the process's own figures by prometheus-client's ``generate_latest``
    over a registry holding only its ``ProcessCollector``.
    """

    def __init__(self, collector: SnapshotCollector) -> None:
        self.collector = collector
        self.process = CollectorRegistry(auto_describe=False)
        ProcessCollector(namespace="berth", registry=self.process)
        self._lock = threading.Lock()
        self.scrapes = 0
        self.cpu_seconds = 0.0  # CPU of the serving threads, rendering and compressing, over all scrapes

    def body(self) -> bytes:
        with self._lock:
            own = (
                "# HELP berth_exposition_scrapes_total Scrapes of /metrics answered before this one\n"
                "# TYPE berth_exposition_scrapes_total counter\n"
                f"berth_exposition_scrapes_total {float(self.scrapes)!r}\n"
                "# HELP berth_exposition_cpu_seconds_total CPU seconds spent rendering and compressing those\n"
                "# TYPE berth_exposition_cpu_seconds_total counter\n"
                f"berth_exposition_cpu_seconds_total {self.cpu_seconds!r}\n"
            )
        return render_text(self.collector.families()) + generate_latest(self.process) + own.encode()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "GET, HEAD")])
            return [b"only GET\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [b'<html><body><a href="/metrics">/metrics</a>: Berth\'s fleet for Prometheus</body></html>\n']
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: Berth serves /metrics\n"]
        started = time.thread_time()  # this request's thread only: not the poller's work meanwhile
        body = self.body()
        headers = [("Content-Type", CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)  # level 1: most of the saving at a fraction of the CPU
            headers.append(("Content-Encoding", "gzip"))
        with self._lock:
            self.scrapes += 1
            self.cpu_seconds += time.thread_time() - started
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """No access log on stderr: Prometheus scrapes every few seconds."""


class MetricsServer:
    """A running `/metrics` endpoint on its own daemon thread; ``close()`` stops it."""

    def __init__(self, app: MetricsApp, host: str, port: int) -> None:
        self.app = app
        self.collector = app.collector
        server_class: type[ThreadingWSGIServer] = ThreadingWSGIServer
        if ":" in host:  # an IPv6 literal
            server_class = type("ThreadingWSGIServerV6", (ThreadingWSGIServer,), {"address_family": socket.AF_INET6})
        self._server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="berth-metrics", daemon=True)
        self._thread.start()

    @property
    def address(self) -> Listen:
        host, port = self._server.server_address[:2]
        return Listen(str(host), int(port))

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_exposition(source: SnapshotSource, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                     stale_after: float = 15.0, shard: str = "") -> MetricsServer:
    """Serve ``source()`` (a poller's latest snapshot, e.g. ``lambda: feed.latest``) as `/metrics`
    on ``host:port`` (port 0: any free one, see ``.address``). Raises OSError when the address
    cannot be bound."""
    return MetricsServer(MetricsApp(SnapshotCollector(source, stale_after=stale_after, shard=shard)), host, port)
