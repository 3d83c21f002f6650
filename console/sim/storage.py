"""Files for a simulated node: image layers, container writable layers and volumes, in memory.

Enough of a filesystem for what Berth's migration reads and writes through the Engine API: the
archive endpoints (GET a tar of a path with its X-Docker-Container-Path-Stat, PUT a tar, HEAD),
`/changes` against the image, volumes that containers mount, and `docker save`/`docker load`
tarballs between nodes.

The model follows dockerd with the **vfs** storage driver, which is what the node reports in
/info and GraphDriver: every container sees its image's files (a shared, read-only lower tree)
under its own writable upper tree, with deletions recorded as whiteouts; there is no overlay
upper directory to bind-mount, so migration's whiteout replay is skipped and reported, honestly.
`/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` are dockerd's per-container files (generated,
never in /changes), volume and bind mount points appear in the upper tree when the container is
first mounted (started, or touched by the archive API), as on a real daemon.

Memory stays small by construction: image trees are shared, file contents are capped
(MAX_FILE per file, MAX_TREE per writable layer or volume: beyond, "no space left on device").
Seeded content is a few hundred bytes per container and is derived from ids, so it is the same
for the same seed.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import io
import posixpath
import random
import re
import tarfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from console.sim import model
from console.sim.samples import NS

if TYPE_CHECKING:
    from console.sim.daemon import Container, Image, SimDaemon

DRIVER = "vfs"
MAX_FILE = 1024 * 1024  # bytes in one simulated file
MAX_TREE = 2 * 1024 * 1024  # bytes in one writable layer or volume (the server takes 4 MiB request bodies)
ROOT_DIR = "/var/lib/docker"
IMAGE_EPOCH = 1_704_067_200  # 2024-01-01: simulated images are "built" a deterministic while before it
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# Go's os.FileMode bits, as the X-Docker-Container-Path-Stat header carries them
GO_DIR, GO_SYMLINK, GO_SETUID, GO_SETGID, GO_STICKY = 1 << 31, 1 << 27, 1 << 23, 1 << 22, 1 << 20


class StorageError(Exception):
    """An error the Engine API reports: HTTP status and dockerd's message (answered as an ApiError)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def api(self) -> Exception:
        from console.sim.daemon import ApiError  # the daemon imports this module

        return ApiError(self.status, self.message)


@dataclass(slots=True)
class Node:
    kind: str  # "f" file | "d" directory | "l" symlink | "w" whiteout (upper trees only)
    mode: int = 0o644  # permission bits with setuid/setgid/sticky (0o7777)
    mtime_ns: int = 0
    data: bytes = b""
    link: str = ""
    uid: int = 0
    gid: int = 0

    @property
    def size(self) -> int:
        return len(self.data) if self.kind == "f" else len(self.link) if self.kind == "l" else 4096

    def go_mode(self) -> int:
        bits = self.mode & 0o777
        if self.mode & 0o4000:
            bits |= GO_SETUID
        if self.mode & 0o2000:
            bits |= GO_SETGID
        if self.mode & 0o1000:
            bits |= GO_STICKY
        if self.kind == "d":
            bits |= GO_DIR
        elif self.kind == "l":
            bits |= GO_SYMLINK
        return bits


def _dir(mode: int = 0o755, mtime_ns: int = 0) -> Node:
    return Node("d", mode, mtime_ns)


class Tree:
    """Absolute paths ("/", "/etc", "/etc/passwd") to nodes, with a byte budget."""

    __slots__ = ("nodes", "used", "limit")

    def __init__(self, limit: int = MAX_TREE) -> None:
        self.nodes: dict[str, Node] = {}
        self.used = 0
        self.limit = limit

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def put(self, path: str, node: Node) -> None:
        old = self.nodes.get(path)
        grow = len(node.data) - (len(old.data) if old else 0)
        if len(node.data) > MAX_FILE or self.used + grow > self.limit:
            raise StorageError(500, f"write {path}: no space left on device")
        self.used += grow
        self.nodes[path] = node

    def drop(self, path: str) -> None:
        """Remove a path and everything below it."""
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self.nodes if k == path or k.startswith(prefix)]:
            self.used -= len(self.nodes.pop(key).data)

    def children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [k[len(prefix):] for k in self.nodes
                if k.startswith(prefix) and len(k) > len(prefix) and "/" not in k[len(prefix):]]


# -- mounts and volumes -----------------------------------------------------------------------

@dataclass(slots=True)
class Volume:
    name: str
    created_ns: int
    labels: dict[str, str] | None
    options: dict[str, str] | None
    driver: str = "local"
    anonymous: bool = False
    tree: Tree = field(default_factory=Tree)

    def __post_init__(self) -> None:
        if self.tree.get("/") is None:
            self.tree.put("/", _dir(0o755, self.created_ns))

    @property
    def mountpoint(self) -> str:
        return f"{ROOT_DIR}/volumes/{self.name}/_data"

    def doc(self) -> dict[str, Any]:
        return {"CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_ns // NS)),
                "Driver": self.driver, "Labels": self.labels, "Mountpoint": self.mountpoint, "Name": self.name,
                "Options": self.options, "Scope": "local"}


@dataclass(slots=True)
class Mount:
    type: str  # volume | bind
    source: str  # volume name, or host path for binds
    dest: str
    rw: bool
    mode: str  # "z" for -v name:/dest, "" for --mount and image volumes, "ro"/"rw" as given for binds
    propagation: str = ""

    def doc(self, storage: Storage) -> dict[str, Any]:
        if self.type == "bind":
            return {"Type": "bind", "Source": self.source, "Destination": self.dest, "Mode": self.mode,
                    "RW": self.rw, "Propagation": self.propagation or "rprivate"}
        vol = storage.volumes.get(self.source)
        return {"Type": "volume", "Name": self.source, "Source": vol.mountpoint if vol else "",
                "Destination": self.dest, "Driver": vol.driver if vol else "local", "Mode": self.mode,
                "RW": self.rw, "Propagation": ""}


