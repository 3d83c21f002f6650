"""What a container shares with its neighbours, from inspect documents alone (the lab tests read the same
from real dockerd): the cases the lab does not build, legacy links and nested host paths, and the image
references and contents migrate reasons about."""

from __future__ import annotations

from typing import Any

from console.actions.migrate import same_content, split_ref
from console.actions.sharing import shared_with

BASE_ID = "a" * 64


def doc(name: str, cid: str, status: str = "running", mounts: list[dict[str, Any]] | None = None,
        **host: Any) -> dict[str, Any]:
    return {"Id": cid, "Name": f"/{name}", "State": {"Status": status}, "Mounts": mounts or [], "HostConfig": host}


def test_a_legacy_link_is_named_both_ways() -> None:
    base = doc("db", BASE_ID)
    app = doc("app", "b" * 64, status="exited", Links=["/db:/app/database"])
    assert shared_with(base, [app], "n1").refusals("db") == [
        "app (exited) links to it (--link) on n1: moving db alone would cut it off"]
    assert shared_with(app, [base], "n1").refusals("app") == [
        "it links to db (running) (--link) on n1: it cannot run on another node without db"]


def test_a_namespace_named_by_id_prefix_and_a_vanished_owner() -> None:
    side = doc("side", "c" * 64, NetworkMode=f"container:{BASE_ID[:12]}")
    assert shared_with(doc("base", BASE_ID), [side], "n1").refusals("base") == [
        "side (running) joins its network namespace on n1: moving base alone would cut it off"]
    # The container it joined is gone: still refused (it cannot run elsewhere), naming what is left of it.
    [reason] = shared_with(side, [], "n1").refusals("side")
    assert reason.startswith(f"it joins the network namespace of {BASE_ID[:12]} (gone)")


def test_host_paths_one_inside_the_other_are_shared_and_siblings_are_not() -> None:
    mine = doc("b1", "d" * 64, mounts=[{"Type": "bind", "Source": "/srv/app", "Destination": "/srv"}])
    inner = doc("b2", "e" * 64, mounts=[{"Type": "bind", "Source": "/srv/app/logs", "Destination": "/logs"}])
    outer = doc("b3", "f" * 64, status="created", mounts=[{"Type": "bind", "Source": "/srv", "Destination": "/x"}])
    sibling = doc("b4", "1" * 64, mounts=[{"Type": "bind", "Source": "/srv/application", "Destination": "/y"}])
    shared = shared_with(mine, [inner, outer, sibling], "n1")
    assert shared.bind_note("/srv/app") == ", also bind-mounted by b2 (running), b3 (created)"
    assert shared.refusals("b1") == []  # binds are --allow-bind's to govern


def test_image_references_split_at_the_tag_not_at_a_registry_port() -> None:
    assert split_ref("berth/busybox:test") == ("berth/busybox", "test")
    assert split_ref("registry:5000/team/app") == ("registry:5000/team/app", "latest")
    assert split_ref("registry:5000/team/app:1.2") == ("registry:5000/team/app", "1.2")
    assert split_ref("busybox") == ("busybox", "latest")


def test_images_are_the_same_content_only_with_the_same_layers_and_run_config() -> None:
    a = {"Id": "sha256:1", "Os": "linux", "Architecture": "amd64", "RootFS": {"Layers": ["sha256:x"]},
         "Config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Image": "sha256:parent1", "Hostname": "h1"}}
    rebuilt = {**a, "Id": "sha256:2", "Created": "later", "Config": {**a["Config"], "Image": "", "Hostname": "h2"}}
    assert same_content(a, rebuilt)
    assert not same_content(a, {**rebuilt, "RootFS": {"Layers": ["sha256:y"]}})
    assert not same_content(a, {**rebuilt, "Config": {**rebuilt["Config"], "Cmd": ["httpd"]}})
    assert not same_content(a, {**rebuilt, "Architecture": "arm64"})
    assert not same_content({**a, "RootFS": {}}, {**rebuilt, "RootFS": {}})  # nothing to compare: not the same
