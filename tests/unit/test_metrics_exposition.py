"""`/metrics`: the berth_* series from one snapshot, absent (never 0) where Berth does not know,
inventory labels on the info series only, the same through prometheus-client and the direct writer."""

from __future__ import annotations

import gzip
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))

import fleetdata  # noqa: E402

from console.metrics import (  # noqa: E402
    build_registry,
    parse_listen,
    parse_shard,
    shard_inventory,
    start_exposition,
)
from console.metrics.collector import SnapshotCollector, render_text  # noqa: E402
from console.metrics.shard import shard_of  # noqa: E402

NOW = fleetdata.NOW
ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str, process: bool = False) -> Samples:
    """Every sample of the text, keyed by name and labels; the process's own only when asked."""
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if process or not s.name.startswith("berth_process_"):
                out[s.name, frozenset(s.labels.items())] = s.value
    return out


def scrape(snap, now: float = NOW, stale_after: float = 15.0) -> Samples:
    collector = SnapshotCollector(lambda: snap, stale_after=stale_after, clock=lambda: now)
    return samples(render_text(collector.families()).decode())


def value(got: Samples, name: str, **labels: str) -> float | None:
    return got.get((name, frozenset(labels.items())))


def names_for(got: Samples, **labels: str) -> set[str]:
    want = set(labels.items())
    return {name for name, lab in got if want <= lab}


def test_a_live_node_has_every_figure_in_base_units() -> None:
    """Given the reference fleet, when scraped, then node-2 (8 CPUs, 32 GiB, up) reads as the snapshot
    says, in cores, bytes, seconds and ratios."""
    snap = fleetdata.fleet()
    got = scrape(snap)
    n2 = snap.node("node-2")
    assert value(got, "berth_node_up", node="node-2") == 1.0
    assert value(got, "berth_node_state", node="node-2", state="up") == 1.0
    assert value(got, "berth_node_state", node="node-2", state="down") == 0.0
    assert value(got, "berth_node_cpus", node="node-2") == 8.0
    assert value(got, "berth_node_memory_bytes", node="node-2") == 32 * fleetdata.GiB
    assert value(got, "berth_node_cpu_usage_cores", node="node-2") == pytest.approx(n2.density.cpu_cores_used)
    assert value(got, "berth_node_cpu_density_ratio", node="node-2") == pytest.approx(n2.density.cpu_density)
    assert value(got, "berth_node_memory_density_ratio", node="node-2") == pytest.approx(n2.density.mem_density)
    assert value(got, "berth_node_cpu_committed_ratio", node="node-2") == pytest.approx(n2.density.cpu_committed)
    assert value(got, "berth_node_memory_committed_ratio", node="node-2") == pytest.approx(n2.density.mem_committed)
    assert value(got, "berth_node_data_age_seconds", node="node-2") == pytest.approx(1.1)
    assert value(got, "berth_node_containers", node="node-2", state="running") == n2.density.running
    assert value(got, "berth_node_cordoned", node="node-2") == 0.0
    api = {"node": "node-2", "container": "acme-api-1", "tenant": "acme"}
    assert value(got, "berth_container_cpu_usage_cores", **api) == pytest.approx(1.875)
    assert value(got, "berth_container_cpu_limit_cores", **api) == 2.0
    assert value(got, "berth_container_memory_usage_bytes", **api) == 1850 * fleetdata.MiB
    assert value(got, "berth_container_memory_limit_bytes", **api) == 2048 * fleetdata.MiB
    assert value(got, "berth_container_running", **api) == 1.0
    assert value(got, "berth_container_restarts_total", **api) == 0.0
    assert value(got, "berth_container_isolated", node="node-3", container="globex-web-3", tenant="globex") == 1.0
    acme = snap.tenant("acme")
    assert value(got, "berth_tenant_cpu_usage_cores", tenant="acme") == pytest.approx(acme.cpu_cores_used)
    assert value(got, "berth_tenant_memory_usage_bytes", tenant="acme") == acme.mem_used
    assert value(got, "berth_tenant_cpu_quota_cores", tenant="acme") == 8.0
    assert value(got, "berth_tenant_memory_quota_bytes", tenant="acme") == 40 * fleetdata.GiB
    assert value(got, "berth_tenant_containers", tenant="acme", state="running") == acme.running


