"""A private Prometheus server and `berth metrics` processes for the real-Prometheus tests.

`PromServer` runs Debian's /usr/bin/prometheus on a free loopback port with its own
--storage.tsdb.path under the test's tmp dir, scraping the given targets every second, and
answers PromQL through its HTTP API. `BerthMetrics` runs `python -m console metrics` on a free
loopback port and reads the address it prints. Both stop their own process (by pid) only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
T = TypeVar("T")


def require_prometheus() -> None:
    if not os.access(PROMETHEUS, os.X_OK):
        if os.environ.get("BERTH_REQUIRE_LAB") == "1":
            pytest.fail("prometheus is not installed (apt-get install prometheus); BERTH_REQUIRE_LAB=1")
        pytest.skip("LAB SKIPPED: prometheus is not installed (apt-get install prometheus)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy (a non-empty PromQL result...); that is the result."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g}s (last: {last!r})")


class BerthMetrics:
    """`berth metrics --inventory INV --listen 127.0.0.1:0 [--shard K/N]` as a child process."""

    def __init__(self, inventory: Path, *args: str, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console", "metrics", "--inventory", str(inventory),
             "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the process prints its address once it listens
        if "serving http://" not in line:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=timeout)
            raise AssertionError(f"berth metrics did not start: {line!r} {err!r}")
        self.banner = line.strip()
        self.url = line.split("serving ", 1)[1].split()[0]
        self.target = urllib.parse.urlsplit(self.url).netloc

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as resp:
            return resp.read().decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class PromServer:
    """Debian's prometheus, private to one test: its own port, config and TSDB directory."""

    def __init__(self, base: Path, targets: Sequence[str], rule_files: Sequence[Path] = (), *,
                 web_config: Path | None = None, ca: Path | None = None,
                 basic: tuple[str, str] | None = None, scrape_interval: str = "1s") -> None:
        """``web_config``: Prometheus' --web.config.file (TLS, basic auth); then ``ca`` and ``basic``
        are what this helper's own requests use."""
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.port = free_port()
        self.url = f"{'https' if web_config else 'http'}://127.0.0.1:{self.port}"
        self._context = ssl.create_default_context(cafile=str(ca)) if ca else None
        self._headers = {}
        if basic is not None:
            token = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": scrape_interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "berth", "static_configs": [{"targets": list(targets)}]}],
        }
        (base / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.log = open(base / "prometheus.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             *([f"--web.config.file={web_config}"] if web_config else [])],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=base)
        try:
            wait_for(self._ready, 60, "prometheus ready")
        except BaseException:
            self.close()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log_tail()}")
        try:
            with self._open(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def _open(self, url: str, timeout: float) -> Any:
        return urllib.request.urlopen(urllib.request.Request(url, headers=self._headers), timeout=timeout,
                                      context=self._context)

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        return "\n".join((self.base / "prometheus.log").read_text().splitlines()[-lines:])

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector for ``promql`` now (or at unix time ``at``): [{"metric": {...}, "value": [t, "v"]}]."""
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params)
        with self._open(url, timeout=10) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def values(self, promql: str, by: str, at: float | None = None) -> dict[str, float]:
        """``promql``'s samples keyed by one label's value."""
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(promql, at)}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
