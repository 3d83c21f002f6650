"""Async Docker Engine API client for one node, on httpx.

One connection pool per node; every call has a timeout; every failure is an
EngineError carrying node, endpoint, HTTP status and the daemon's message.
Bodies and stream lines are size-bounded so a lying endpoint cannot balloon us.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from console.config import NodeConfig
from console.engine.errors import (
    EngineError,
    NodeTimeout,
    NodeUnreachable,
    ProtocolError,
    UnsupportedVersion,
    api_error,
    body_text,
)
from console.engine.keepalive import KeepAlivePool
from console.engine.rawstream import LineStream, StreamError, open_line_stream, status_error
from console.engine.transport import Endpoint, SSHTunnel, endpoint_for, make_client

MIN_API = (1, 41)
MAX_API = (1, 45)
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_PING_BYTES = 64 * 1024  # dockerd answers "OK"
MAX_LINE_SECONDS = 30.0  # a stream line, once begun, must end within this


def parse_api_version(text: str) -> tuple[int, int]:
    major, _, minor = text.strip().partition(".")
    return int(major), int(minor)


class EngineClient:
    """The Engine API of one node."""

    def __init__(self, node: NodeConfig, timeout: float | None = None) -> None:
        self.node = node
        self.name = node.name
        self.timeout = timeout if timeout is not None else node.timeout
        self.api_version: str | None = None
        # "podman" when the node answers with a `Libpod-Api-Version` header (Podman's compat
        # service), else "docker"; set by ping(). Callers adapt where the engines differ.
        self.engine = "docker"
        self.libpod_version: str | None = None
        self._tunnel = SSHTunnel(node.url) if node.scheme == "ssh" else None
        self._http: httpx.AsyncClient | None = None
        self._endpoint: Endpoint | None = None
        self._pool: KeepAlivePool | None = None

    # -- lifecycle -----------------------------------------------------------

    async def _client(self) -> httpx.AsyncClient:
        if self._tunnel is not None:
            try:
                await self._tunnel.ensure(timeout=max(self.timeout, 10.0))
            except (OSError, TimeoutError) as exc:
                raise NodeUnreachable(self.name, "ssh", str(exc)) from exc
        if self._http is None:
            try:
                endpoint = endpoint_for(self.node, self._tunnel.socket if self._tunnel else None)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise NodeUnreachable(self.name, "tls", str(exc)) from exc
            self._http = make_client(endpoint, self.timeout)
            self._endpoint = endpoint
        return self._http

    async def aclose(self) -> None:
        self._drop_pool()
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        if self._tunnel is not None:
            await self._tunnel.close()
            self._tunnel.cleanup()

    async def reset(self) -> None:
        """Drop pooled connections (after a node went away) but keep the tunnel object."""
        self._drop_pool()
        http, self._http = self._http, None
        if http is not None:
            with contextlib.suppress(Exception):
                await http.aclose()

    def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _lean_pool(self) -> KeepAlivePool | None:
        """The node's keep-alive pool for small GETs; None over TLS (httpx's pool serves those)."""
        if self._pool is None and self._endpoint is not None and not self._endpoint.base_url.startswith("https:"):
            self._pool = KeepAlivePool(self._endpoint, self.timeout)
        return self._pool

    def _path(self, path: str) -> str:
        if path.startswith("/_ping") or self.api_version is None:
            return path
        return f"/v{self.api_version}{path}"

    # -- plumbing ------------------------------------------------------------

    def _map_exc(self, endpoint: str, exc: Exception) -> EngineError:
        if isinstance(exc, EngineError):
            return exc
        if isinstance(exc, httpx.TimeoutException):
            return NodeTimeout(self.name, endpoint, f"no answer within {self.timeout:g}s ({type(exc).__name__})")
        if isinstance(exc, ssl.SSLError) or "[SSL" in str(exc):
            return NodeUnreachable(self.name, endpoint, self._tls_reason(str(exc) or type(exc).__name__))
        if isinstance(exc, httpx.ConnectError | httpx.ProxyError):
            return NodeUnreachable(self.name, endpoint, self._connect_reason(exc))
        if isinstance(exc, httpx.ReadError | httpx.WriteError):
            # Often empty (the daemon died under a pooled connection): say what happened, with the cause.
            way = "reading" if isinstance(exc, httpx.ReadError) else "writing"
            root: BaseException | None = exc
            while root is not None and not str(root):
                root = root.__cause__ or root.__context__
            detail = str(root) if root is not None else "the daemon closed it"
            return ProtocolError(self.name, endpoint, f"connection lost while {way}: {detail}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
            return ProtocolError(self.name, endpoint, str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.HTTPError | OSError | ssl.SSLError):
            return NodeUnreachable(self.name, endpoint, str(exc) or type(exc).__name__)
        return ProtocolError(self.name, endpoint, f"{type(exc).__name__}: {exc}")

    def _tls_reason(self, text: str) -> str:
        """OpenSSL's words, prefixed with what they mean for a docker daemon's mutual TLS."""
        detail = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text).strip()
        tls = self.node.tls
        if "CERTIFICATE_VERIFY_FAILED" in text:
            if "mismatch" in text:
                hint = "the daemon's certificate is not issued for this host name or address"
            elif tls is None or tls.ca is None:
                hint = "the daemon's certificate does not chain to the system CAs (set tls ca to the CA that signed it)"
            else:
                hint = f"the daemon's certificate is not signed by the CA in {tls.ca}"
        elif any(alert in text for alert in ("BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "UNKNOWN_CA",
                                             "CERTIFICATE_UNKNOWN")):
            hint = "the daemon refused our client certificate"
            if tls is None or tls.cert is None:
                hint += " (none is configured, and the daemon requires one: set tls cert and key)"
        elif "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
            hint = "the daemon does not speak TLS on this port"
        else:
            hint = "handshake failed"
        return f"TLS: {hint}: {detail}"

    def _connect_reason(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        if self.node.scheme == "unix":
            path = self.node.url[len("unix://"):]
            if "No such file" in text:
                return f"no socket at {path} (daemon not running?)"
            if "Connection refused" in text:
                return f"connection refused on {path} (daemon not running?)"
        return text

    async def _read_bounded(self, resp: httpx.Response, endpoint: str, limit: int) -> bytes:
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ProtocolError(self.name, endpoint, f"body of {declared} bytes exceeds the {limit}-byte limit",
                                resp.status_code)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                # The traceback keeps this frame (and its locals) alive until the cyclic GC runs, so a
                # node retried every few seconds would pile up a dead body per attempt: drop it now.
                chunks.clear()
                raise ProtocolError(self.name, endpoint, f"body exceeds the {limit}-byte limit", resp.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _exchange(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None, headers: Mapping[str, str] | None = None,
        timeout: float | None = None, limit: int = MAX_JSON_BYTES,
    ) -> tuple[httpx.Response, bytes]:
        """Send one request and read its whole body, bounded in size and in total time.

        httpx's timeouts bound each network read, so a peer sending a byte a second never trips
        them; `timeout` (default: the node's per-call timeout) bounds the whole exchange.
        """
        endpoint = f"{method} {path}"
        total = timeout if timeout is not None else self.timeout
        try:
            http = await self._client()  # outside the deadline: an ssh tunnel has its own
            async with asyncio.timeout(total):
                req = http.build_request(method, self._path(path), params=params, content=content, headers=headers,
                                         timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
                resp = await http.send(req, stream=True)
                try:
                    data = await self._read_bounded(resp, endpoint, limit)
                finally:
                    await resp.aclose()
        except TimeoutError as exc:
            raise NodeTimeout(self.name, endpoint, f"no complete answer within {total:g}s") from exc
        except Exception as exc:  # mapped to typed errors; nothing escapes untyped
            raise self._map_exc(endpoint, exc) from exc
        return resp, data

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        limit: int = MAX_JSON_BYTES,
    ) -> tuple[int, bytes]:
        """One bounded request. HTTP errors (>= 400) raise APIError with the daemon's message."""
        resp, data = await self._request(method, path, params=params, json=json, content=content,
                                         headers=headers, timeout=timeout, limit=limit)
        return resp.status_code, data

    async def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
        content: bytes | AsyncIterator[bytes] | None = None, headers: Mapping[str, str] | None = None,
        timeout: float | None = None, limit: int = MAX_JSON_BYTES,
    ) -> tuple[httpx.Response, bytes]:
        endpoint = f"{method} {path}"
        body = orjson.dumps(json) if json is not None else content
        hdrs = dict(headers or {})
        if json is not None:
            hdrs["Content-Type"] = "application/json"
        resp, data = await self._exchange(method, path, params=params, content=body, headers=hdrs,
                                          timeout=timeout, limit=limit)
        if 300 <= resp.status_code < 400:
            raise ProtocolError(self.name, endpoint, f"unexpected redirect to {resp.headers.get('location', '?')}",
                                resp.status_code)
        if resp.status_code >= 400:
            raise api_error(self.name, endpoint, resp.status_code,
                            body_text(data, resp.headers.get("content-type")))
        return resp, data

    async def get_json(self, path: str, **kw: Any) -> Any:
        return await self.request_json("GET", path, **kw)

    async def request_json(self, method: str, path: str, **kw: Any) -> Any:
        resp, data = await self._request(method, path, **kw)
        if not data:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            ctype = resp.headers.get("content-type", "")
            if ctype and "json" not in ctype:  # a proxy's or web server's page, not the daemon
                text = body_text(data, ctype)
                if not text.endswith("not a Docker API)"):
                    text = f"({ctype}, not a Docker API): {text[:60]}"
                reason = f"invalid JSON: the answer is {text}"
            else:
                reason = f"invalid JSON: {exc}"
            raise ProtocolError(self.name, f"{method} {path}", reason) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None, headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """An open streaming response (raises APIError on HTTP errors). read_timeout=None waits forever
        between chunks, which is right for event and stats streams that may legitimately idle."""
        endpoint = f"{method} {path}"
        try:
            http = await self._client()
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0), read=read_timeout)
            req = http.build_request(method, self._path(path), params=params, content=content,
                                     headers=headers, timeout=timeout)
            resp = await http.send(req, stream=True)
        except Exception as exc:
            raise self._map_exc(endpoint, exc) from exc
        try:
            if resp.status_code >= 300:
                data = b""
                with contextlib.suppress(Exception):
                    data = await self._read_bounded(resp, endpoint, 64 * 1024)
                if resp.status_code >= 400:
                    raise api_error(self.name, endpoint, resp.status_code,
                            body_text(data, resp.headers.get("content-type")))
                raise ProtocolError(self.name, endpoint, "unexpected redirect", resp.status_code)
            yield resp
        except EngineError:
            raise
        except (httpx.HTTPError, OSError) as exc:
            raise self._map_exc(endpoint, exc) from exc
        finally:
            await resp.aclose()

    async def open_lines(self, path: str, on_line: Callable[[bytes], None],
                         on_close: Callable[[Exception | None], None], *, once: bool = False) -> LineStream:
        """A lean line stream (see rawstream): callbacks per line, no task per line. `once`: a
        single answer on a connection of its own (`Connection: close`), e.g. a one-shot sample."""
        endpoint = f"GET {path.split('?', 1)[0]}"
        await self._client()
        assert self._endpoint is not None
        try:
            return await open_line_stream(self._endpoint, self._path(path), on_line, on_close, self.timeout,
                                          once=once)
        except Exception as exc:
            raise self._raw_error(endpoint, exc, "no connection") from exc

    def _raw_error(self, endpoint: str, exc: Exception, late: str) -> EngineError:
        """The typed error for a failure on one of rawstream's own connections."""
        if isinstance(exc, TimeoutError):
            return NodeTimeout(self.name, endpoint, f"{late} within {self.timeout:g}s")
        if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
            return NodeUnreachable(self.name, endpoint, self._connect_reason(httpx.ConnectError(str(exc))))
        if isinstance(exc, StreamError):
            return ProtocolError(self.name, endpoint, str(exc), exc.status)
        return self._map_exc(endpoint, exc)

    async def get_json_lean(self, path: str) -> Any:
        """A small GET on the node's keep-alive pool (see keepalive), decoded: a fraction of an
        httpx request's CPU and no connection of its own, for the poller's many reads that dockerd
        answers at once (inspects at start-up). Over TLS, the pooled httpx client."""
        await self._client()
        pool = self._lean_pool()
        if pool is None:
            return await self.get_json(path)
        endpoint = f"GET {path.split('?', 1)[0]}"
        try:
            status, body = await pool.get(self._path(path))
        except Exception as exc:
            raise self._raw_error(endpoint, exc, "no complete answer") from exc
        if status != 200:
            err = status_error(status, body)
            raise api_error(self.name, endpoint, status, err.detail or str(err))
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(self.name, endpoint, f"invalid JSON: {exc}") from exc

    async def inspect_lean(self, cid: str) -> dict[str, Any]:
        doc = await self.get_json_lean(f"/containers/{quote(cid, safe='')}/json")
        if not isinstance(doc, dict):
            raise ProtocolError(self.name, "GET /containers/{id}/json", f"expected a JSON object, got {type(doc).__name__}")
        return doc

    async def stats_once(self, cid: str) -> dict[str, Any]:
        return await self._expect_dict(f"/containers/{quote(cid, safe='')}/stats",
                                       params={"stream": "false", "one-shot": "true"})

    async def json_lines(self, resp: httpx.Response, endpoint: str) -> AsyncIterator[Any]:
        """Decode a newline-delimited JSON stream.

        A line is bounded in size (MAX_LINE_BYTES) and, once begun, in time (MAX_LINE_SECONDS):
        dockerd writes each line at once, so a line still incomplete after that long is a peer
        trickling or stuck mid-write, not an idle stream. A stream that ends in the middle of a
        line was cut short, and says so instead of dropping the fragment silently.
        """
        buf = bytearray()
        begun = 0.0  # loop time the pending partial line began
        loop = asyncio.get_running_loop()
        chunks = resp.aiter_raw().__aiter__()
        try:
            while True:
                try:
                    if buf:
                        async with asyncio.timeout(max(0.0, begun + MAX_LINE_SECONDS - loop.time())):
                            chunk = await chunks.__anext__()
                    else:
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise ProtocolError(self.name, endpoint,
                                        f"stream line incomplete after {MAX_LINE_SECONDS:g}s ({len(buf)} bytes"
                                        " so far): the node is trickling or stuck") from None
                seen = len(buf)
                if not buf:
                    begun = loop.time()
                buf += chunk
                end = buf.rfind(b"\n", seen)
                if end >= 0:
                    lines = bytes(buf[:end]).split(b"\n")
                    del buf[:end + 1]
                    begun = loop.time()
                    for line in lines:
                        if line.strip():
                            yield self._json_line(line, endpoint)
                if len(buf) > MAX_LINE_BYTES:
                    buf.clear()  # as in _read_bounded: do not let the traceback hold the junk
                    raise ProtocolError(self.name, endpoint, f"stream line exceeds {MAX_LINE_BYTES} bytes")
            if buf.strip():
                try:
                    last = orjson.loads(buf)
                except orjson.JSONDecodeError:
                    raise ProtocolError(self.name, endpoint, f"stream ended in the middle of a line "
                                        f"({len(buf)} bytes without a newline): truncated") from None
                yield last
        except EngineError:
            raise
        except Exception as exc:
            raise self._map_exc(endpoint, exc) from exc

    def _json_line(self, line: bytes, endpoint: str) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(self.name, endpoint, f"invalid JSON in stream: {exc}") from exc

    # -- system --------------------------------------------------------------

    async def ping(self) -> str:
        """Negotiate the API version from /_ping; refuse daemons older than 1.41."""
        resp, body = await self._exchange("GET", "/_ping", limit=MAX_PING_BYTES)
        if 300 <= resp.status_code < 400:
            raise ProtocolError(self.name, "GET /_ping", f"unexpected redirect to {resp.headers.get('location', '?')}",
                                resp.status_code)
        if resp.status_code != 200:
            raise api_error(self.name, "GET /_ping", resp.status_code,
                            body_text(body, resp.headers.get("content-type")))
        header = resp.headers.get("API-Version")
        if not header:
            raise ProtocolError(self.name, "GET /_ping", "no API-Version header: not a Docker Engine API")
        try:
            server = parse_api_version(header)
        except ValueError as exc:
            raise ProtocolError(self.name, "GET /_ping", f"bad API-Version header {header!r}") from exc
        if server < MIN_API:
            raise UnsupportedVersion(self.name, "GET /_ping",
                                     f"daemon API {header} is older than the minimum 1.41 (Docker 20.10)")
        self.libpod_version = resp.headers.get("Libpod-Api-Version") or None
        self.engine = "podman" if self.libpod_version else "docker"
        use = min(server, MAX_API)
        self.api_version = f"{use[0]}.{use[1]}"
        return self.api_version

    async def info(self) -> dict[str, Any]:
        return await self._expect_dict("/info")

    async def version(self) -> dict[str, Any]:
        return await self._expect_dict("/version")

    async def _expect_dict(self, path: str, **kw: Any) -> dict[str, Any]:
        doc = await self.get_json(path, **kw)
        if not isinstance(doc, dict):
            raise ProtocolError(self.name, f"GET {path}", f"expected a JSON object, got {type(doc).__name__}")
        return doc

    async def _expect_list(self, path: str, **kw: Any) -> list[Any]:
        doc = await self.get_json(path, **kw)
        if not isinstance(doc, list):
            raise ProtocolError(self.name, f"GET {path}", f"expected a JSON array, got {type(doc).__name__}")
        return doc

    # -- containers ----------------------------------------------------------

    async def containers(self, all: bool = True, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {"all": "1" if all else "0"}
        if filters:
            params["filters"] = orjson.dumps(filters).decode()
        return await self._expect_list("/containers/json", params=params)

    async def inspect(self, cid: str) -> dict[str, Any]:
        return await self._expect_dict(f"/containers/{quote(cid, safe='')}/json")

    async def top(self, cid: str) -> dict[str, Any]:
        return await self._expect_dict(f"/containers/{quote(cid, safe='')}/top")

    async def changes(self, cid: str) -> list[dict[str, Any]]:
        doc = await self.get_json(f"/containers/{quote(cid, safe='')}/changes")
        return doc or []

    async def logs(self, cid: str, *, tail: int | None = 200, follow: bool = True, since: float | None = None,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """GET /containers/{id}/logs as raw chunks: multiplexed frames (8-byte headers) unless the
        container has a TTY. A followed stream never times out on idle; it ends when the container does."""
        params: dict[str, str] = {"follow": "1" if follow else "0", "stdout": "1", "stderr": "1",
                                  "timestamps": "1" if timestamps else "0",
                                  "tail": "all" if tail is None else str(max(0, int(tail)))}
        if since is not None:
            params["since"] = f"{since:.9f}"
        async with self.stream("GET", f"/containers/{quote(cid, safe='')}/logs", params=params,
                               read_timeout=None if follow else self.timeout) as resp:
            async for chunk in resp.aiter_raw():
                yield chunk

    async def container_action(self, cid: str, action: str, params: Mapping[str, Any] | None = None,
                               timeout: float | None = None) -> None:
        """POST /containers/{id}/{start|stop|restart|pause|unpause|kill} (304 'already so' is success)."""
        await self.request("POST", f"/containers/{quote(cid, safe='')}/{action}", params=params, timeout=timeout)

    async def events(self, since: float | None = None, filters: Mapping[str, list[str]] | None = None,
                     on_open: Callable[[], None] | None = None) -> AsyncIterator[dict[str, Any]]:
        """The /events stream (never times out on idle); `on_open` runs once the daemon said 200."""
        params: dict[str, str] = {}
        if since is not None:
            params["since"] = f"{since:.9f}"
        if filters:
            params["filters"] = orjson.dumps(filters).decode()
        async with self.stream("GET", "/events", params=params) as resp:
            if on_open is not None:
                on_open()
            async for ev in self.json_lines(resp, "GET /events"):
                if isinstance(ev, dict):
                    yield ev