def test_a_down_node_keeps_up_info_and_age_and_nothing_it_does_not_know() -> None:
    """Given node-4 down (95 s since its last data) with five containers last seen running, then it reads
    up 0 and state down with its age, and no CPU, memory, density or container figure, not even 0;
    its containers keep only their info series and count as `unknown` in their tenants."""
    got = scrape(fleetdata.fleet())
    assert value(got, "berth_node_up", node="node-4") == 0.0
    assert value(got, "berth_node_state", node="node-4", state="down") == 1.0
    assert value(got, "berth_node_data_age_seconds", node="node-4") == pytest.approx(95.0)
    assert value(got, "berth_node_data_timestamp_seconds", node="node-4") == pytest.approx(NOW - 95.0)
    assert names_for(got, node="node-4") == {
        "berth_node_up", "berth_node_state", "berth_node_info", "berth_node_data_age_seconds",
        "berth_node_data_timestamp_seconds",
        "berth_poller_samples_total", "berth_poller_errors_total", "berth_container_info"}
    assert value(got, "berth_tenant_containers", tenant="umbrella", state="unknown") == 1.0


def test_stale_data_is_unknown_and_a_stalled_feed_ages_every_node() -> None:
    """Given node-2's data 40 s old (stale after 15 s), its figures are absent though it is up; given the
    whole snapshot 20 s old at scrape time, every node's age includes those 20 s and all are unknown."""
    got = scrape(fleetdata.with_node(fleetdata.fleet(), "node-2", data_age=40.0))
    assert value(got, "berth_node_up", node="node-2") == 1.0
    assert value(got, "berth_node_cpu_usage_cores", node="node-2") is None
    assert value(got, "berth_container_cpu_usage_cores", node="node-2", container="acme-api-1",
                 tenant="acme") is None
    assert value(got, "berth_node_cpu_usage_cores", node="node-1") is not None

    late = scrape(fleetdata.fleet(), now=NOW + 20)
    assert value(late, "berth_snapshot_age_seconds") == pytest.approx(20.0)
    assert value(late, "berth_node_data_age_seconds", node="node-1") == pytest.approx(20.8)
    assert not [k for k in late if k[0] == "berth_node_cpu_usage_cores"]


def test_no_cpu_sample_yet_is_absent_and_so_is_the_total_it_would_be_part_of() -> None:
    """Given acme-api-3 on node-1 running with no CPU sample yet, its CPU series is absent, and so are
    node-1's CPU total and density and acme's CPU total: a sum with a hole is not a figure."""
    snap = fleetdata.fleet()
    containers = tuple(replace(c, cpu_percent=None) if c.name == "acme-api-3" else c for c in snap.containers)
    got = scrape(replace(snap, containers=containers))
    api3 = {"node": "node-1", "container": "acme-api-3", "tenant": "acme"}
    assert value(got, "berth_container_cpu_usage_cores", **api3) is None
    assert value(got, "berth_container_memory_usage_bytes", **api3) is not None
    assert value(got, "berth_node_cpu_usage_cores", node="node-1") is None
    assert value(got, "berth_node_cpu_density_ratio", node="node-1") is None
    assert value(got, "berth_node_memory_usage_bytes", node="node-1") is not None
    assert value(got, "berth_tenant_cpu_usage_cores", tenant="acme") is None
    assert value(got, "berth_tenant_cpu_usage_cores", tenant="globex") is not None


def test_inventory_labels_are_on_the_info_series_only() -> None:
    """Given nodes labelled rack=r1..r4, then `rack` appears on berth_node_info and on nothing else."""
    got = scrape(fleetdata.fleet())
    info = value(got, "berth_node_info", node="node-1", engine="docker", engine_version="27.1.1", api_version="1.46",
                 kernel="6.8.0-45-generic", os="Ubuntu 24.04.1 LTS", cgroup_version="2", rack="r1")
    assert info == 1.0
    assert {name for name, lab in got if any(k == "rack" for k, _ in lab)} == {"berth_node_info"}


def test_label_keys_that_are_not_prometheus_names_are_made_valid() -> None:
    """Given inventory labels `zone.name`, `node` and `2fa`, they become zone_name, label_node and _2fa."""
    snap = fleetdata.fleet()
    odd = (("zone.name", "eu-1"), ("node", "other"), ("2fa", "yes"))
    got = scrape(replace(snap, nodes=tuple(replace(n, labels=odd) for n in snap.nodes)))
    info = next(dict(lab) for name, lab in got if name == "berth_node_info" and ("node", "node-1") in lab)
    assert (info["zone_name"], info["label_node"], info["_2fa"]) == ("eu-1", "other", "yes")


