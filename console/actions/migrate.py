"""Live migration of one container between nodes, in the issue's four phases.

1 plan / pre-flight   refusals with reasons; predicted density of both nodes after the move
2 pre-copy            while the source runs: image (only when missing), networks, volumes with
                      their data, the target container (created, not started), writable-layer files
3 switch              stop the source; copy only what changed since pre-copy (volume deltas,
                      writable-layer deltas, deletions as overlay whiteouts); start the target under
                      the original name; wait running (and healthy). Downtime = stopped -> up.
4 finalize / rollback keep the stopped source renamed (or remove it); or undo: target side removed,
                      source started again. Exactly one running copy at every end state.

Safety rules that shape the code:
* the target is created with restart policy "no" and only gets the original one once it runs, so
  a target daemon that comes back after a crash cannot start a second copy on its own;
* the source's restart policy is set to "no" before it is stopped (restored on rollback), so the
  kept source cannot come back when its daemon restarts;
* anything created on the target is recorded in ``created`` as it is made, and rollback retries the
  removal for a while when the target node is unreachable (a crashed daemon coming back);
* when the source node dies, rollback waits (``source_wait``) for it to come back and starts the source
  again; a source that dies after the final copy is not needed any more: the move completes and only
  the rename of the kept source waits for it;
* every phase transition and every object made on the target goes to ``record(phase)`` first (the
  caller's durable journal, console/actions/journal.py), so a Berth killed mid-way can be recovered.

Failpoints for crash tests (after etcd's gofail): with ``BERTH_FAILPOINT=<name>`` the migration stops
at that point, after journaling it, and waits forever for the test to SIGKILL it. Names: see FAILPOINTS.
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.actions import engine_ops as ops
from console.actions.isolation import (
    endpoint_config,
    isolation_state,
    network_mode_refusal,
)
from console.actions.locks import NodeLock
from console.actions.placement import Need, NodeLoad, fit_problems, load_node
from console.actions.sharing import sharing
from console.actions.tarstream import Entry
from console.actions.types import ActionError
from console.engine.client import EngineClient
from console.engine.errors import Conflict, EngineError
from console.fmt import size

DEFAULT_NETS = frozenset({"bridge", "host", "none", "default"})
SKIP_ROOTS = ("/proc", "/sys", "/dev")
RACY_SLACK = 1.0  # seconds: mtimes are whole seconds, so files touched this close to the pre-copy are resent
FAILPOINT_ENV = "BERTH_FAILPOINT"
FAILPOINTS = ("pre-copy:target-created", "switch:source-stopped", "switch:final-copy-done",
              "finalize:target-running", "recover:locked")
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
               "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes", "WorkingDir",
               "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout",
               "Shell")


@dataclass
class VolumeSpec:
    name: str  # source volume name
    dest: str  # mount destination in the container
    driver: str
    labels: dict[str, str]
    options: dict[str, str]
    read_only: bool
    anonymous: bool


IMAGE_CONFIG = ("User", "Env", "Cmd", "Entrypoint", "WorkingDir", "Volumes", "ExposedPorts", "Labels", "Healthcheck",
                "StopSignal", "Shell", "OnBuild", "ArgsEscaped")


@dataclass
class ImagePlan:
    """How the target gets the source's image, keeping the reference the operator wrote (``Config.Image``)."""

    id: str  # the image the source runs
    ref: str  # what the target container is created from (Config.Image there)
    transfer: str | None  # what to send (a reference, so the load tags it, or the id); None: nothing to send
    tag: str | None  # the reference this migration adds on the target (undone by rollback)
    size: int
    line: str  # for the plan
    refusal: str | None = None
    warning: str | None = None


def split_ref(ref: str) -> tuple[str, str]:
    """``registry:5000/app:1.2`` -> (``registry:5000/app``, ``1.2``); no tag -> ``latest``."""
    name, sep, tag = ref.rpartition(":")
    return (name, tag) if sep and "/" not in tag else (ref, "latest")


