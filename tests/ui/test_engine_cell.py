"""The hosts table's engine column names Podman: its bare version (4.3.1) would read as a very old Docker."""

from __future__ import annotations

import fleetdata

from console.ui.cells import Context, host_cell
from console.ui.query import _node_field


def test_a_podman_node_shows_its_engine_by_name_a_dockerd_node_its_version() -> None:
    snap = fleetdata.fleet()
    [first, *_] = snap.nodes
    podman = fleetdata.with_node(snap, first.name, engine="podman", engine_version="4.3.1").node(first.name)
    ctx = Context(now=fleetdata.NOW)
    assert host_cell(podman, "engine", ctx).text == "podman 4.3.1"
    assert host_cell(snap.nodes[1], "engine", ctx).text == snap.nodes[1].engine_version == "27.1.1"
    assert "podman" in _node_field(podman, "text")  # a search for "podman" finds the node