def test_the_direct_writer_says_what_prometheus_client_says() -> None:
    """Given the reference fleet, the text written directly and prometheus-client's rendering of the
    same collector parse to the same samples."""
    snap = fleetdata.fleet()
    collector = SnapshotCollector(lambda: snap, clock=lambda: NOW)
    direct = samples(render_text(collector.families()).decode())
    library = samples(generate_latest(build_registry(collector)).decode())
    assert direct == library and len(direct) > 300


def test_before_the_first_snapshot_only_the_poller_info_is_served() -> None:
    got = scrape(None)
    assert set(got) == {("berth_poller_info", frozenset({("version", "0.1.0"), ("shard", "")}))}


def test_the_endpoint_serves_text_gzip_and_its_own_process_figures() -> None:
    """Given an exposition on a free loopback port, GET /metrics answers the text format (gzipped when
    asked) with the fleet and berth_process_* figures; other paths are 404."""
    snap = fleetdata.fleet()
    server = start_exposition(lambda: snap, "127.0.0.1", 0)
    try:
        assert server.address.host == "127.0.0.1" and server.address.port > 0
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            plain = resp.read().decode()
        req = urllib.request.Request(server.url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            zipped = gzip.decompress(resp.read()).decode()
        got = samples(zipped, process=True)
        assert ("berth_node_up", frozenset({("node", "node-1")})) in got
        assert any(name == "berth_process_resident_memory_bytes" and v > 0 for (name, _), v in got.items())
        assert any(name == "berth_process_cpu_seconds_total" for name, _ in got)
        assert set(samples(plain)) == set(samples(zipped))  # (the ages moved on between the two)
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            third = samples(resp.read().decode())
        assert third[("berth_exposition_scrapes_total", frozenset())] == 2.0  # the two before it
        assert third[("berth_exposition_cpu_seconds_total", frozenset())] > 0
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url.replace("/metrics", "/nope"), timeout=10)
        assert err.value.code == 404
    finally:
        server.close()


# -- listen addresses and shards ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("9417", "has no port"), ("host:", "is not a number"), (":9417", "has no host"),
    ("::1:9417", "brackets"), ("a b:1", "is not a host"), ("h:70000", "is not a number"),
])
def test_bad_listen_addresses_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_listen(text)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9417").loopback and parse_listen("[::1]:0").port == 0
    assert not parse_listen("0.0.0.0:9417").loopback


