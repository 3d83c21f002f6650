"""`berth serve --metrics --shard K/N`: one shard of the fleet behind one server, for Prometheus."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servekit import free_port  # noqa: E402
from test_serve_ssh import Team, team  # noqa: E402, F401 - the fixture, used by name

from console.metrics.shard import shard_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_a_sharded_server_polls_and_exports_only_its_shards_nodes(team: Team) -> None:  # noqa: F811
    """Given the demo fleet (sim-01..sim-06) served with --shard 2/2 and --metrics, /metrics names
    exactly the nodes that hash to shard 2 of 2, and says which shard it is."""
    port = free_port()
    team.start("--metrics", f"127.0.0.1:{port}", "--shard", "2/2")
    want = {f"sim-{i:02d}" for i in range(1, 7) if shard_of(f"sim-{i:02d}", 2) == 2}
    deadline = time.monotonic() + 30
    body = ""
    while "berth_node_up" not in body and time.monotonic() < deadline:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        time.sleep(0.2)
    assert set(re.findall(r'berth_node_up\{node="([^"]+)"\}', body)) == want
    assert 'berth_poller_info{version="0.1.0",shard="2/2"} 1.0' in body


def test_a_bad_shard_is_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "console", "serve", "--demo", "--shard", "3/2"], check=False,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == "berth serve: --shard: shard '3/2': K must be from 1 to N, and N at least 1"
