"""Engine API routes over the simulated node's files (console.sim.storage): archive, changes,
volumes, image save/load, and container removal with its anonymous volumes (`?v=1`).

`routes(server)` returns them for `EngineServer` to try before its own table, answering as dockerd
20.10 does: same status codes, messages, headers (X-Docker-Container-Path-Stat on archive GET and
HEAD), load errors inside a 200 stream.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from console.sim.daemon import ApiError, _go_json, parse_filters
from console.sim.storage import StorageError

if TYPE_CHECKING:
    from console.sim.server import EngineServer, Request, Response

Handler = Callable[["Request", "re.Match[str]"], Awaitable["Response"]]
STAT_HEADER = "X-Docker-Container-Path-Stat"


def routes(server: EngineServer) -> list[tuple[str, re.Pattern[str], Handler]]:
    from console.sim.server import Response  # the server imports this module while building its table

    daemon = server.daemon
    storage = daemon.storage
    cid = r"(?P<id>[^/]+)"

    def json_response(doc: Any, status: int = 200) -> Response:
        return Response(status, _go_json(doc))

    def guarded(fn: Handler) -> Handler:
        async def handler(req: Request, m: re.Match[str]) -> Response:
            try:
                return await fn(req, m)
            except StorageError as exc:
                raise ApiError(exc.status, exc.message) from None
        return handler

    async def changes(req: Request, m: re.Match[str]) -> Response:
        return json_response(storage.changes(daemon.lookup(m["id"])))

    async def archive_stat(req: Request, m: re.Match[str]) -> Response:
        c = daemon.lookup(m["id"])
        name, node, link = storage.stat(c, m["id"], req.arg("path"))
        from console.sim.storage import stat_header

        return Response(200, b"", content_type=None, headers=[(STAT_HEADER, stat_header(name, node, link))])

    async def archive_get(req: Request, m: re.Match[str]) -> Response:
        c = daemon.lookup(m["id"])
        body, header = storage.archive(c, m["id"], req.arg("path"))
        return Response(200, body, "application/x-tar", headers=[(STAT_HEADER, header)])

    async def archive_put(req: Request, m: re.Match[str]) -> Response:
        c = daemon.lookup(m["id"])
        path = req.arg("path")
        if not path:
            raise ApiError(400, "bad parameter: pathcannot be empty")
        storage.extract(c, m["id"], path, req.body, req.flag("noOverwriteDirNonDir"))
        return Response(200, b"", content_type=None)

    async def volumes(req: Request, m: re.Match[str]) -> Response:
        return json_response(storage.list_volumes(parse_filters(req.arg("filters") or None)))

    async def volume_create(req: Request, m: re.Match[str]) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type volume.VolumeCreateBody")
        return json_response(storage.create_volume(body), 201)

    async def volume_inspect(req: Request, m: re.Match[str]) -> Response:
        return json_response(storage.inspect_volume(m["name"]))

    async def volume_remove(req: Request, m: re.Match[str]) -> Response:
        storage.remove_volume(m["name"], req.flag("force"))
        return Response(204, content_type=None)

    async def image_get(req: Request, m: re.Match[str]) -> Response:
        return Response(200, storage.save([m["name"]]), "application/x-tar")

    async def images_get(req: Request, m: re.Match[str]) -> Response:
        return Response(200, storage.save(req.query.get("names") or []), "application/x-tar")

    async def image_load(req: Request, m: re.Match[str]) -> Response:
        lines = storage.load(req.body)
        return Response(200, "".join(line + "\r\n" for line in lines).encode())

    async def remove(req: Request, m: re.Match[str]) -> Response:
        c = daemon.lookup(m["id"])
        anonymous = storage.anonymous_volumes(c) if req.flag("v") else []
        await daemon.remove(m["id"], req.flag("force"))
        for name in anonymous:
            if not storage.users(name):
                storage.volumes.pop(name, None)
        return Response(204, content_type=None)

    table: list[tuple[str, str, Handler]] = [
        ("GET", rf"^/containers/{cid}/changes$", changes),
        ("HEAD", rf"^/containers/{cid}/archive$", archive_stat),
        ("GET", rf"^/containers/{cid}/archive$", archive_get),
        ("PUT", rf"^/containers/{cid}/archive$", archive_put),
        ("DELETE", rf"^/containers/{cid}$", remove),
        ("GET", r"^/volumes$", volumes),
        ("POST", r"^/volumes/create$", volume_create),
        ("GET", r"^/volumes/(?P<name>[^/]+)$", volume_inspect),
        ("DELETE", r"^/volumes/(?P<name>[^/]+)$", volume_remove),
        ("GET", r"^/images/get$", images_get),
        ("GET", r"^/images/(?P<name>.+)/get$", image_get),
        ("POST", r"^/images/load$", image_load),
    ]
    return [(method, re.compile(pattern), guarded(fn)) for method, pattern, fn in table]


__all__ = ["routes"]
