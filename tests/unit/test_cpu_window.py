"""Two samples closer than MIN_WINDOW of host time give no CPU figure: the older one stays the
reference, so a primer and a stream sample that land milliseconds apart cannot show noise."""

from __future__ import annotations

import pytest

from console.config import parse_inventory
from console.fleet.poller import MIN_WINDOW, ContainerState, NodeWatcher

NCPU = 4
NS = 1_000_000_000


@pytest.fixture
def watcher() -> NodeWatcher:
    inv = parse_inventory('[[node]]\nname = "n1"\nurl = "unix:///nonexistent/docker.sock"\n')
    w = NodeWatcher(inv.nodes[0], inv, on_change=lambda *a: None)
    c = ContainerState("c1", "n1")
    c.state = "running"
    w.containers["c1"] = c
    return w


def doc(host_seconds: float, container_seconds: float, mem: int = 1000) -> dict:
    """A stats sample `host_seconds` into the host's life, the container having used `container_seconds`."""
    return {"cpu_stats": {"cpu_usage": {"total_usage": int(container_seconds * NS)},
                          "system_cpu_usage": int(host_seconds * NCPU * NS), "online_cpus": NCPU},
            "memory_stats": {"usage": mem, "limit": 1 << 30}}


def test_a_sample_closer_than_the_window_updates_memory_but_not_cpu(watcher: NodeWatcher) -> None:
    c = watcher.containers["c1"]
    watcher._apply_stats("c1", doc(100.0, 10.0))
    first = c.prev
    # 30 ms later, at a made-up rate of 10 cores: too short a window to trust
    watcher._apply_stats("c1", doc(100.0 + MIN_WINDOW * 0.15, 10.3, mem=2000))
    assert c.cpu_percent is None and c.prev is first and c.mem_used == 2000
    # a second after the first: the figure spans the whole second (half a core)
    watcher._apply_stats("c1", doc(101.0, 10.5))
    assert c.cpu_percent == pytest.approx(50.0)


def test_samples_a_window_apart_give_the_figure_between_them(watcher: NodeWatcher) -> None:
    c = watcher.containers["c1"]
    watcher._apply_stats("c1", doc(100.0, 10.0))
    watcher._apply_stats("c1", doc(100.0 + MIN_WINDOW * 1.5, 10.0 + MIN_WINDOW * 1.5))
    assert c.cpu_percent == pytest.approx(100.0)


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    """A stream per running container needs a descriptor each: 10,000 containers do not fit in 1024."""
    import resource

    from console.fleet.poller import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        now = raise_fd_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        assert now == hard or (hard == resource.RLIM_INFINITY and now >= low)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
