"""Engine API operations the actions need beyond console.engine.client, as functions of an EngineClient.

Everything streams: images and archives go from one node's response body straight into the
other node's request body, so memory stays flat whatever the size.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

from console.actions.tarstream import Entry, TarFilter, filtered
from console.engine.client import EngineClient
from console.engine.errors import APIError, EngineError, NotFound

ROLE = "berth.role"
TARGET = "berth.target"
ACTION = "berth.action"
OWNER = "berth.owner"
SINCE = "berth.since"
STATE = "berth.state"
LONG = 3600.0  # seconds: bound for bulk transfers (per request, between chunks the stream timeout applies)


def q(text: str) -> str:
    return quote(text, safe="")


async def ready(client: EngineClient) -> EngineClient:
    """Version-negotiated client (ping once)."""
    if client.api_version is None:
        await client.ping()
    return client


# -- containers ---------------------------------------------------------------

async def create_container(client: EngineClient, name: str | None, body: Mapping[str, Any]) -> str:
    params = {"name": name} if name else None
    doc = await client.request_json("POST", "/containers/create", params=params, json=dict(body))
    return str(doc["Id"])


async def remove_container(client: EngineClient, cid: str, *, force: bool = True, volumes: bool = False) -> bool:
    """True when removed, False when it was already gone."""
    try:
        await client.request("DELETE", f"/containers/{q(cid)}",
                             params={"force": "1" if force else "0", "v": "1" if volumes else "0"})
        return True
    except NotFound:
        return False


async def rename(client: EngineClient, cid: str, name: str) -> None:
    await client.request("POST", f"/containers/{q(cid)}/rename", params={"name": name})


async def update(client: EngineClient, cid: str, body: Mapping[str, Any]) -> None:
    await client.request("POST", f"/containers/{q(cid)}/update", json=dict(body))


async def find_container(client: EngineClient, name_or_id: str) -> dict[str, Any] | None:
    try:
        return await client.inspect(name_or_id)
    except NotFound:
        return None


async def logs_tail(client: EngineClient, cid: str, lines: int = 50, tty: bool = False) -> str:
    _, body = await client.request("GET", f"/containers/{q(cid)}/logs",
                                   params={"stdout": "1", "stderr": "1", "tail": str(lines)}, limit=4 * 1024 * 1024)
    if tty:
        return body.decode("utf-8", "replace")
    out, pos = [], 0
    while pos + 8 <= len(body):  # multiplexed frames: [stream, 0, 0, 0, size(4, big endian)] payload
        size = int.from_bytes(body[pos + 4:pos + 8], "big")
        out.append(body[pos + 8:pos + 8 + size])
        pos += 8 + size
    return b"".join(out).decode("utf-8", "replace")


async def wait_up(client: EngineClient, cid: str, *, healthy: bool, timeout: float) -> dict[str, Any]:
    """Inspect until running (and healthy when a healthcheck exists); raise EngineError-free RuntimeError."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        doc = await client.inspect(cid)
        state = doc.get("State") or {}
        status = state.get("Status")
        health = (state.get("Health") or {}).get("Status")
        if status == "running" and (not healthy or health in (None, "healthy")):
            return doc
        if status in ("exited", "dead"):
            raise RuntimeError(f"exited with code {state.get('ExitCode')} {state.get('Error') or ''}".strip())
        if health == "unhealthy":
            raise RuntimeError("healthcheck reports unhealthy")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {'healthy' if healthy else 'running'} within {timeout:g}s (state {status}, "
                               f"health {health})")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.1 if time.monotonic() < deadline - timeout + 5 else 0.5)


# -- networks -----------------------------------------------------------------

async def networks(client: EngineClient, label: str | None = None) -> list[dict[str, Any]]:
    params = {"filters": json.dumps({"label": [label]})} if label else None
    doc = await client.get_json("/networks", params=params)
    return doc if isinstance(doc, list) else []


async def inspect_network(client: EngineClient, name: str) -> dict[str, Any] | None:
    try:
        doc = await client.get_json(f"/networks/{q(name)}")
    except NotFound:
        return None
    return doc if isinstance(doc, dict) else None


async def create_network(client: EngineClient, body: Mapping[str, Any]) -> str:
    doc = await client.request_json("POST", "/networks/create", json={"CheckDuplicate": True, **body})
    return str(doc["Id"])


async def remove_network(client: EngineClient, name: str) -> bool:
    try:
        await client.request("DELETE", f"/networks/{q(name)}")
        return True
    except NotFound:
        return False


async def connect(client: EngineClient, network: str, cid: str, endpoint: Mapping[str, Any] | None = None) -> None:
    await client.request("POST", f"/networks/{q(network)}/connect",
                         json={"Container": cid, "EndpointConfig": dict(endpoint or {})})


async def disconnect(client: EngineClient, network: str, cid: str, force: bool = False) -> None:
    await client.request("POST", f"/networks/{q(network)}/disconnect", json={"Container": cid, "Force": force})


# -- volumes ------------------------------------------------------------------

async def inspect_volume(client: EngineClient, name: str) -> dict[str, Any] | None:
    try:
        doc = await client.get_json(f"/volumes/{q(name)}")
    except NotFound:
        return None
    return doc if isinstance(doc, dict) else None


async def create_volume(client: EngineClient, name: str, driver: str, labels: Mapping[str, str] | None,
                        options: Mapping[str, str] | None) -> None:
    await client.request("POST", "/volumes/create", json={"Name": name, "Driver": driver or "local",
                                                          "Labels": dict(labels or {}),
                                                          "DriverOpts": dict(options or {})})