def _is_id(ref: str, image_id: str) -> bool:
    bare = ref.removeprefix("sha256:")
    return bool(bare) and all(c in "0123456789abcdef" for c in bare) and image_id.removeprefix(
        "sha256:").startswith(bare)


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two image ids with the same layers (content-addressed diff ids) and the same run-time config: two
    builds or imports of one thing (their ids differ by creation time only)."""
    layers = (a.get("RootFS") or {}).get("Layers")
    if not layers or layers != (b.get("RootFS") or {}).get("Layers"):
        return False
    if any(a.get(k) != b.get(k) for k in ("Os", "Architecture", "Variant")):
        return False
    ac, bc = a.get("Config") or {}, b.get("Config") or {}
    return all((ac.get(k) or None) == (bc.get(k) or None) for k in IMAGE_CONFIG)


async def image_plan(src: EngineClient, dst: EngineClient, doc: dict[str, Any], *, by_id: bool) -> ImagePlan:
    image_id = str(doc.get("Image") or "")
    short = image_id.removeprefix("sha256:")[:12]
    written = str((doc.get("Config") or {}).get("Image") or image_id)
    src_doc = await ops.inspect_image(src, image_id) or {}
    size_ = int(src_doc.get("Size") or 0)
    send = f"transfer {size(size_)}"
    dst_by_id = await ops.inspect_image(dst, image_id)
    have = f"present on {dst.name}" if dst_by_id is not None else send

    def by_id_plan(why: str, warning: str | None = None) -> ImagePlan:
        return ImagePlan(image_id, image_id, None if dst_by_id is not None else image_id, None, size_,
                         f"image: created from {short} by id ({why}); {have}", warning=warning)

    if _is_id(written, image_id):
        return ImagePlan(image_id, written, None if dst_by_id is not None else image_id, None, size_,
                         f"image: {have}")
    named = await ops.inspect_image(src, written)
    if named is None or named.get("Id") != image_id:
        return by_id_plan(f"{written} on {src.name} names another image now")
    dst_named = await ops.inspect_image(dst, written)
    if dst_named is not None and dst_named.get("Id") == image_id:
        return ImagePlan(image_id, written, None, None, size_, f"image: {written} present on {dst.name}")
    if "@" in written:  # a digest: only a pull can give the image that name
        return by_id_plan(f"the digest reference {written} cannot be recreated on {dst.name}",
                          f"the copy's image shows as {short}, not {written}")
    if dst_named is None:
        if dst_by_id is not None:
            return ImagePlan(image_id, written, None, written, size_,
                             f"image: present on {dst.name} by id, tagged {written} there")
        return ImagePlan(image_id, written, written, written, size_, f"image: {send} as {written}")
    other = str(dst_named.get("Id") or "").removeprefix("sha256:")[:12]
    if same_content(src_doc, dst_named):
        return ImagePlan(image_id, written, None, None, size_,
                         f"image: {written} on {dst.name} is {other}, another build of the same layers and config "
                         f"as {short}: used as it is")
    if by_id:
        return by_id_plan(f"--image-by-id: {written} on {dst.name} is another image, {other}",
                          f"the copy's image shows as {short}, not {written}")
    return ImagePlan(image_id, written, None, None, size_, "", refusal=(
        f"image {written} on {dst.name} is another image ({other}, not the {short} it runs): retag or remove it "
        f"there, or pass --image-by-id to create the copy from {short} without its name"))


@dataclass
class Facts:
    """Everything pre-flight learnt; execute() recomputes it right before acting."""

    doc: dict[str, Any]
    src_load: NodeLoad
    dst_load: NodeLoad
    need: Need
    image_ref: str  # what the target is created from: the source's reference whenever it can be kept
    image_present: bool  # nothing to transfer
    image_size: int
    volumes: list[VolumeSpec]
    networks: dict[str, dict[str, Any]]  # name -> endpoint config to recreate
    missing_networks: dict[str, dict[str, Any]]  # name -> source network inspect
    warnings: list[str]
    image: ImagePlan | None = None

    @property
    def name(self) -> str:
        return str(self.doc.get("Name", "")).lstrip("/")


def _anonymous(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


async def preflight(src: EngineClient, dst: EngineClient, doc: dict[str, Any], *, cpu_max: float, mem_max: float,
                    allow_bind: bool = False, image_by_id: bool = False) -> Facts:
    """Raise ActionError listing every reason the move must not start; else return the facts."""
    cid = doc["Id"]
    name = str(doc.get("Name", "")).lstrip("/")
    host = doc.get("HostConfig") or {}
    state = doc.get("State") or {}
    reasons: list[str] = []
    warnings: list[str] = []
    if src.name == dst.name:
        raise ActionError(f"{name} is already on {dst.name}")
    for client in (src, dst):
        if client.api_version is None:
            await client.ping()  # detects the engine
    podman = [c.name for c in (src, dst) if c.engine == "podman"]
    if podman:
        # Podman's compat API names images docker.io/..., has no container update, and inspects
        # differently: a clone would not run as the source does. Refused before anything changes.
        raise ActionError(f"cannot migrate {name} to {dst.name}: {' and '.join(podman)} "
                          f"{'runs' if len(podman) == 1 else 'run'} Podman, and migration is supported "
                          f"between dockerd nodes only")
    refusal = network_mode_refusal(doc)
    if refusal and not str(host.get("NetworkMode") or "").startswith("container:"):  # that one: shared below
        reasons.append(f"it {refusal}")
    if host.get("Devices") or host.get("DeviceRequests"):
        reasons.append("it uses host devices")
    shared = await sharing(src, doc)
    reasons.extend(shared.refusals(name))
    if host.get("AutoRemove"):
        reasons.append("it is auto-remove (--rm): stopping it would delete it")
    if state.get("Paused"):
        reasons.append("it is paused (unpause it first)")
    if state.get("Restarting"):
        reasons.append("it is restarting")
    volumes: list[VolumeSpec] = []
    for m in doc.get("Mounts") or []:
        if m.get("Type") == "bind":
            also = shared.bind_note(str(m.get("Source")))
            if allow_bind:
                warnings.append(f"bind mount {m.get('Source')} -> {m.get('Destination')}: the target's own path is "
                                f"used, its data is not copied{also}")
            else:
                reasons.append(f"it bind-mounts host path {m.get('Source')}{also} (use --allow-bind to move it "
                               f"anyway)")
        elif m.get("Type") == "volume":
            if (m.get("Driver") or "local") != "local":
                reasons.append(f"volume {m.get('Name')} uses driver {m.get('Driver')}: its data cannot be copied")
                continue
            vol = await ops.inspect_volume(src, m["Name"]) or {}
            opts = vol.get("Options") or {}
            if opts.get("device") or opts.get("type"):
                reasons.append(f"volume {m['Name']} is a mount of {opts.get('device') or opts.get('type')}: "
                               f"its data cannot be copied")
                continue
            volumes.append(VolumeSpec(m["Name"], m["Destination"], m.get("Driver") or "local",
                                      dict(vol.get("Labels") or {}), dict(opts), not m.get("RW", True),
                                      _anonymous(m["Name"])))
    iso = await isolation_state(src, cid)
    if iso is not None:
        reasons.append("it is isolated (unisolate it first)")
    holder = await NodeLock.holder(src, cid)
    if holder is not None:
        reasons.append(f"it is {NodeLock.describe(holder)}")
    need = Need.of(doc)
    src_load, dst_load = await asyncio.gather(load_node(src), load_node(dst))
    if name in dst_load.names:
        reasons.append(f"a container named {name} already exists on {dst.name}")
    for v in volumes:
        if not v.anonymous and await ops.inspect_volume(dst, v.name) is not None:
            reasons.append(f"volume {v.name} already exists on {dst.name}")
    reasons.extend(fit_problems(dst_load, need, cpu_max, mem_max))
    if need.running and not need.mem:
        warnings.append("no memory limit: the target's memory headroom cannot be checked")
    nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    if (str(host.get("NetworkMode") or "default") == "default" and "bridge" in nets
            and await ops.inspect_network(src, "bridge") is None):
        # dockerd --bridge=none: a plain `docker run` records a "bridge" endpoint the container never
        # joined (there is none). It uses the default mode and no network; the target runs it so too.
        nets = {n: ep for n, ep in nets.items() if n != "bridge"}
    endpoints = {n: endpoint_config(cid, ep) for n, ep in nets.items()}
    missing: dict[str, dict[str, Any]] = {}
    for net in endpoints:
        if await ops.inspect_network(dst, net) is not None:
            continue
        if net in DEFAULT_NETS:
            reasons.append(f"network {net} does not exist on {dst.name}")
            continue
        info = await ops.inspect_network(src, net) or {}
        if info.get("Driver") not in ("bridge", "macvlan", "ipvlan", None):
            reasons.append(f"network {net} (driver {info.get('Driver')}) does not exist on {dst.name}")
            continue
        missing[net] = info
        warnings.append(f"network {net} will be created on {dst.name}")
    if dst_load.driver != "overlay2" or src_load.driver != "overlay2":
        deleted = [c for c in await src.changes(cid) if c.get("Kind") == 2]
        if deleted:
            warnings.append(f"{len(deleted)} path(s) deleted from the image layer will reappear on the target "
                            f"(storage driver {dst_load.driver}, not overlay2)")
    image = await image_plan(src, dst, doc, by_id=image_by_id)
    if image.refusal:
        reasons.append(image.refusal)
    if image.warning:
        warnings.append(image.warning)
    if reasons:
        raise ActionError(f"cannot migrate {name} to {dst.name}: " + "; ".join(reasons))
    return Facts(doc, src_load, dst_load, need, image.ref, image.transfer is None, image.size, volumes, endpoints,
                 missing, warnings, image)


def summary(facts: Facts, src: str, dst: str, tenant: str, remove_source: bool) -> tuple[str, ...]:
    d = facts.doc
    status = str((d.get("State") or {}).get("Status") or "unknown")
    vols = ", ".join(f"{v.name[:12] if v.anonymous else v.name}:{v.dest}" for v in facts.volumes) or "none"
    if facts.need.running:
        effect = ("effect: pre-copy while running, then stop, copy changes, start on the target"
                  + ("; the source is removed" if remove_source else
                     "; the stopped source is kept renamed until finalized (console: F, CLI: --finalize)"))
    else:
        effect = (f"effect: copy it as it is ({status}, nothing to stop), create it on the target, not started"
                  + ("; the source is removed" if remove_source else "; the source is kept renamed until finalized (console: F, CLI: --finalize)"))
    lines = [
        f"container: {facts.name} ({d['Id'][:12]}), image {(d.get('Config') or {}).get('Image')}, {status}",
        f"node: {src} -> {dst}",
        f"tenant: {tenant}",
        effect,
        facts.image.line if facts.image else
        f"image: {'present on target' if facts.image_present else f'transfer {size(facts.image_size)}'}",
        f"volumes: {vols}",
        f"networks: {', '.join(facts.networks) or 'none'}",
        f"density {src} after: {facts.src_load.without(facts.need).density()}",
        f"density {dst} after: {facts.dst_load.with_(facts.need).density()}",
    ]
    lines += [f"warning: {w}" for w in facts.warnings]
    return tuple(lines)


def clone_body(doc: dict[str, Any], image_ref: str, endpoints: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A create body reproducing ``doc`` (restart policy held at "no" until the copy runs)."""
    config = doc.get("Config") or {}
    body: dict[str, Any] = {k: config[k] for k in CONFIG_KEYS if config.get(k) not in (None, "", [], {})}
    if body.get("Hostname") == doc["Id"][:12]:
        del body["Hostname"]  # the daemon's default: the new container gets its own id
    body["Image"] = image_ref
    host = dict(doc.get("HostConfig") or {})
    host["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    body["HostConfig"] = host
    mode = str(host.get("NetworkMode") or "")
    if mode in endpoints and mode not in DEFAULT_NETS:
        body["NetworkingConfig"] = {"EndpointsConfig": {mode: endpoints[mode]}}
    return body


def layer_paths(changes: list[dict[str, Any]], mounts: list[str]) -> tuple[list[str], list[str]]:
    """(paths to copy, paths deleted) from /changes: the smallest set of archive roots covering every
    added or modified file, outside volume mounts and kernel filesystems."""
    def outside(path: str) -> bool:
        if path.startswith(SKIP_ROOTS):
            return False
        for m in mounts:
            if path == m or path.startswith(m.rstrip("/") + "/") or m.startswith(path.rstrip("/") + "/"):
                return False
        return True

    kinds = {c["Path"]: c.get("Kind") for c in changes if isinstance(c.get("Path"), str)}
    deleted = sorted(p for p, k in kinds.items() if k == 2 and outside(p))
    wanted = {p: k for p, k in kinds.items() if k in (0, 1) and outside(p)}
    roots = []
    for path in sorted(wanted):
        parents = [path[:i] for i in range(1, len(path)) if path[i] == "/"]
        if any(wanted.get(p) == 1 for p in parents):
            continue  # an added directory above is copied whole
        if wanted[path] == 0 and any(other.startswith(path.rstrip("/") + "/") for other in kinds):
            continue  # a modified directory only because something inside changed
        roots.append(path)
    return roots, deleted


@dataclass
class Created:
    container: str | None = None
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # image references added on the target

    def describe(self) -> list[str]:
        out = [f"container {self.container[:12]}"] if self.container else []
        out += [f"volume {v}" for v in self.volumes] + [f"network {n}" for n in self.networks]
        out += [f"helper {h[:12]}" for h in self.helpers] + [f"image tag {t}" for t in self.tags]
        return out


class Migration:
    """One run of phases 2-4 for one container. ``emit(phase, detail)`` reports progress."""

    def __init__(self, src: EngineClient, dst: EngineClient, facts: Facts, *, emit: Callable[[str, str], None],
                 count: Callable[[int], None], remove_source: bool = False, cleanup_wait: float = 30.0,
                 source_wait: float = 60.0, stop_timeout: int | None = None, health_timeout: float = 120.0,
                 record: Callable[[str], None] | None = None) -> None:
        self.src, self.dst, self.facts = src, dst, facts
        self.emit, self.count = emit, count
        self.remove_source = remove_source
        self.cleanup_wait = cleanup_wait
        self.source_wait = source_wait
        self.record = record
        self.stop_timeout = stop_timeout
        self.health_timeout = health_timeout
        self.sid = facts.doc["Id"]
        self.name = facts.name
        self.created = Created()
        self.src_stopped = False
        self.final_copy_done = False
        self.target_started = False
        self.phase = "pre-copy"
        self.src_policy = (facts.doc.get("HostConfig") or {}).get("RestartPolicy") or {"Name": "no"}
        self.was_running = bool((facts.doc.get("State") or {}).get("Running"))
        self.layer_manifest: dict[str, Entry] = {}
        self.deleted_done: set[str] = set()
        self.volume_manifests: dict[str, dict[str, Entry]] = {}
        self.cutoff = 0.0
        self.target_mounts: dict[str, dict[str, Any]] = {}
        self.phases: list[dict[str, Any]] = []
        self.downtime: float | None = None
        self.kept_as: str | None = None
        self.details: dict[str, Any] = {}

    # -- bookkeeping ----------------------------------------------------------

    def _phase(self, name: str, ok: bool, started: float, **extra: Any) -> None:
        self.phases.append({"phase": name, "ok": ok, "seconds": round(time.monotonic() - started, 3), **extra})

    def _save(self, phase: str | None = None) -> None:
        """Journal the state before acting on it (an OSError here stops the migration: no journal, no move)."""
        if phase is not None:
            self.phase = phase
        if self.record is not None:
            self.record(self.phase)

    async def _failpoint(self, name: str) -> None:
        await failpoint(name, lambda detail: self.emit(self.phase, detail))

    # -- phase 2 --------------------------------------------------------------

    async def precopy(self) -> None:
        f = self.facts
        self._save("pre-copy")
        image = f.image
        if image is not None and image.tag:
            self.created.tags.append(image.tag)  # recorded first: a load or tag whose answer is lost is undone too
            self._save()
        if image is not None and image.transfer:
            self.emit("pre-copy", f"image {image.transfer} -> {self.dst.name} ({size(f.image_size)})")
            self.details["image_bytes"] = await ops.transfer_image(self.src, self.dst, image.transfer, self.count)
        elif image is not None and image.tag:
            self.emit("pre-copy", f"image {image.id.removeprefix('sha256:')[:12]} tagged {image.tag} on "
                                  f"{self.dst.name}")
            await ops.tag_image(self.dst, image.id, *split_ref(image.tag))
        for net, info in f.missing_networks.items():
            self.emit("pre-copy", f"network {net}")
            body: dict[str, Any] = {"Name": net, "Driver": info.get("Driver") or "bridge",
                                    "Internal": bool(info.get("Internal")), "Attachable": bool(info.get("Attachable")),
                                    "Labels": info.get("Labels") or {}, "Options": info.get("Options") or {},
                                    "EnableIPv6": bool(info.get("EnableIPv6"))}
            if any("IPAMConfig" in ep for ep in f.networks.values()):
                body["IPAM"] = info.get("IPAM")
            self.created.networks.append(net)  # recorded first: a create whose answer is lost still gets undone
            self._save()
            try:
                await ops.create_network(self.dst, body)
            except Conflict:
                self.created.networks.remove(net)  # someone else's, made since pre-flight: never ours to remove
                self._save()
                raise
        self.cutoff = await self._daemon_time() - RACY_SLACK
        await self._build_target()
        await self._failpoint("pre-copy:target-created")
        await self._copy_volumes(full=True)
        await self._copy_layer(full=True)

    async def _daemon_time(self) -> float:
        from console.fleet.poller import parse_time

        info = await self.src.info()
        return parse_time(info.get("SystemTime")) or time.time()

    async def _build_target(self) -> None:
        f = self.facts
        for v in f.volumes:
            if v.anonymous:
                continue
            self.emit("pre-copy", f"volume {v.name}")
            self.created.volumes.append(v.name)
            self._save()
            await ops.create_volume(self.dst, v.name, v.driver, v.labels, v.options)
        self.emit("pre-copy", f"container {self.name} on {self.dst.name} (created, not started)")
        body = clone_body(f.doc, f.image_ref, f.networks)
        try:
            self.created.container = await ops.create_container(self.dst, self.name, body)
        except EngineError:
            # The daemon may have made it before failing to answer: find it by name to clean it up.
            found = await _quiet(ops.find_container(self.dst, self.name))
            if found:
                self.created.container = found["Id"]
                self._save()
            raise
        self._save()
        primary = str((f.doc.get("HostConfig") or {}).get("NetworkMode") or "")
        for net, endpoint in f.networks.items():
            if net == primary or net in DEFAULT_NETS:
                continue
            await ops.connect(self.dst, net, self.created.container, endpoint)
        tdoc = await self.dst.inspect(self.created.container)
        for m in tdoc.get("Mounts") or []:
            if m.get("Type") == "volume":
                self.target_mounts[m["Destination"]] = m
                if _anonymous(m.get("Name", "")) and m["Name"] not in self.created.volumes:
                    self.created.volumes.append(m["Name"])
        self._save()
        self.details["target_id"] = self.created.container

    async def _copy_volumes(self, full: bool) -> None:
        for v in self.facts.volumes:
            target = self.target_mounts.get(v.dest)
            if target is None:
                continue
            dest_cid, path_in_dst = self.created.container, None
            if not target.get("RW", True):
                dest_cid = await self._helper(target["Name"], v.dest)
                path_in_dst = "/"
            old = {} if full else self.volume_manifests.get(v.dest, {})
            parent = v.dest.rstrip("/").rsplit("/", 1)[0] or "/"
            if not full and _stat_is_cheaper(old) and await self._delta_by_stat(v, old, dest_cid, path_in_dst):
                continue
            self.emit("pre-copy" if full else "switch", f"volume data {v.dest}" + ("" if full else " (changes)"))
            tar = await ops.copy_path(self.src, self.sid, v.dest, self.dst, dest_cid or "", dest_dir=path_in_dst,
                                      keep=None if full else _keep_changed(old, self.cutoff, path_in_dst or parent),
                                      on_bytes=self.count)
            if not full:
                gone = set(old) - set(tar.entries)
                if gone:
                    raise _Redo(f"{len(gone)} file(s) deleted from volume {v.name} during the copy")
            self.volume_manifests[v.dest] = tar.entries

    async def _delta_by_stat(self, v: VolumeSpec, old: dict[str, Entry], dest_cid: str | None,
                             helper_root: str | None) -> bool:
        """Final pass for volumes of few, large files: stat each known path (no data read) and copy only
        the files that changed. False when a directory changed (entries added, removed or renamed):
        then the caller reads the volume again."""
        from console.fleet.poller import parse_time

        self.emit("switch", f"volume data {v.dest} (checking {len(old)} path(s))")
        changed: list[str] = []
        for key, entry in old.items():
            path = "/" + key.lstrip("/")
            st = await ops.stat_path(self.src, self.sid, path)
            if st is None:
                raise _Redo(f"{path} deleted from volume {v.name} during the copy")
            mtime = parse_time(st.get("mtime")) or 0.0
            same = (int(mtime) == int(entry.mtime) and mtime < self.cutoff
                    and (int(st.get("mode") or 0) & 0o777) == (entry.mode & 0o777))
            if entry.type == "5":
                if not same:
                    return False
            elif entry.type == "2":
                if st.get("linkTarget") != entry.link or not same:
                    changed.append(path)
            elif not same or int(st.get("size") or 0) != entry.size:
                changed.append(path)
        base = "/" + v.dest.rstrip("/").rsplit("/", 1)[-1]
        for path in changed:
            target = base + path[len(v.dest.rstrip("/")):] if helper_root else path
            await ops.copy_path(self.src, self.sid, path, self.dst, dest_cid or "",
                                dest_dir=target.rstrip("/").rsplit("/", 1)[0] or "/", on_bytes=self.count)
        return True

    async def _helper(self, volume: str, dest: str) -> str:
        """A never-started container with ``volume`` mounted writable, for read-only mounts."""
        base = "/" + dest.rstrip("/").rsplit("/", 1)[-1]
        cid = await ops.create_container(self.dst, None, {
            "Image": self.facts.image_ref, "Entrypoint": ["berth-helper"], "Cmd": [],
            "Labels": {ops.ROLE: "helper", ops.TARGET: self.sid}, "NetworkDisabled": True,
            "HostConfig": {"NetworkMode": "none", "Mounts": [{"Type": "volume", "Source": volume, "Target": base}]},
        })
        self.created.helpers.append(cid)
        self._save()
        return cid

    async def _copy_layer(self, full: bool) -> None:
        mounts = [v.dest for v in self.facts.volumes] + [
            m.get("Destination", "") for m in self.facts.doc.get("Mounts") or [] if m.get("Type") != "volume"]
        changes = await self.src.changes(self.sid)
        roots, deleted = layer_paths(changes, mounts)
        old = self.layer_manifest
        new: dict[str, Entry] = {}
        if roots:
            self.emit("pre-copy" if full else "switch",
                      f"writable layer: {len(roots)} path(s)" + ("" if full else " (changes)"))
        for path in roots:
            parent = path.rstrip("/").rsplit("/", 1)[0] or "/"
            tar = await ops.copy_path(self.src, self.sid, path, self.dst, self.created.container or "",
                                      keep=None if full else _keep_changed(old, self.cutoff, parent),
                                      on_bytes=self.count)
            new.update(tar.entries)
        self.layer_manifest = new
        if full:
            if deleted:
                await self._whiteout(deleted)
            self.deleted_done = set(deleted)
            return
        gone = sorted(set(old) - set(new))
        whiteouts = sorted((set(deleted) - self.deleted_done) | {p if p.startswith("/") else "/" + p for p in gone})
        whiteouts = [p for p in whiteouts if not any(p.startswith(o.rstrip("/") + "/") for o in whiteouts if o != p)]
        if whiteouts:
            await self._whiteout(whiteouts)

    async def _whiteout(self, paths: list[str]) -> None:
        """Delete image files on the (created, stopped) target: overlay whiteouts in its upper dir,
        written through a helper that bind-mounts it, because the archive API cannot delete."""
        tdoc = await self.dst.inspect(self.created.container or "")
        graph = tdoc.get("GraphDriver") or {}
        upper = (graph.get("Data") or {}).get("UpperDir")
        if graph.get("Name") != "overlay2" or not upper:
            self.details.setdefault("warnings", []).append(
                f"{len(paths)} deleted path(s) not replayed (storage driver {graph.get('Name')})")
            return
        self.emit("pre-copy" if not self.src_stopped else "switch", f"writable layer: {len(paths)} deletion(s)")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            made: set[str] = set()
            for path in paths:
                parts = path.strip("/").split("/")
                for i in range(1, len(parts)):
                    d = "/".join(parts[:i])
                    if d in made:
                        continue
                    made.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = int(time.time())
                    tar.addfile(info)
                info = tarfile.TarInfo("/".join(parts))
                info.type = tarfile.CHRTYPE
                info.devmajor = info.devminor = 0
                info.mode = 0
                tar.addfile(info)
        # Directories the upper layer already has keep their own metadata: only add missing ones.
        helper = await ops.create_container(self.dst, None, {
            "Image": self.facts.image_ref, "Entrypoint": ["berth-helper"], "Cmd": [],
            "Labels": {ops.ROLE: "helper", ops.TARGET: self.sid}, "NetworkDisabled": True,
            "HostConfig": {"NetworkMode": "none", "Binds": [f"{upper}:/berth-upper"]},
        })
        self.created.helpers.append(helper)
        self._save()
        await ops.put_archive(self.dst, helper, "/berth-upper", buf.getvalue())
        await ops.remove_container(self.dst, helper)
        self.created.helpers.remove(helper)
        self._save()

    # -- phase 3 --------------------------------------------------------------

    async def switch(self) -> None:
        f = self.facts
        if self.was_running:
            # From here on, rollback must bring the source back (policy and all): journaled before the
            # update, whose answer a dying daemon may never send.
            self.src_stopped = True
            self._save("switch")
            if self.src_policy.get("Name") not in (None, "", "no"):
                await ops.update(self.src, self.sid, {"RestartPolicy": {"Name": "no"}})
            self.emit("switch", f"stopping {self.name} on {self.src.name}")
            t = self.stop_timeout if self.stop_timeout is not None else (f.doc.get("Config") or {}).get("StopTimeout")
            t = 10 if t is None else int(t)
            stop_began = time.monotonic()
            await self.src.container_action(self.sid, "stop", params={"t": str(t)}, timeout=t + 30.0)
            self.details["stop_seconds"] = round(time.monotonic() - stop_began, 3)
        else:
            self._save("switch")
        stopped_at = time.monotonic()
        self.emit("switch", "source stopped")
        await self._failpoint("switch:source-stopped")
        try:
            await self._copy_volumes(full=False)
            await self._copy_layer(full=False)
        except _Redo as redo:
            self.emit("switch", f"{redo}: copying again in full")
            await self._rebuild()
        self.details["final_copy_seconds"] = round(time.monotonic() - stopped_at, 3)
        self.final_copy_done = True  # the target now holds everything: finishing is safe from here
        self._save()
        await self._failpoint("switch:final-copy-done")
        if self.was_running:
            self.emit("switch", f"starting {self.name} on {self.dst.name}")
            self.target_started = True  # journaled first: a start whose answer is lost may have happened
            self._save()
            await self.dst.container_action(self.created.container or "", "start", timeout=60.0)
            hc = (f.doc.get("Config") or {}).get("Healthcheck") or {}
            healthy = bool(hc.get("Test")) and hc["Test"][0] != "NONE"
            await ops.wait_up(self.dst, self.created.container or "", healthy=healthy, timeout=self.health_timeout)
            self.downtime = time.monotonic() - stopped_at
            self.emit("switch", f"running on {self.dst.name}; downtime {self.downtime:.2f}s")
        if self.src_policy.get("Name") not in (None, "", "no"):
            await ops.update(self.dst, self.created.container or "", {"RestartPolicy": self.src_policy})
        await self._failpoint("finalize:target-running")

    async def _rebuild(self) -> None:
        """Deletions inside a volume cannot be replayed through the archive API: start the target
        side over while the source is stopped (its data no longer moves)."""
        await self._remove_target_side(keep_networks=True)
        self.created = Created(networks=self.created.networks)
        self.target_mounts.clear()
        await self._build_target()
        await self._copy_volumes(full=True)
        await self._copy_layer(full=True)

    # -- phase 4 --------------------------------------------------------------

    async def finalize(self) -> None:
        """Remove or rename the stopped source; a source node that is down is waited for (``source_wait``),
        then left as it is (stopped, restart policy "no": it cannot come back as a second copy)."""
        if self.remove_source:
            self._save("finalize")
            self.emit("finalize", f"removing the source on {self.src.name}")
            await self._on_source(lambda: ops.remove_container(self.src, self.sid, force=True))
            left = [v.name for v in self.facts.volumes if not v.anonymous]
            if left:
                self.details["source_volumes_left"] = left
            return
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.kept_as = f"{self.name}-migrated-{stamp}"
        self._save("finalize")
        self.emit("finalize", f"keeping the stopped source as {self.kept_as}")
        await self._on_source(lambda: rename_kept(self.src, self.sid, self.kept_as or ""))
        self.details["source_kept_as"] = self.kept_as
        self.details["source_restart_policy"] = self.src_policy

    async def _on_source(self, step: Callable[[], Any]) -> Any:
        """Run one call on the source, retrying while its node is away, for ``source_wait`` seconds."""
        deadline = time.monotonic() + self.source_wait
        delay = 0.25
        while True:
            try:
                return await step()
            except EngineError as exc:
                if time.monotonic() >= deadline or not _unreachable(exc):
                    raise
                self.emit(self.phase, f"waiting for {self.src.name} to come back: {_first_line(exc)}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            await self.src.reset()

    async def rollback(self) -> list[str]:
        """Undo: target side removed (retrying while its node is away), source running again if it was
        (waiting for its node when it is away)."""
        self._save("rollback")
        notes: list[str] = []
        left = await self._remove_target_side(keep_networks=False, wait=self.cleanup_wait)
        if left:
            notes.append(f"left on {self.dst.name} (unreachable): {', '.join(left)}")
            self.details["left_on_target"] = left
        else:
            notes.append(f"target side on {self.dst.name} removed")
        if self.src_stopped or self.was_running:
            try:
                notes.append(await self._on_source(self._restore_source))
            except (EngineError, RuntimeError) as exc:
                policy = "no" if self.src_stopped else str(self.src_policy.get("Name") or "no")
                notes.append(f"SOURCE NOT RESTARTED on {self.src.name}: {_first_line(exc)} (it is stopped or "
                             f"unknown, restart policy {policy}, was {self.src_policy.get('Name') or 'no'})")
                self.details["source_not_restarted"] = str(exc)
        self.details["outcome"] = "; ".join(notes)
        return notes

    async def _restore_source(self) -> str:
        """Idempotent: restart policy back to the original, running again if it was. Says what it found."""
        doc = await self.src.inspect(self.sid)
        policy = (doc.get("HostConfig") or {}).get("RestartPolicy") or {}
        if (policy.get("Name") or "no") != (self.src_policy.get("Name") or "no"):
            await ops.update(self.src, self.sid, {"RestartPolicy": self.src_policy})
        if not self.was_running:
            return f"source on {self.src.name} left stopped (it was not running)"
        if (doc.get("State") or {}).get("Running"):
            return f"source running on {self.src.name}"
        await self.src.container_action(self.sid, "start", timeout=60.0)
        await ops.wait_up(self.src, self.sid, healthy=False, timeout=60.0)
        return f"source restarted on {self.src.name}"

    async def _remove_target_side(self, *, keep_networks: bool, wait: float = 0.0) -> list[str]:
        deadline = time.monotonic() + wait
        delay = 0.25
        while True:
            errors = await self._remove_once(keep_networks)
            self._save()
            if not errors or time.monotonic() >= deadline:
                return self.created.describe() if errors else []
            self.emit("rollback", f"waiting for {self.dst.name} to clean up: {errors[0]}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            await self.dst.reset()

    async def _remove_once(self, keep_networks: bool) -> list[str]:
        errors: list[str] = []
        c = self.created
        if c.container is None:
            found = await _quiet(ops.find_container(self.dst, self.name))
            if found is not None and found.get("Created") and not (found.get("State") or {}).get("Running") \
                    and found["Id"] != self.sid and self._ours(found):
                c.container = found["Id"]
        for helper in list(c.helpers):
            err = await ops.best_effort(ops.remove_container(self.dst, helper))
            if err:
                errors.append(err)
            else:
                c.helpers.remove(helper)
        if c.container is not None:
            err = await ops.best_effort(ops.remove_container(self.dst, c.container, force=True, volumes=True))
            if err:
                errors.append(err)
            else:
                c.container = None
        for vol in list(c.volumes):
            err = await ops.best_effort(ops.remove_volume(self.dst, vol))
            if err:
                errors.append(err)
            else:
                c.volumes.remove(vol)
        if not keep_networks:  # a rebuild keeps what the new target container needs: its networks and image
            for net in list(c.networks):
                err = await ops.best_effort(ops.remove_network(self.dst, net))
                if err:
                    errors.append(err)
                else:
                    c.networks.remove(net)
            for tag in list(c.tags):
                err = await ops.best_effort(ops.remove_tag(self.dst, tag, self.facts.image.id if self.facts.image
                                                           else str(self.facts.doc.get("Image"))))
                if err:
                    errors.append(err)
                else:
                    c.tags.remove(tag)
        return errors

    def _ours(self, doc: dict[str, Any]) -> bool:
        """A container found by name on the target is ours when it has the source's image and labels."""
        return ((doc.get("Config") or {}).get("Labels") or {}) == (
            (self.facts.doc.get("Config") or {}).get("Labels") or {})


STAT_SECONDS = 0.03  # one archive HEAD (the daemon mounts the container for each)
READ_RATE = 100e6  # bytes/s the daemon tars a volume at


def _stat_is_cheaper(manifest: dict[str, Entry]) -> bool:
    return len(manifest) * STAT_SECONDS < sum(e.size for e in manifest.values()) / READ_RATE


class _Redo(Exception):
    """The delta cannot be applied; copy in full."""


def _keep_changed(old: dict[str, Entry], cutoff: float, parent: str) -> Callable[[Entry], bool]:
    prefix = parent.rstrip("/")

    def keep(entry: Entry) -> bool:
        before = old.get(f"{prefix}/{entry.path}" if prefix else entry.path)
        return before is None or before.key != entry.key or entry.mtime >= cutoff
    return keep


async def failpoint(name: str, say: Callable[[str], None]) -> None:
    """Stop here when BERTH_FAILPOINT names this point: for good (crash tests kill the process), or, with
    BERTH_FAILPOINT_RELEASE naming a file, until that file appears (it is consumed: the next pass pauses
    again). An interrupt (a signal, the console's cancel) ends the pause: the next safe point acts on it."""
    if os.environ.get(FAILPOINT_ENV) != name:
        return
    from console.actions.interrupt import current

    token = current()
    release = os.environ.get(f"{FAILPOINT_ENV}_RELEASE")
    if not release:
        say(f"failpoint {name}: paused until killed ({FAILPOINT_ENV})")
        await (token.wait() if token is not None else asyncio.Event().wait())
        return
    say(f"failpoint {name}: paused until {release} appears ({FAILPOINT_ENV}_RELEASE)")
    while not (token is not None and token.requested):
        try:
            os.unlink(release)
            return
        except FileNotFoundError:
            await asyncio.sleep(0.02)


async def rename_kept(client: EngineClient, cid: str, name: str) -> None:
    """Rename, idempotently: a rename whose answer was lost has already happened."""
    doc = await client.inspect(cid)
    if str(doc.get("Name", "")).lstrip("/") != name:
        await ops.rename(client, cid, name)


def _unreachable(exc: EngineError) -> bool:
    from console.engine.errors import APIError

    return not isinstance(exc, APIError)  # no HTTP answer at all: the node is away, not refusing


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


async def _quiet(coro: Any) -> Any:
    try:
        return await coro
    except EngineError:
        return None