@dataclass(slots=True)
class Layer:
    """One container's filesystem: its image's tree below, its own upper tree, its mounts."""

    image_id: str
    upper: Tree
    mounts: list[Mount]
    config_volumes: dict[str, Any] | None
    mounted: bool = False  # mount points made in the upper tree (first start or archive access)


# -- tar in and out ---------------------------------------------------------------------------

_TAR_TYPE = {"f": b"0", "d": b"5", "l": b"2"}
_TAR_MODE = {"f": 0o100000, "d": 0o040000, "l": 0o120000}


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def _header(name: str, node: Node, typeflag: bytes | None = None, size: int | None = None) -> bytes:
    """A ustar header as Go's archive/tar writes it for dockerd (mode with its type bits, root/root)."""
    kind = typeflag or _TAR_TYPE[node.kind]
    raw_name, link = name.encode(), node.link.encode()
    mode = (node.mode & 0o7777) | _TAR_MODE.get(node.kind, 0) if typeflag is None else 0o644
    mtime = node.mtime_ns // NS if typeflag is None else 0
    size = (len(node.data) if node.kind == "f" else 0) if size is None else size
    user = b"root" if node.uid == 0 else b""
    group = b"root" if node.gid == 0 else b""
    head = bytearray(512)
    head[0:len(raw_name[:100])] = raw_name[:100]
    head[100:108] = _octal(mode, 8)
    head[108:116] = _octal(node.uid, 8)
    head[116:124] = _octal(node.gid, 8)
    head[124:136] = _octal(size, 12)
    head[136:148] = _octal(max(0, mtime), 12)
    head[148:156] = b" " * 8
    head[156:157] = kind
    head[157:157 + len(link[:100])] = link[:100]
    head[257:265] = b"ustar\x0000"
    head[265:265 + len(user)] = user
    head[297:297 + len(group)] = group
    head[329:337] = _octal(0, 8)
    head[337:345] = _octal(0, 8)
    head[148:156] = f"{sum(head):06o}".encode() + b"\0 "
    return bytes(head)


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def tar_entry(name: str, node: Node) -> bytes:
    """One archive member (PAX header first when a name or link target does not fit ustar)."""
    out = b""
    if len(name.encode()) > 100 or len(node.link.encode()) > 100:
        records = _pax_record("path", name) + (_pax_record("linkpath", node.link) if len(node.link) > 100 else b"")
        out += _header("PaxHeaders.0/" + posixpath.basename(name.rstrip("/"))[:80], node, b"x", len(records))
        out += records + b"\0" * (-len(records) % 512)
    out += _header(name, node)
    if node.kind == "f" and node.data:
        out += node.data + b"\0" * (-len(node.data) % 512)
    return out


TAR_END = b"\0" * 1024


def read_tar(data: bytes) -> Iterator[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]:
    """Members of a (possibly compressed) tar, with file contents; StorageError on a broken stream."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for info in tar:
                if info.isfile():
                    f = tar.extractfile(info)
                    content = f.read() if f is not None else b""
                    if len(content) != info.size:
                        raise EOFError
                    yield info, content
                else:
                    yield info
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise StorageError(500, "Error processing tar file(exit status 1): unexpected EOF") from exc


def stat_header(name: str, node: Node, link_target: str) -> str:
    from console.sim.daemon import rfc3339

    mtime = rfc3339(node.mtime_ns) if node.mtime_ns else "1970-01-01T00:00:00Z"  # the Unix epoch, not Go's zero
    doc = {"name": name, "size": node.size, "mode": node.go_mode(), "mtime": mtime,
           "linkTarget": link_target}
    return base64.b64encode(orjson.dumps(doc)).decode()


def _norm(path: str) -> str:
    """An absolute, clean path ("" and "." are "/")."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    return "/" if clean in ("", ".", "//") else clean.replace("//", "/")


# -- seeded content -----------------------------------------------------------------------------

def _blob(seed: str, size: int) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    return random.Random(seed).randbytes(size)


_BUSYBOX_APPLETS = ("cat", "cp", "date", "echo", "ls", "mkdir", "rm", "sh", "sleep", "tar", "true", "wget")
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"

# Per app: files its image ships (path -> text, or an int: that many binary bytes at mode 0755),
# where a named data volume goes, and what it writes there.
_APP_FILES: dict[str, dict[str, str | int]] = {
    "web": {"/usr/sbin/nginx": 6144, "/etc/nginx/nginx.conf":
            "user nginx;\nworker_processes auto;\nevents { worker_connections 1024; }\n"
            "http {\n    include /etc/nginx/conf.d/*.conf;\n}\n",
            "/etc/nginx/conf.d/default.conf": "server {\n    listen 80;\n    root /usr/share/nginx/html;\n}\n",
            "/usr/share/nginx/html/index.html": "<!DOCTYPE html>\n<title>Welcome to nginx!</title>\n"},
    "api": {"/app/api": 8192, "/app/config.yaml": "listen: :8080\ndatabase: postgres://db:5432/app\n"},
    "worker": {"/app/worker/__main__.py": "from worker import main\nmain()\n",
               "/app/worker/settings.py": "CONCURRENCY = 4\nQUEUE = 'default'\n"},
    "encoder": {"/usr/local/bin/encoder": 8192, "/etc/encoder/presets.conf": "slow crf=28\nfast crf=23\n"},
    "cache": {"/usr/local/bin/redis-server": 6144, "/etc/redis/redis.conf": "appendonly no\nsave 300 10\n"},
    "db": {"/usr/lib/postgresql/15/bin/postgres": 8192,
           "/usr/local/bin/docker-entrypoint.sh": "#!/bin/sh\nset -e\nexec \"$@\"\n"},
    "queue": {"/usr/lib/rabbitmq/bin/rabbitmq-server": 4096,
              "/etc/rabbitmq/rabbitmq.conf": "loopback_users.guest = false\nlisteners.tcp.default = 5672\n"},
    "cron": {"/etc/crontabs/root": "*/15 * * * * run-parts /etc/periodic/15min\n",
             "/etc/periodic/15min/report": "#!/bin/sh\necho report\n"},
    "metrics": {"/bin/node_exporter": 6144},
}
DATA_VOLUMES: dict[str, tuple[str, dict[str, str | int]]] = {
    "db": ("/var/lib/postgresql/data", {"PG_VERSION": "15\n", "postgresql.conf": "max_connections = 100\n",
                                        "base/1/1259": 4096, "pg_wal/000000010000000000000001": 8192}),
    "cache": ("/data", {"dump.rdb": 2048}),
    "queue": ("/var/lib/rabbitmq", {"mnesia/cluster_nodes.config": "{[rabbit@localhost],[rabbit@localhost]}.\n",
                                    ".erlang.cookie": "SIMULATEDCOOKIE\n"}),
}


