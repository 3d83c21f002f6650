"""What a container shares with the other containers on its node, which moving it alone would split.

A migration copies one container's volumes and recreates it on another node. Whatever it shares stays
behind with the others: a volume another container also mounts (running or not, a stopped mounter
holds the data too) would become two copies that diverge; a host path others bind-mount stays where
it is; a container whose network, PID or IPC namespace others join (``--network container:X``,
``--pid``, ``--ipc``) would leave them with only ``lo``; a container that takes its volumes from
another (``--volumes-from``) or joins another's namespace cannot run on a node without it.
Pre-flight reads this and refuses, naming the others, so the operator can decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from console.actions import engine_ops as ops
from console.engine.client import EngineClient
from console.engine.errors import NotFound

NAMESPACES = (("NetworkMode", "network"), ("PidMode", "PID"), ("IpcMode", "IPC"))


def _name(doc: dict[str, Any]) -> str:
    return str(doc.get("Name", "")).lstrip("/") or str(doc.get("Id", ""))[:12]


def _state(doc: dict[str, Any]) -> str:
    return str((doc.get("State") or {}).get("Status") or "unknown")


def _who(doc: dict[str, Any]) -> str:
    return f"{_name(doc)} ({_state(doc)})"


def _joined(mode: object) -> str | None:
    """The container a ``container:X`` mode names (an id once the daemon resolved it, or a name)."""
    text = str(mode or "")
    return text.partition(":")[2] or None if text.startswith("container:") else None


def _names(doc: dict[str, Any], ref: str) -> bool:
    """Does ``ref`` (as written in a mode, VolumesFrom or Links) name this container?"""
    ref = ref.lstrip("/")
    cid = str(doc.get("Id", ""))
    return bool(ref) and (ref == _name(doc) or (len(ref) >= 12 and cid.startswith(ref)))


def _under(a: str, b: str) -> bool:
    """One host path is the other or inside it."""
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _takes(what: list[str], owner: str | None = None) -> str:
    """What one container takes from another: ``["network", "PID", "volumes"]`` -> "joins its network and PID
    namespaces and mounts its volumes (--volumes-from)" (or "... the volumes of OWNER ..." given an owner)."""
    spaces = [w for w in ("network", "PID", "IPC") if w in what]
    plural = "s" if len(spaces) > 1 else ""
    parts = []
    if spaces:
        parts.append(f"joins its {_and(spaces)} namespace{plural}" if owner is None
                     else f"joins the {_and(spaces)} namespace{plural} of {owner}")
    if "volumes" in what:
        parts.append("mounts its volumes" if owner is None else f"mounts the volumes of {owner}")
        parts[-1] += " (--volumes-from)"
    if "link" in what:
        parts.append(f"links to {'it' if owner is None else owner} (--link)")
    return " and ".join(parts)


@dataclass
class Sharing:
    node: str
    volumes: dict[str, list[str]] = field(default_factory=dict)  # volume -> other mounters
    binds: dict[str, list[str]] = field(default_factory=dict)  # host path -> others bind-mounting it (or within)
    dependants: dict[str, list[str]] = field(default_factory=dict)  # other -> what it takes from this one
    dependencies: dict[str, list[str]] = field(default_factory=dict)  # other -> what this one takes from it

    def refusals(self, name: str) -> list[str]:
        """Reasons (bind mounts aside: --allow-bind governs those) why ``name`` must not move alone."""
        out = []
        for vol, who in sorted(self.volumes.items()):
            label = vol[:12] if len(vol) == 64 else vol
            out.append(f"volume {label} is also mounted by {', '.join(sorted(who))} on {self.node}: moving {name} "
                       f"alone would split its data into two diverging copies")
        if self.dependants:
            users = ", ".join(f"{other} {_takes(what)}" for other, what in sorted(self.dependants.items()))
            out.append(f"{users} on {self.node}: moving {name} alone would cut "
                       f"{'them' if len(self.dependants) > 1 else 'it'} off")
        for other, what in sorted(self.dependencies.items()):
            out.append(f"it {_takes(what, other)} on {self.node}: it cannot run on another node without "
                       f"{other.split(' (')[0]}")
        return out

    def bind_note(self, path: str) -> str:
        who = self.binds.get(path)
        return f", also bind-mounted by {', '.join(sorted(who))}" if who else ""


async def sharing(client: EngineClient, doc: dict[str, Any]) -> Sharing:
    """Read every other container on the node (inspected: PID/IPC modes and volumes-from are not in the
    listing) and say what ``doc`` shares with them."""
    cid = str(doc.get("Id", ""))
    items = await client.containers(all=True)
    ids = [i["Id"] for i in items if i.get("Id") != cid and not (i.get("Labels") or {}).get(ops.ROLE)]
    sem = asyncio.Semaphore(8)

    async def one(other: str) -> dict[str, Any] | None:
        async with sem:
            try:  # the keep-alive pool: a node of hundreds of containers is read in a fraction of the time
                return await client.inspect_lean(other)
            except NotFound:
                return None  # removed meanwhile

    others = [d for d in await asyncio.gather(*(one(i) for i in ids)) if d is not None]
    return shared_with(doc, others, client.name)


def shared_with(doc: dict[str, Any], others: list[dict[str, Any]], node: str) -> Sharing:
    """What ``doc`` shares with ``others`` (inspect documents of the other containers on ``node``)."""
    out = Sharing(node)
    host = doc.get("HostConfig") or {}
    mounts = doc.get("Mounts") or []
    my_volumes = {str(m.get("Name")) for m in mounts if m.get("Type") == "volume" and m.get("Name")}
    my_binds = {str(m.get("Source")) for m in mounts if m.get("Type") == "bind" and m.get("Source")}
    for other in others:
        ohost = other.get("HostConfig") or {}
        for m in other.get("Mounts") or []:
            if m.get("Type") == "volume" and m.get("Name") in my_volumes:
                out.volumes.setdefault(str(m["Name"]), []).append(_who(other))
            elif m.get("Type") == "bind":
                for path in my_binds:
                    if _under(path, str(m.get("Source") or "")) and _who(other) not in out.binds.get(path, []):
                        out.binds.setdefault(path, []).append(_who(other))
        takes = [what for key, what in NAMESPACES if _names(doc, _joined(ohost.get(key)) or "")]
        if any(_names(doc, str(ref).split(":")[0]) for ref in ohost.get("VolumesFrom") or []):
            takes.append("volumes")
        if any(_names(doc, str(link).split(":")[0]) for link in ohost.get("Links") or []):
            takes.append("link")
        if takes:
            out.dependants[_who(other)] = takes

    def find(ref: str) -> str:
        for other in others:
            if _names(other, ref):
                return _who(other)
        return f"{ref.lstrip('/')[:12]} (gone)"

    def depends(ref: str, what: str) -> None:
        out.dependencies.setdefault(find(ref), []).append(what)

    for key, what in NAMESPACES:
        joined = _joined(host.get(key))
        if joined:
            depends(joined, what)
    for ref in host.get("VolumesFrom") or []:
        depends(str(ref).split(":")[0], "volumes")
    for link in host.get("Links") or []:
        depends(str(link).split(":")[0], "link")
    return out