@pytest.mark.parametrize("text", ["", "1", "0/3", "4/3", "a/b", "1/0", "-1/2"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_shards_split_every_node_once_by_name_not_by_order() -> None:
    """Given 200 node names, each is in exactly one of 3 shards, every shard gets some, the split is the
    same when the inventory lists them reversed, and a fourth shard takes nodes only from the others
    (no node moves between the first three)."""
    from console.config import Inventory, NodeConfig

    names = [f"bm-{i:03d}" for i in range(200)]
    inv = Inventory(nodes=tuple(NodeConfig(n, f"unix:///run/{n}.sock") for n in names))
    rev = replace(inv, nodes=tuple(reversed(inv.nodes)))
    parts = [{n.name for n in shard_inventory(inv, parse_shard(f"{k}/3")).nodes} for k in (1, 2, 3)]
    assert sorted(set().union(*parts)) == names and sum(map(len, parts)) == 200
    assert all(len(p) > 30 for p in parts)
    assert parts == [{n.name for n in shard_inventory(rev, parse_shard(f"{k}/3")).nodes} for k in (1, 2, 3)]
    moved = [n for n in names if shard_of(n, 4) != shard_of(n, 3)]
    assert moved and all(shard_of(n, 4) == 4 for n in moved)


# -- the command ------------------------------------------------------------------------------------


def berth(*args: str, env_inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "console", *args]
    if env_inventory is not None:
        argv += ["--inventory", str(env_inventory)]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("args", "problem"), [
    (("metrics", "--listen", "nowhere"), "berth metrics: 'nowhere' has no port"),
    (("metrics", "--shard", "3/2"), "berth metrics: shard '3/2': K must be from 1 to N"),
    (("prometheus", "shards"), "berth prometheus shards: give --shards N"),
])
def test_bad_metrics_arguments_are_one_line_and_exit_2(args: tuple[str, ...], problem: str,
                                                       tmp_path: Path) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///run/nowhere.sock"\n')
    done = berth(*args, env_inventory=inv)
    assert done.returncode == 2 and done.stderr.startswith(problem) and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1


def test_an_address_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    inv = tmp_path / "inventory.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///run/nowhere.sock"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = berth("metrics", "--listen", f"127.0.0.1:{port}", env_inventory=inv)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"berth metrics: cannot listen on 127.0.0.1:{port}: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_prometheus_shards_lists_each_node_with_its_shard(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text("".join(f'[[node]]\nname = "n{i}"\nurl = "unix:///run/n{i}.sock"\n' for i in range(6)))
    done = berth("prometheus", "shards", "--shards", "2", env_inventory=inv)
    assert done.returncode == 0, done.stderr
    rows = dict(line.split("\t") for line in done.stdout.splitlines())
    assert rows == {f"n{i}": f"{shard_of(f'n{i}', 2)}/2" for i in range(6)}


# -- reading back: options ----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "problem"), [
    (("--prometheus", "prom:9090"), "is not an http:// or https:// URL"),
    (("--prometheus", "http://p:9090/?x=1"), "must not have a query"),
    (("--prometheus", "https://p:9090", "--prometheus-user", "ops"), "set $BERTH_PROMETHEUS_PASSWORD"),
    (("--prometheus", "https://p:9090", "--prometheus-token-file", "/nonexistent/t"), "No such file"),
    (("--prometheus", "https://p:9090", "--prometheus-ca", "/nonexistent/ca.pem"), "no such file"),
    (("--prometheus", "http://prom.example:9090", "--prometheus-token-file", "TOKEN"), "use https://"),
])
def test_bad_prometheus_options_are_one_line_and_exit_2(args: tuple[str, ...], problem: str,
                                                        tmp_path: Path) -> None:
    (tmp_path / "TOKEN").write_text("s3cret\n")
    args = tuple(str(tmp_path / "TOKEN") if a == "TOKEN" else a for a in args)
    done = berth("status", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("berth status: --prometheus") and problem in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "s3cret" not in done.stderr


def test_an_unreachable_prometheus_is_one_line_and_exit_1() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    done = berth("status", "--prometheus", f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.startswith(f"berth status: prometheus http://127.0.0.1:{port}: ConnectError")
    assert len(done.stderr.splitlines()) == 1


def test_credentials_in_the_url_become_basic_auth_and_leave_the_url() -> None:
    import argparse

    from console.metrics.cli import reader_from

    reader = reader_from(argparse.Namespace(prometheus="https://ops:p%40ss@prom.example:9090/prom"), env={})
    assert reader.url == "https://prom.example:9090/prom"
    assert (reader.auth.user, reader.auth.password, reader.auth.verify) == ("ops", "p@ss", True)
    token = reader_from(argparse.Namespace(prometheus="https://prom.example"), env={"BERTH_PROMETHEUS_TOKEN": "t"})
    assert token.auth.token == "t" and token.auth.user is None


def test_the_console_with_a_bad_prometheus_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///run/nowhere.sock"\n')
    done = berth("--prometheus", "prom.example:9090", env_inventory=inv)
    assert done.returncode == 2
    assert done.stderr.strip() == "berth: --prometheus 'prom.example:9090' is not an http:// or https:// URL"


def test_the_metrics_package_never_imports_textual() -> None:
    """console/metrics is core (STYLE.md): an exporter host need not load the UI. (Rich is not checked:
    httpx itself imports it for its command line, as for console/engine.)"""
    code = ("import sys; import console.metrics, console.metrics.cli, console.metrics.promql, "
            "console.metrics.feed, console.metrics.rules, console.metrics.shard; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith('console.ui')); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_podman_nodes_engine_is_on_its_info_series_and_read_back() -> None:
    """Given a Podman node, berth_node_info says engine="podman", and `berth status --prometheus`
    reads it back; an inventory label called `engine` does not hide it (it becomes label_engine)."""
    from console.metrics.collector import label_name

    snap = fleetdata.with_node(fleetdata.fleet(), "node-1", engine="podman", engine_version="4.3.1")
    got = scrape(snap)
    assert {dict(lab).get("engine") for name, lab in got if name == "berth_node_info"} == {"docker", "podman"}
    assert [dict(lab)["node"] for name, lab in got
            if name == "berth_node_info" and dict(lab).get("engine") == "podman"] == ["node-1"]
    assert label_name("engine") == "label_engine"
    from console.fleet.model import NodeState
    from console.metrics.promql import _node

    info = {"node": "node-1", "engine": "podman", "engine_version": "4.3.1", "rack": "r1"}
    back = _node("node-1", {"info": info}, NodeState.UP, 1.0, None)
    assert (back.engine, back.engine_version, back.labels) == ("podman", "4.3.1", (("rack", "r1"),))
    assert _node("old", {"info": {"node": "old"}}, NodeState.UP, 1.0, None).engine == "docker"