def image_tree(ref: str, mtime_ns: int) -> Tree:
    """The files of a simulated image: a busybox userland plus what its app ships."""
    tree = Tree(limit=64 * MAX_TREE)
    for path, mode in (("/", 0o755), ("/bin", 0o755), ("/etc", 0o755), ("/tmp", 0o1777), ("/dev", 0o755),
                       ("/dev/shm", 0o1777), ("/proc", 0o555), ("/sys", 0o555), ("/root", 0o700)):
        tree.put(path, _dir(mode, mtime_ns))
    tree.put("/etc/passwd", Node("f", 0o644, mtime_ns, _PASSWD.encode()))
    tree.put("/etc/group", Node("f", 0o644, mtime_ns, _GROUP.encode()))
    tree.put("/bin/busybox", Node("f", 0o755, mtime_ns, _blob(f"busybox:{ref}", 4096)))
    for applet in _BUSYBOX_APPLETS:
        tree.put(f"/bin/{applet}", Node("l", 0o777, mtime_ns, link="busybox"))
    app = model.app_for_image(ref)
    if app is not None:
        tree.put("/etc/os-release", Node("f", 0o644, mtime_ns,
                                         b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'))
        for path, content in _APP_FILES.get(app.name, {}).items():
            _ensure_parents(tree, path, mtime_ns)
            if isinstance(content, int):
                tree.put(path, Node("f", 0o755, mtime_ns, _blob(f"{ref}:{path}", content)))
            else:
                tree.put(path, Node("f", 0o755 if content.startswith("#!") else 0o644, mtime_ns, content.encode()))
        if app.name in DATA_VOLUMES:
            dest = DATA_VOLUMES[app.name][0]
            _ensure_parents(tree, dest + "/x", mtime_ns)
    return tree


def _place(tree: Tree, path: str, node: Node) -> None:
    """Put ``node`` at ``path`` as extracting a tar does: a directory over a directory keeps its
    contents and takes the new metadata; anything else replaces what was there."""
    old = tree.get(path)
    if old is not None and (old.kind == "d") != (node.kind == "d"):
        tree.drop(path)
    if old is not None and old.kind == "d" and node.kind == "d":
        old.mode, old.mtime_ns, old.uid, old.gid = node.mode, node.mtime_ns, node.uid, node.gid
        return
    tree.put(path, node)


def _ensure_parents(tree: Tree, path: str, mtime_ns: int) -> None:
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        p = "/" + "/".join(parts[:i])
        if tree.get(p) is None:
            tree.put(p, _dir(0o755, mtime_ns))


def image_config(image: Image, layer_digest: str) -> bytes:
    """The image's config JSON as `docker save` writes it; its sha256 is the image id."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(image.created))
    config = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
              "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
              "Env": list(image.env), "Cmd": list(image.cmd) or None, "Image": "", "Volumes": None,
              "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
    return orjson.dumps({"architecture": "amd64", "config": config, "created": created,
                         "docker_version": "20.10.24", "history": [{"created": created}], "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]}})


def tree_tar(tree: Tree) -> bytes:
    """A layer tarball of a whole tree (walk order, as docker save writes it)."""
    out = bytearray()
    for path, node in _walk(tree, "/"):
        if path == "/":
            continue
        name = path.lstrip("/") + ("/" if node.kind == "d" else "")
        out += tar_entry(name, node)
    out += TAR_END
    return bytes(out)


def _walk(tree: Tree, top: str) -> Iterator[tuple[str, Node]]:
    """filepath.Walk over one tree: a directory, then its children in name order, depth first."""
    node = tree.get(top)
    if node is None:
        return
    yield top, node
    if node.kind == "d":
        for name in sorted(tree.children(top)):
            yield from _walk(tree, posixpath.join(top, name))


# -- the node's storage -----------------------------------------------------------------------------

class Storage:
    """Volumes, image trees and container layers of one SimDaemon."""

    driver = DRIVER

    def __init__(self, daemon: SimDaemon) -> None:
        self.daemon = daemon
        self.volumes: dict[str, Volume] = {}
        self.image_trees: dict[str, Tree] = {}  # image id -> its files
        self.layer_tars: dict[str, tuple[bytes, str]] = {}  # image id -> (layer tar, its sha256)
        self.layers: dict[str, Layer] = {}  # container id -> its layer
        self.hosts: dict[str, Tree] = {}  # bind mount sources: host paths, empty unless written
        for image in list(daemon.images.values()):
            self.adopt_image(image)
        for c in list(daemon.containers.values()):
            self._seed(c)

    # -- images ----------------------------------------------------------------------------

    def adopt_image(self, image: Image) -> None:
        """Give a simulated image its files, a deterministic creation time and a content-addressed id
        (the sha256 of its config, as dockerd's), so the same image has the same id on every node."""
        digest = hashlib.sha256(image.ref.encode()).hexdigest()
        image.created = IMAGE_EPOCH - int(digest[:6], 16) % (300 * 86400)
        tree = image_tree(image.ref, image.created * NS)
        layer = tree_tar(tree)
        layer_digest = hashlib.sha256(layer).hexdigest()
        image.id = "sha256:" + hashlib.sha256(image_config(image, layer_digest)).hexdigest()
        self.image_trees[image.id] = tree
        self.layer_tars[image.id] = (layer, layer_digest)

    def image_lower(self, image_id: str) -> Tree:
        tree = self.image_trees.get(image_id)
        if tree is None:
            tree = self.image_trees[image_id] = Tree()
            tree.put("/", _dir())
        return tree

    # -- containers ------------------------------------------------------------------------

    def on_create(self, c: Container, body: Mapping[str, Any]) -> None:
        """Mounts from HostConfig.Binds, HostConfig.Mounts and Config.Volumes (named volumes are
        created on first use, anonymous ones per container); raises ApiError before anything exists."""
        try:
            self._prepare(c, body)
        except StorageError as exc:
            raise exc.api() from None

    def _prepare(self, c: Container, body: Mapping[str, Any]) -> None:
        hc = body.get("HostConfig") or {}
        mounts: list[Mount] = []
        for bind in hc.get("Binds") or []:
            mounts.append(self._parse_bind(str(bind)))
        for spec in hc.get("Mounts") or []:
            mounts.append(self._parse_mount(spec))
        seen: set[str] = set()
        for m in mounts:
            if m.dest in seen:
                raise StorageError(400, f"Duplicate mount point: {m.dest}")
            seen.add(m.dest)
        volumes = body.get("Volumes") if isinstance(body.get("Volumes"), dict) else None
        for dest in sorted(volumes or {}):
            path = _norm(dest)
            if path not in seen:
                mounts.append(Mount("volume", "", path, True, ""))
                seen.add(path)
        now = time.time_ns()
        for m in mounts:
            if m.type != "volume":
                continue
            if not m.source:
                m.source = model.hex_id(self.daemon._rng)
                self.volumes[m.source] = Volume(m.source, now, None, None, anonymous=True)
            elif m.source not in self.volumes:
                self.volumes[m.source] = Volume(m.source, now, None, None)
        if hc.get("Mounts"):
            c.host_config["Mounts"] = list(hc["Mounts"])
        self.layers[c.id] = Layer(c.image.id, Tree(), mounts, dict(volumes) if volumes else None)

    def _parse_bind(self, text: str) -> Mount:
        parts = text.split(":")
        if len(parts) < 2 or len(parts) > 3 or not parts[0] or not parts[1]:
            raise StorageError(400, f"invalid volume specification: '{text}'")
        source, dest = parts[0], _norm(parts[1])
        mode = parts[2] if len(parts) == 3 else ""
        rw = "ro" not in mode.split(",")
        if source.startswith("/"):
            return Mount("bind", source, dest, rw, mode)
        if not _VOLUME_NAME.match(source):
            raise StorageError(400, f"create {source}: \"{source}\" includes invalid characters for a local volume "
                                    f"name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass "
                                    f"a host directory, use absolute path")
        return Mount("volume", source, dest, rw, mode or "z")

    def _parse_mount(self, spec: Any) -> Mount:
        if not isinstance(spec, dict):
            raise StorageError(400, "json: cannot unmarshal into Go value of type mount.Mount")
        kind, target = spec.get("Type") or "", spec.get("Target") or ""
        if not target:
            raise StorageError(400, f"invalid mount config for type \"{kind}\": field Target must not be empty")
        rw = not spec.get("ReadOnly")
        if kind == "bind":
            source = spec.get("Source") or ""
            if not source:
                raise StorageError(400, "invalid mount config for type \"bind\": field Source must not be empty")
            return Mount("bind", source, _norm(target), rw, "", "rprivate")
        if kind == "volume":
            source = spec.get("Source") or ""
            if source and not _VOLUME_NAME.match(source):
                raise StorageError(400, f"invalid mount config for type \"volume\": invalid volume name {source!r}")
            return Mount("volume", source, _norm(target), rw, "z" if source else "")
        raise StorageError(400, f"mount type {kind!r} is not simulated")

    def on_remove(self, c: Container) -> None:
        self.layers.pop(c.id, None)

    def anonymous_volumes(self, c: Container) -> list[str]:
        layer = self.layers.get(c.id)
        if layer is None:
            return []
        return [m.source for m in layer.mounts
                if m.type == "volume" and (v := self.volumes.get(m.source)) is not None and v.anonymous]

    def users(self, volume: str) -> list[str]:
        return [cid for cid, layer in self.layers.items()
                if any(m.type == "volume" and m.source == volume for m in layer.mounts)]

    def mounts(self, c: Container) -> list[dict[str, Any]]:
        layer = self.layers.get(c.id)
        return [m.doc(self) for m in sorted(layer.mounts, key=lambda m: m.dest)] if layer else []

    def config_volumes(self, c: Container) -> dict[str, Any] | None:
        layer = self.layers.get(c.id)
        return dict(layer.config_volumes) if layer and layer.config_volumes else None

    def graph_driver(self, c: Container) -> dict[str, Any]:
        return {"Data": None, "Name": DRIVER}

    def driver_status(self) -> list[list[str]] | None:
        return None  # vfs reports no status lines

    def _seed(self, c: Container) -> None:
        """Plausible, deterministic files for a container the node started with: a data volume for
        the stateful apps, a pid file and a little state in the writable layer of those that ran."""
        app = model.app_for_image(c.image_ref)
        body: dict[str, Any] = {}
        if app is not None and app.name in DATA_VOLUMES:
            dest = DATA_VOLUMES[app.name][0]
            body = {"HostConfig": {"Binds": [f"{c.name}-data:{dest}"]}}
            c.host_config["Binds"] = [f"{c.name}-data:{dest}"]
        self._prepare(c, body)
        if app is None:
            return
        when = (c.started_ns or c.created_ns)
        if app.name in DATA_VOLUMES:
            dest, files = DATA_VOLUMES[app.name]
            vol = self.volumes[f"{c.name}-data"]
            for rel, content in files.items():
                data = _blob(f"{c.id}:{rel}", content) if isinstance(content, int) else content.encode()
                path = "/" + rel
                _ensure_parents(vol.tree, path, when)
                vol.tree.put(path, Node("f", 0o600, when, data, uid=999, gid=999))
        if not c.started_ns:
            return
        self.mount(c)
        self.write(c, f"/run/{app.name}.pid", Node("f", 0o644, c.started_ns, f"{c.pid_base}\n".encode()))
        if app.name in ("api", "worker"):
            self.write(c, "/app/cache/state.json",
                       Node("f", 0o644, c.started_ns, orjson.dumps({"instance": c.id[:12], "warm": True})))
        if app.name == "web":
            self.delete(c, "/etc/nginx/conf.d/default.conf")
            self.write(c, "/etc/nginx/conf.d/site.conf",
                       Node("f", 0o644, c.started_ns, f"server {{ listen 80; server_name {c.name}; }}\n".encode()))

    # -- the merged view ---------------------------------------------------------------------

    def layer(self, c: Container) -> Layer:
        layer = self.layers.get(c.id)
        if layer is None:
            layer = self.layers[c.id] = Layer(c.image.id, Tree(), [], None)
        return layer

    def _init_file(self, c: Container, path: str) -> Node | None:
        """dockerd's per-container files (the init layer and the network files it bind-mounts)."""
        when = c.created_ns
        if path == "/etc/hostname":
            return Node("f", 0o644, when, f"{c.id[:12]}\n".encode())
        if path == "/etc/hosts":
            ip = next((ep.get("IPAddress") for ep in c.networks.values() if ep.get("IPAddress")), "")
            text = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                    "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
            if ip:
                text += f"{ip}\t{c.id[:12]}\n"
            return Node("f", 0o644, when, text.encode())
        if path == "/etc/resolv.conf":
            return Node("f", 0o644, when, b"nameserver 10.0.0.2\n")
        if path == "/etc/mtab":
            return Node("l", 0o777, when, link="/proc/mounts")
        if path == "/.dockerenv":
            return Node("f", 0o755, when)
        return None

    _INIT_PATHS = {"/": ("/.dockerenv",), "/etc": ("/etc/hostname", "/etc/hosts", "/etc/mtab", "/etc/resolv.conf")}

    def mount(self, c: Container) -> None:
        """Mount points in the upper tree, made once (dockerd creates them when it mounts the container)."""
        layer = self.layer(c)
        if layer.mounted:
            return
        layer.mounted = True
        now = time.time_ns()
        points = [m.dest for m in layer.mounts]
        if c.host_config.get("Init") and c.started_ns:
            points.append("/sbin/docker-init")
        for dest in points:
            if self._lookup_rootfs(c, dest) is not None:
                continue
            self._copy_up_parents(c, dest, now)
            node = Node("f", 0o755, now) if dest == "/sbin/docker-init" else _dir(0o755, now)
            layer.upper.put(dest, node)

    def _lookup_rootfs(self, c: Container, path: str) -> Node | None:
        """The container's own filesystem (no mounts): upper over init files over the image."""
        layer = self.layer(c)
        parts = path.strip("/").split("/") if path != "/" else []
        for i in range(1, len(parts) + 1):
            up = layer.upper.get("/" + "/".join(parts[:i]))
            if up is not None and up.kind == "w":
                return None
        node = layer.upper.get(path)
        if node is not None:
            return node
        init = self._init_file(c, path)
        if init is not None:
            return init
        return self.image_lower(layer.image_id).get(path)

    def _mount_for(self, c: Container, path: str) -> tuple[Mount, Tree, str] | None:
        """(mount, its tree, the path inside it) when ``path`` is at or below a mount point."""
        best: Mount | None = None
        for m in self.layer(c).mounts:
            if (path == m.dest or path.startswith(m.dest.rstrip("/") + "/")) and (
                    best is None or len(m.dest) > len(best.dest)):
                best = m
        if best is None:
            return None
        if best.type == "volume":
            vol = self.volumes.get(best.source)
            if vol is None:
                return None
            tree = vol.tree
        else:
            host = self.hosts.get(best.source)
            if host is None:
                host = self.hosts[best.source] = Tree()
                host.put("/", _dir(0o755, time.time_ns()))
            tree = host
        inner = _norm(path[len(best.dest):])
        return best, tree, inner

    def lookup(self, c: Container, path: str) -> Node | None:
        found = self._mount_for(c, path)
        if found is not None:
            return found[1].get(found[2])
        return self._lookup_rootfs(c, path)

    def list_dir(self, c: Container, path: str) -> list[str]:
        found = self._mount_for(c, path)
        if found is not None:
            names = set(found[1].children(found[2]))
        else:
            layer = self.layer(c)
            names = set(self.image_lower(layer.image_id).children(path)) | set(layer.upper.children(path))
            names |= {p.rsplit("/", 1)[1] for p in self._INIT_PATHS.get(path, ())}
            names = {n for n in names if (up := layer.upper.get(posixpath.join(path, n))) is None or up.kind != "w"}
        # mount points below this directory are visible even where the rootfs has no directory
        for m in self.layer(c).mounts:
            parent, _, name = m.dest.rpartition("/")
            if (parent or "/") == path:
                names.add(name)
        return sorted(n for n in names if self.lookup(c, posixpath.join(path, n)) is not None)

    def resolve(self, c: Container, path: str, follow_last: bool) -> str:
        """Resolve symlinks in ``path`` inside the container's root (never above it)."""
        parts = [p for p in path.split("/") if p and p != "."]
        done = "/"
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                done = posixpath.dirname(done) or "/"
                continue
            candidate = posixpath.join(done, part)
            node = self.lookup(c, candidate)
            if node is not None and node.kind == "l" and (parts or follow_last):
                hops += 1
                if hops > 40:
                    raise StorageError(500, f"too many links in {path}")
                target = node.link
                base = "/" if target.startswith("/") else done
                parts = [p for p in target.split("/") if p and p != "."] + parts
                done = base
                continue
            done = candidate
        return done

    # -- writes ------------------------------------------------------------------------------

    def _copy_up_parents(self, c: Container, path: str, now: int) -> None:
        """Every directory above ``path`` into the upper tree (copied up from below, or new)."""
        upper = self.layer(c).upper
        parts = path.strip("/").split("/")[:-1]
        for i in range(0, len(parts) + 1):
            p = "/" + "/".join(parts[:i]) if i else "/"
            existing = upper.get(p)
            if existing is not None and existing.kind == "d":
                if i == len(parts):
                    existing.mtime_ns = now
                continue
            below = self._lookup_rootfs(c, p) if existing is None else None
            if below is not None and below.kind == "d":
                upper.put(p, Node("d", below.mode, now if i == len(parts) else below.mtime_ns))
            else:
                upper.drop(p)
                upper.put(p, _dir(0o755, now))

    def write(self, c: Container, path: str, node: Node) -> None:
        """Put one node at ``path`` (its parent directories made as needed), into a mount or the upper tree."""
        found = self._mount_for(c, path)
        now = time.time_ns()
        if found is not None:
            mount, tree, inner = found
            if not mount.rw:
                raise StorageError(500, "mounted volume is marked read-only")
            if inner == "/":
                if node.kind == "d":
                    root = tree.get("/")
                    if root is not None:
                        root.mode, root.mtime_ns = node.mode, node.mtime_ns
                return
            _ensure_parents(tree, inner, now)
            parent = tree.get(posixpath.dirname(inner))
            if parent is not None:
                parent.mtime_ns = now
            _place(tree, inner, node)
            return
        self._copy_up_parents(c, path, now)
        _place(self.layer(c).upper, path, node)

    def delete(self, c: Container, path: str) -> None:
        """A process in the container removed ``path`` (the archive API cannot: tests and seeding do)."""
        found = self._mount_for(c, path)
        if found is not None:
            found[1].drop(found[2])
            return
        layer = self.layer(c)
        in_image = self.image_lower(layer.image_id).get(path) is not None
        self._copy_up_parents(c, path, time.time_ns())
        layer.upper.drop(path)
        if in_image:
            layer.upper.put(path, Node("w"))

    def extract(self, c: Container, ref: str, dest: str, data: bytes, no_overwrite_dir_non_dir: bool) -> None:
        """PUT /containers/{id}/archive: unpack a tar below the existing directory ``dest``."""
        self.mount(c)
        target = self.resolve(c, _norm(dest), follow_last=True)
        node = self.lookup(c, target)
        if node is None:
            raise StorageError(404, f"Could not find the file {dest} in container {ref}")
        if node.kind != "d":
            raise StorageError(500, "extraction point is not a directory")
        if not data:
            return
        dirs: list[tuple[str, Node]] = []
        for item in read_tar(data):
            info, content = item if isinstance(item, tuple) else (item, b"")
            rel = posixpath.normpath(info.name.lstrip("/")) if info.name.strip("/.") else "."
            if rel == ".." or rel.startswith("../"):
                raise StorageError(500, f"Error processing tar file(exit status 1): \"{info.name}\" is outside of "
                                        f"\"{dest}\"")
            path = target if rel == "." else posixpath.join(target, rel)
            mtime = int(info.mtime * NS)
            mode = info.mode & 0o7777
            if info.isdir():
                new = Node("d", mode, mtime, uid=info.uid, gid=info.gid)
                dirs.append((path, new))
            elif info.issym():
                new = Node("l", 0o777, mtime, link=info.linkname, uid=info.uid, gid=info.gid)
            elif info.islnk():
                src = self.lookup(c, posixpath.join(target, posixpath.normpath(info.linkname.lstrip("/"))))
                if src is None:
                    raise StorageError(500, f"Error processing tar file(exit status 1): link {info.linkname} "
                                            f"not found")
                new = Node(src.kind, src.mode, src.mtime_ns, src.data, src.link, src.uid, src.gid)
            elif info.isfile():
                new = Node("f", mode, mtime, content, uid=info.uid, gid=info.gid)
            else:
                continue  # devices and fifos are not simulated
            existing = self.lookup(c, path)
            if no_overwrite_dir_non_dir and existing is not None:
                if existing.kind == "d" and new.kind != "d":
                    raise StorageError(500, f"cannot overwrite directory \"{path}\" with non-directory \"{rel}\"")
                if existing.kind != "d" and new.kind == "d":
                    raise StorageError(500, f"cannot overwrite non-directory \"{path}\" with directory \"{rel}\"")
            self.write(c, path, new)
        for path, new in reversed(dirs):  # directory times last, as the untar does
            existing = self.lookup(c, path)
            if existing is not None and existing.kind == "d":
                existing.mtime_ns = new.mtime_ns

    # -- reads -------------------------------------------------------------------------------

    def stat(self, c: Container, ref: str, path: str) -> tuple[str, Node, str]:
        """(name, node, link target) of ``path``, the final symlink not followed (dockerd's stat)."""
        if not path:
            raise StorageError(400, "bad parameter: pathcannot be empty")
        self.mount(c)
        if path.endswith("/") and path.rstrip("/"):
            full = self.resolve(c, _norm(path), follow_last=True)
            node = self.lookup(c, full)
            if node is not None and node.kind != "d":
                raise StorageError(500, f"lstat {ROOT_DIR}/vfs/dir/{c.id}{_norm(path)}/: not a directory")
        full = self.resolve(c, _norm(path), follow_last=False)
        node = self.lookup(c, full)
        if node is None:
            raise StorageError(404, f"Could not find the file {path} in container {ref}")
        link = ""
        if node.kind == "l":
            link = self.resolve(c, full, follow_last=True)
        if path.endswith("/.") or path == ".":
            name = "."
        else:
            name = posixpath.basename(path.rstrip("/")) or "/"
        return name, node, link

    def archive(self, c: Container, ref: str, path: str) -> tuple[bytes, str]:
        """GET /containers/{id}/archive: (tar of the path, its stat header)."""
        name, node, link = self.stat(c, ref, path)
        header = stat_header(name, node, link)
        full = self.resolve(c, _norm(path), follow_last=False)
        if path.endswith("/") and node.kind == "l":
            full = self.resolve(c, full, follow_last=True)
            node = self.lookup(c, full) or node
        top = "." if name == "." else posixpath.basename(full) or "."
        out = bytearray()
        for rel, entry in self._walk_container(c, full, top):
            out += tar_entry(rel + ("/" if entry.kind == "d" else ""), entry)
        out += TAR_END
        return bytes(out), header

    def _walk_container(self, c: Container, path: str, rel: str) -> Iterator[tuple[str, Node]]:
        node = self.lookup(c, path)
        if node is None:
            return
        yield rel, node
        if node.kind == "d":
            for name in self.list_dir(c, path):
                yield from self._walk_container(c, posixpath.join(path, name), f"{rel}/{name}")

    def changes(self, c: Container) -> list[dict[str, Any]] | None:
        """GET /containers/{id}/changes: the upper tree against the image (Kind 0 modified, 1 added,
        2 deleted); None (JSON null) when nothing changed, as dockerd answers."""
        if c.started_ns:
            self.mount(c)
        layer = self.layer(c)
        lower = self.image_lower(layer.image_id)
        out = []
        for path in sorted(layer.upper.nodes):
            if path == "/":
                continue
            node = layer.upper.nodes[path]
            if node.kind == "w":
                out.append({"Path": path, "Kind": 2})
            else:
                out.append({"Path": path, "Kind": 0 if lower.get(path) is not None else 1})
        return out or None

    # -- volumes -----------------------------------------------------------------------------

    def create_volume(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str(body.get("Name") or "")
        driver = str(body.get("Driver") or "local")
        if driver != "local":
            raise StorageError(404, f"error looking up volume plugin {driver}: plugin \"{driver}\" not found")
        if not name:
            name = model.hex_id(self.daemon._rng)
        elif not _VOLUME_NAME.match(name):
            raise StorageError(400, f"create {name}: \"{name}\" includes invalid characters for a local volume "
                                    f"name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass "
                                    f"a host directory, use absolute path")
        existing = self.volumes.get(name)
        if existing is not None:
            return existing.doc()  # dockerd answers with the volume as it is (labels unchanged)
        opts = body.get("DriverOpts")
        for key in opts or {}:
            if key not in ("type", "device", "o", "size"):
                raise StorageError(400, f"create {name}: invalid option key: \"{key}\"")
        vol = Volume(name, time.time_ns(), {str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                     {str(k): str(v) for k, v in (opts or {}).items()})
        self.volumes[name] = vol
        return vol.doc()

    def inspect_volume(self, name: str) -> dict[str, Any]:
        vol = self.volumes.get(name)
        if vol is None:
            raise StorageError(404, f"get {name}: no such volume")
        return vol.doc()

    def list_volumes(self, filters: Mapping[str, list[str]]) -> dict[str, Any]:
        for key in filters:
            if key not in ("dangling", "driver", "label", "name"):
                raise StorageError(400, f"Invalid filter '{key}'")
        out = []
        for vol in sorted(self.volumes.values(), key=lambda v: v.name):
            if "name" in filters and not any(n in vol.name for n in filters["name"]):
                continue
            if "driver" in filters and vol.driver not in filters["driver"]:
                continue
            if "dangling" in filters:
                dangling = not self.users(vol.name)
                if (filters["dangling"][0].lower() in ("1", "true")) != dangling:
                    continue
            if "label" in filters:
                labels = vol.labels or {}
                if not all((k in labels) and (not v or labels[k] == v)
                           for k, _, v in (item.partition("=") for item in filters["label"])):
                    continue
            out.append(vol.doc())
        return {"Volumes": out, "Warnings": None}

    def remove_volume(self, name: str, force: bool) -> None:
        vol = self.volumes.get(name)
        if vol is None:
            if force:
                return
            raise StorageError(404, f"get {name}: no such volume")
        users = self.users(name)
        if users:
            raise StorageError(409, f"remove {name}: volume is in use - [{', '.join(users)}]")
        del self.volumes[name]

    # -- image save / load ---------------------------------------------------------------------

    def find_image(self, name: str) -> Image | None:
        images = self.daemon.images
        full = name if ":" in name.rsplit("/", 1)[-1] or name.startswith("sha256:") else f"{name}:latest"
        return images.get(full) or next((i for i in images.values()
                                         if i.id == name or (len(name) >= 4 and i.id[7:].startswith(name))), None)

    def save(self, names: Iterable[str]) -> bytes:
        """`docker save`: a docker-archive tarball (manifest.json, repositories, config, one layer)."""
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        out = bytearray()
        written: set[str] = set()
        for name in names:
            image = self.find_image(name)
            if image is None:
                raise StorageError(404, "reference does not exist")
            layer, layer_digest = self._layer_tar(image)
            config = image_config(image, layer_digest)
            config_name = f"{image.id[7:]}.json"
            layer_id = hashlib.sha256(f"{layer_digest}\n".encode()).hexdigest()
            by_id = name == image.id or image.id[7:].startswith(name)
            tags = [] if by_id else [image.ref]
            manifest.append({"Config": config_name, "RepoTags": tags or None, "Layers": [f"{layer_id}/layer.tar"]})
            for tag in tags:
                repo, _, version = tag.rpartition(":")
                repositories.setdefault(repo, {})[version] = layer_id
            if image.id in written:
                continue
            written.add(image.id)
            when = image.created * NS
            out += tar_entry(config_name, Node("f", 0o644, when, config))
            out += tar_entry(f"{layer_id}/", _dir(0o755, when))
            out += tar_entry(f"{layer_id}/VERSION", Node("f", 0o644, when, b"1.0"))
            out += tar_entry(f"{layer_id}/json", Node("f", 0o644, when, orjson.dumps({"id": layer_id})))
            out += tar_entry(f"{layer_id}/layer.tar", Node("f", 0o644, when, layer))
        out += tar_entry("manifest.json", Node("f", 0o644, 0, orjson.dumps(manifest) + b"\n"))
        if repositories:
            out += tar_entry("repositories", Node("f", 0o644, 0, orjson.dumps(repositories) + b"\n"))
        out += TAR_END
        return bytes(out)

    def _layer_tar(self, image: Image) -> tuple[bytes, str]:
        cached = self.layer_tars.get(image.id)
        if cached is None:
            layer = tree_tar(self.image_lower(image.id))
            cached = self.layer_tars[image.id] = (layer, hashlib.sha256(layer).hexdigest())
        return cached

    def load(self, data: bytes) -> list[str]:
        """`docker load`: the progress lines dockerd streams (errors as {"error": ...} lines, status 200)."""
        from console.sim.daemon import Image

        try:
            files: dict[str, bytes] = {}
            for item in read_tar(data) if data else ():
                if isinstance(item, tuple):
                    files[_norm(item[0].name).lstrip("/")] = item[1]
            if "manifest.json" not in files:
                raise StorageError(500, f"open {ROOT_DIR}/tmp/docker-import-0/repositories: no such file or "
                                        f"directory")
            try:
                manifest = orjson.loads(files["manifest.json"])
            except orjson.JSONDecodeError as exc:
                raise StorageError(500, f"invalid character in manifest.json: {exc}") from exc
            lines: list[str] = []
            for entry in manifest:
                config_raw = files.get(str(entry.get("Config")))
                if config_raw is None:
                    raise StorageError(500, f"open {entry.get('Config')}: no such file or directory")
                config = orjson.loads(config_raw)
                diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
                tree = Tree(limit=64 * MAX_TREE)
                tree.put("/", _dir())
                for i, layer_path in enumerate(entry.get("Layers") or []):
                    layer = files.get(str(layer_path))
                    if layer is None:
                        raise StorageError(500, f"open {layer_path}: no such file or directory")
                    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
                    if i < len(diff_ids) and diff_ids[i] != digest:
                        raise StorageError(500, f"invalid diffID for layer {i}: expected \"{diff_ids[i]}\", "
                                                f"got \"{digest}\"")
                    _apply_layer(tree, layer)
                image_id = "sha256:" + hashlib.sha256(config_raw).hexdigest()
                cfg = config.get("config") or {}
                created = config.get("created") or ""
                try:
                    created_s = calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
                except ValueError:
                    created_s = 0
                size = sum(len(n.data) for n in tree.nodes.values())
                self.image_trees[image_id] = tree
                tags = entry.get("RepoTags") or []
                for tag in tags:
                    old = self.daemon.images.get(tag)
                    if old is not None and old.id != image_id:
                        lines.append(f"The image {tag} already exists, renaming the old one with ID {old.id} to "
                                     f"empty string\n")
                    self.daemon.images[tag] = Image(tag, image_id, tuple(cfg.get("Env") or ()),
                                                    tuple(cfg.get("Cmd") or ()), created_s, size)
                    lines.append(f"Loaded image: {tag}\n")
                if not tags:
                    if not any(i.id == image_id for i in self.daemon.images.values()):
                        self.daemon.images[image_id] = Image(image_id, image_id, tuple(cfg.get("Env") or ()),
                                                             tuple(cfg.get("Cmd") or ()), created_s, size)
                    lines.append(f"Loaded image ID: {image_id}\n")
            return [orjson.dumps({"stream": line}).decode() for line in lines]
        except StorageError as exc:
            return [orjson.dumps({"errorDetail": {"message": exc.message}, "error": exc.message}).decode()]


def _apply_layer(tree: Tree, data: bytes) -> None:
    """Unpack one image layer over ``tree`` (".wh." files delete, as the layer store applies them)."""
    for item in read_tar(data):
        info, content = item if isinstance(item, tuple) else (item, b"")
        path = _norm(info.name)
        base = posixpath.basename(path)
        if base.startswith(".wh."):
            if base == ".wh..wh..opq":
                for child in tree.children(posixpath.dirname(path)):
                    tree.drop(posixpath.join(posixpath.dirname(path), child))
            else:
                tree.drop(posixpath.join(posixpath.dirname(path), base[4:]))
            continue
        mtime = int(info.mtime * NS)
        _ensure_parents(tree, path, mtime)
        if info.isdir():
            tree.put(path, Node("d", info.mode & 0o7777, mtime, uid=info.uid, gid=info.gid))
        elif info.issym():
            tree.put(path, Node("l", 0o777, mtime, link=info.linkname, uid=info.uid, gid=info.gid))
        elif info.islnk():
            src = tree.get(_norm(info.linkname))
            if src is not None:
                tree.put(path, Node(src.kind, src.mode, src.mtime_ns, src.data, src.link, src.uid, src.gid))
        elif info.isfile():
            tree.put(path, Node("f", info.mode & 0o7777, mtime, content, uid=info.uid, gid=info.gid))


__all__ = ["DRIVER", "Storage", "StorageError", "Volume", "Node", "Tree"]