async def remove_volume(client: EngineClient, name: str) -> bool:
    try:
        await client.request("DELETE", f"/volumes/{q(name)}", params={"force": "1"})
        return True
    except NotFound:
        return False


# -- images -------------------------------------------------------------------

async def inspect_image(client: EngineClient, ref: str) -> dict[str, Any] | None:
    try:
        doc = await client.get_json(f"/images/{q(ref)}/json")
    except NotFound:
        return None
    return doc if isinstance(doc, dict) else None


async def tag_image(client: EngineClient, image: str, repo: str, tag: str) -> None:
    await client.request("POST", f"/images/{q(image)}/tag", params={"repo": repo, "tag": tag})


async def remove_tag(client: EngineClient, ref: str, image_id: str) -> bool:
    """Remove the reference ``ref`` when it still names ``image_id`` (the image goes too when nothing else
    uses it: it came with the tag). Never forced: an image someone uses since stays, with the error said."""
    doc = await inspect_image(client, ref)
    if doc is None or doc.get("Id") != image_id:
        return False
    try:
        await client.request("DELETE", f"/images/{q(ref)}", params={"noprune": "0"})
        return True
    except NotFound:
        return False


@contextlib.asynccontextmanager
async def _source(client: EngineClient, path: str, params: Mapping[str, Any] | None
                  ) -> AsyncIterator[AsyncIterator[bytes]]:
    """An open download, closed when the block ends however it ends. That matters: the daemon holds
    the container's lock until an archive is fully read or its connection closes, so an abandoned
    stream would block stop/start/update on that container."""
    # identity: the daemon gzips archives for clients that accept it, and we need the tar itself
    async with client.stream("GET", path, params=params, read_timeout=120.0,
                             headers={"Accept-Encoding": "identity"}) as resp:
        yield resp.aiter_raw(256 * 1024)


async def transfer_image(src: EngineClient, dst: EngineClient, ref: str,
                         on_bytes: Callable[[int], None] | None = None) -> int:
    """`GET /images/{ref}/get` on src streamed into `POST /images/load` on dst; returns bytes moved."""
    moved = 0
    async with _source(src, f"/images/{q(ref)}/get", None) as chunks:

        async def counted() -> AsyncIterator[bytes]:
            nonlocal moved
            async for chunk in chunks:
                moved += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
                yield chunk

        _, body = await dst.request("POST", "/images/load", params={"quiet": "1"}, content=counted(),
                                    headers={"Content-Type": "application/x-tar"}, timeout=LONG)
    for line in body.splitlines():  # the load reports failures inside a 200 stream
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and doc.get("error"):
                raise APIError(dst.name, "POST /images/load", str(doc.get("error")), 200)
    return moved


# -- archives -----------------------------------------------------------------

def path_stat(header: str | None) -> dict[str, Any]:
    if not header:
        return {}
    with contextlib.suppress(ValueError):
        return json.loads(base64.b64decode(header))
    return {}


async def copy_path(src: EngineClient, src_cid: str, path: str, dst: EngineClient, dst_cid: str,
                    *, dest_dir: str | None = None, keep: Callable[[Entry], bool] | None = None,
                    on_bytes: Callable[[int], None] | None = None) -> TarFilter:
    """Copy ``path`` of one container into another (parent directory ``dest_dir``), through a TarFilter.

    Works on created, running and stopped containers alike, volumes included, with no tar binary
    in either image. Returns the filter, whose ``entries`` describe what the source holds now.
    With ``keep``, nothing is sent when no entry is kept.
    """
    parent = dest_dir if dest_dir is not None else (path.rstrip("/").rsplit("/", 1)[0] or "/")
    tar = TarFilter(keep=keep, prefix=parent)
    async with _source(src, f"/containers/{q(src_cid)}/archive", {"path": path}) as raw:
        out = filtered(raw, tar, on_bytes)
        try:
            first: list[bytes] = []
            if keep is not None:  # hold back output until something is kept (or the archive ends)
                async for chunk in out:
                    first.append(chunk)
                    if tar.kept:
                        break
                if not tar.kept:
                    return tar

            async def body() -> AsyncIterator[bytes]:
                for chunk in first:
                    yield chunk
                async for chunk in out:
                    yield chunk

            await dst.request("PUT", f"/containers/{q(dst_cid)}/archive", params={"path": parent},
                              content=body(), headers={"Content-Type": "application/x-tar"}, timeout=LONG)
        finally:
            await out.aclose()
    return tar


async def stat_path(client: EngineClient, cid: str, path: str) -> dict[str, Any] | None:
    """`HEAD /containers/{id}/archive`: name, size, mode, mtime, linkTarget of one path (None: absent)."""
    try:
        async with client.stream("HEAD", f"/containers/{q(cid)}/archive", params={"path": path}) as resp:
            return path_stat(resp.headers.get("X-Docker-Container-Path-Stat"))
    except NotFound:
        return None


async def put_archive(client: EngineClient, cid: str, path: str, data: bytes) -> None:
    await client.request("PUT", f"/containers/{q(cid)}/archive", params={"path": path}, content=data,
                         headers={"Content-Type": "application/x-tar"}, timeout=LONG)


async def best_effort(coro: Any) -> str | None:
    """Run a cleanup step; return its error text instead of raising (the caller records it)."""
    try:
        await coro
        return None
    except EngineError as exc:
        return str(exc)
