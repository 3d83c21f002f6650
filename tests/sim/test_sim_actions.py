"""Actions against simulated nodes, end to end over the Engine API: migrate (image, volume data, writable
layer), restart, isolate and unisolate, through the Actions API and through `berth migrate` as a process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from console.actions import ActionError, Actions, AuditLog
from console.config import Inventory, load_inventory
from console.sim.fleet import SimFleet

ROOT = Path(__file__).resolve().parents[2]
N1, N2 = "sim-01", "sim-02"
A = "/v1.41"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def pair() -> Iterator[SimFleet]:
    """Two simulated nodes of four containers, served from this process."""
    with SimFleet(nodes=2, containers_per_node=4, seed=17, in_process=True) as f:
        yield f


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def inventory(pair: SimFleet) -> Inventory:
    return load_inventory(pair.dir / "inventory.toml")


@pytest.fixture
async def actions(inventory: Inventory, tmp_path: Path) -> AsyncIterator[Actions]:
    async with Actions(inventory, audit=AuditLog(tmp_path / "audit.jsonl", user="tester@sim")) as a:
        yield a


def _http(fleet: SimFleet, node: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(fleet.sockets[node])), base_url="http://docker",
                        timeout=10)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o640
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read(api: httpx.Client, ref: str, path: str) -> bytes | None:
    r = api.get(f"{A}/containers/{ref}/archive", params={"path": path})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        member = tar.next()
        assert member is not None
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def _run(api: httpx.Client, name: str, image: str, **host_config: object) -> str:
    r = api.post(f"{A}/containers/create", params={"name": name},
                 json={"Image": image, "Cmd": ["sleep", "100000"], "Labels": {"tenant": "acme"},
                       "HostConfig": {"Memory": 64 * MiB, "Init": True, **host_config}})
    assert r.status_code == 201, r.text
    cid: str = r.json()["Id"]
    assert api.post(f"{A}/containers/{cid}/start").status_code == 204
    return cid


def _only_on_source(src: httpx.Client, dst: httpx.Client) -> str:
    """An image tag sim-01 has and sim-02 does not (the migration must transfer it)."""
    tags = lambda api: {t for i in api.get(f"{A}/images/json").json() for t in i["RepoTags"]}  # noqa: E731
    only = sorted(tags(src) - tags(dst))
    assert only, "seed 17 gives sim-01 an image sim-02 lacks"
    return only[0]


async def test_migrate_moves_image_volume_data_and_writable_layer(pair: SimFleet, actions: Actions,
                                                                  tmp_path: Path) -> None:
    src, dst = _http(pair, N1), _http(pair, N2)
    image = _only_on_source(src, dst)
    cid = _run(src, "store", image, Binds=["storedata:/data"], RestartPolicy={"Name": "unless-stopped"})
    src.put(f"{A}/containers/{cid}/archive", params={"path": "/data"},
            content=_tar({"blob": bytes(range(256)) * 64, "sub/n": b"nested\n"}))
    src.put(f"{A}/containers/{cid}/archive", params={"path": "/"}, content=_tar({"srv/app/state": b"layer\n"}))
    daemon = pair.node(N1).daemon
    pair.call(lambda: daemon.storage.delete(daemon.lookup(cid), "/etc/group"))  # "rm /etc/group" in the container

    def late(progress: object) -> None:  # written while the source still serves: must come with the delta copy
        if getattr(progress, "phase", "") == "switch" and getattr(progress, "detail", "").startswith("stopping"):
            src.put(f"{A}/containers/{cid}/archive", params={"path": "/data"}, content=_tar({"late": b"late\n"}))

    plan = await actions.plan("migrate", f"{N1}/store", to=N2)
    text = "\n".join(plan.summary)
    assert "volumes: storedata:/data" in text and "transfer" in text
    assert "1 path(s) deleted from the image layer will reappear on the target (storage driver vfs" in text
    result = await actions.execute(plan, late)
    assert result.ok, result.message
    assert result.downtime is not None

    target = dst.get(f"{A}/containers/store/json").json()
    assert target["State"]["Status"] == "running" and target["Config"]["Image"] == image
    assert target["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert target["Mounts"][0]["Name"] == "storedata" and target["Mounts"][0]["Destination"] == "/data"
    assert dst.get(f"{A}/images/{image}/json").json()["Id"] == src.get(f"{A}/images/{image}/json").json()["Id"]
    for path in ("/data/blob", "/data/sub/n", "/data/late", "/srv/app/state"):
        assert _read(dst, "store", path) == _read(src, cid, path), path
    assert _read(dst, "store", "/data/late") == b"late\n"
    assert _read(dst, "store", "/etc/group") is not None  # vfs: the deletion is not replayed, and that is reported
    source = src.get(f"{A}/containers/{cid}/json").json()
    assert source["State"]["Status"] == "exited" and source["Name"].startswith("/store-migrated-")
    assert source["HostConfig"]["RestartPolicy"]["Name"] == "no"
    [entry] = actions.audit.read()
    assert entry["ok"] and any("not replayed (storage driver vfs)" in w for w in entry["details"]["warnings"])


async def test_migrate_of_a_volume_another_container_mounts_is_refused_on_the_sim_too(pair: SimFleet,
                                                                                    actions: Actions) -> None:
    # The sim answers the listing and inspects pre-flight reads as dockerd does: the other mounter is seen.
    src = _http(pair, N1)
    one = _run(src, "pair-a", "berth/busybox:test", Binds=["pairdata:/data"])
    two = _run(src, "pair-b", "berth/busybox:test", Binds=["pairdata:/srv"])
    try:
        with pytest.raises(ActionError, match=r"volume pairdata is also mounted by pair-b \(running\) on sim-01"):
            await actions.plan("migrate", f"{N1}/pair-a", to=N2)
    finally:
        for cid in (one, two):
            src.delete(f"{A}/containers/{cid}", params={"force": "1"})
        src.delete(f"{A}/volumes/pairdata")


async def test_restart_reaches_the_simulated_daemon(pair: SimFleet, actions: Actions) -> None:
    api = _http(pair, N2)
    cid = _run(api, "svc", "berth/busybox:test", NetworkMode="bridge")
    before = api.get(f"{A}/containers/{cid}/json").json()["State"]["StartedAt"]
    result = await actions.execute(await actions.plan("restart", f"{N2}/svc"))
    assert result.ok, result.message
    state = api.get(f"{A}/containers/{cid}/json").json()["State"]
    assert state["Status"] == "running" and state["StartedAt"] != before


async def test_isolate_then_unisolate_on_the_sim_restores_networks_and_policy(pair: SimFleet,
                                                                             actions: Actions) -> None:
    api = _http(pair, N2)
    net = api.post(f"{A}/networks/create", json={"Name": "front", "CheckDuplicate": True}).json()["Id"]
    cid = _run(api, "suspect", "berth/busybox:test", NetworkMode="front",
               RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3})
    api.put(f"{A}/containers/{cid}/archive", params={"path": "/tmp"}, content=_tar({"dropped": b"x\n"}))
    result = await actions.execute(await actions.plan("isolate", f"{N2}/suspect", reason="beaconing"))
    assert result.ok, result.message
    doc = api.get(f"{A}/containers/{cid}/json").json()
    assert set(doc["NetworkSettings"]["Networks"]) == {f"berth-q-{cid[:12]}"}
    assert doc["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert result.details["evidence"]["fs_diff"]["counts"]  # /changes answered: the dropped file is evidence
    undo = await actions.execute(await actions.plan("unisolate", f"{N2}/suspect"))
    assert undo.ok, undo.message
    doc = api.get(f"{A}/containers/{cid}/json").json()
    assert set(doc["NetworkSettings"]["Networks"]) == {"front"}
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    api.delete(f"{A}/containers/{cid}", params={"force": "1"})
    api.delete(f"{A}/networks/{net}")


def test_berth_migrate_cli_between_simulated_nodes(pair: SimFleet, tmp_path: Path) -> None:
    src, dst = _http(pair, N1), _http(pair, N2)
    cid = _run(src, "cli-box", "berth/busybox:test", Binds=["clidata:/var/lib/app"])
    src.put(f"{A}/containers/{cid}/archive", params={"path": "/var/lib/app"}, content=_tar({"db": b"rows\n"}))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "cli-state")}
    done = subprocess.run([sys.executable, "-m", "console", "migrate", f"{N1}/cli-box", "--to", N2, "--yes",
                           "-i", str(pair.dir / "inventory.toml")], capture_output=True, text=True, env=env,
                          cwd=ROOT, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "switch: source stopped" in done.stdout and "downtime" in done.stdout
    assert dst.get(f"{A}/containers/cli-box/json").json()["State"]["Status"] == "running"
    assert _read(dst, "cli-box", "/var/lib/app/db") == b"rows\n"
    assert json.loads(dst.get(f"{A}/volumes/clidata").text)["Name"] == "clidata"
    kept = [c["Names"][0] for c in src.get(f"{A}/containers/json", params={"all": "1"}).json()]
    assert any(n.startswith("/cli-box-migrated-") for n in kept)


def _snapshot(fleet: SimFleet) -> dict[str, dict[str, bytes]]:
    """Every seeded container's /etc/hostname, /changes and mounted volume files, by container name."""
    out: dict[str, dict[str, bytes]] = {}
    for node in fleet.layout.nodes:
        api = _http(fleet, node.name)
        for item in api.get(f"{A}/containers/json", params={"all": "1"}).json():
            files = {"/etc/hostname": _read(api, item["Id"], "/etc/hostname") or b"",
                     "changes": api.get(f"{A}/containers/{item['Id']}/changes").content}
            for m in item["Mounts"]:
                body = api.get(f"{A}/containers/{item['Id']}/archive", params={"path": m["Destination"]}).content
                files.update({f"{m['Name']}:{k}": v for k, v in _tar_files(body).items()})
            out[item["Names"][0]] = files
    return out


def test_seeded_containers_have_plausible_files_deterministically() -> None:
    with SimFleet(nodes=2, containers_per_node=12, seed=17, in_process=True) as one:
        first = _snapshot(one)
        ids = {c.name: c.id for _, c in one.layout.containers()}
    with SimFleet(nodes=2, containers_per_node=12, seed=17, in_process=True) as two:
        second = _snapshot(two)
    assert first == second
    for name, files in first.items():
        assert files["/etc/hostname"] == f"{ids[name[1:]][:12]}\n".encode()
    volumes = {k.split(":")[0] for files in first.values() for k in files if ":" in k}
    assert volumes and all(v.endswith("-data") for v in volumes)  # the stateful apps keep data in a volume
    assert any(b'"Kind":2' in files["changes"] for files in first.values())  # and some layers deleted image files


def _tar_files(body: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f is not None else b""
    return out
