"""`--prometheus https://...` against a real Prometheus behind TLS and basic auth (its --web.config.file):
the certificate is verified by default, a private CA is taken with --prometheus-ca, a wrong password
or an unverifiable certificate is one line, and --prometheus-insecure is the explicit way around."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from promlab import ROOT, BerthMetrics, PromServer, require_prometheus, wait_for  # noqa: E402
from test_security import make_pki  # noqa: E402

from console.sim.fleet import SimFleet  # noqa: E402

PASSWORD = "correct horse battery staple"


def bcrypt_hash(password: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        pytest.skip("no bcrypt hasher (the crypt module left Python 3.13) for Prometheus' basic_auth_users")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    assert hashed and hashed.startswith("$2"), hashed
    return hashed


def status(url: str, *args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BERTH_PROMETHEUS_PASSWORD", None)
    if password is not None:
        env["BERTH_PROMETHEUS_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "console", "status", "--json", "--prometheus", url, *args],
                          check=False, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def read_back(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The node names a successful read printed. Exit 1 with JSON is a read that worked: the simulated
    fleet restarts a container now and then, and one without a CPU sample yet makes the round partial."""
    assert done.returncode in (0, 1) and done.stdout, done.stderr
    assert "berth status: prometheus" not in done.stderr, done.stderr
    return [n["name"] for n in json.loads(done.stdout)["nodes"]]


def test_tls_is_verified_and_basic_auth_is_sent(tmp_path: Path) -> None:
    require_prometheus()
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(json.dumps({
        "tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)},
        "basic_auth_users": {"ops": bcrypt_hash(PASSWORD)},
    }))
    with SimFleet(1, 3, 1, in_process=True, flap=None) as sim:
        exporter = BerthMetrics(sim.inventory_path)
        prom = None
        try:
            prom = PromServer(tmp_path / "prom", [exporter.target], web_config=web, ca=pki.ca,
                              basic=("ops", PASSWORD))
            url = prom.url
            assert url.startswith("https://127.0.0.1:")
            wait_for(lambda: prom.query("berth_node_cpu_usage_cores"), 60, "a complete round scraped")

            # Given the right user and password and the CA that signed the server's certificate
            ok = status(url, "--prometheus-user", "ops", "--prometheus-ca", str(pki.ca))
            assert read_back(ok) == ["sim-01"]

            # the same in the URL's user info (percent-encoded), never echoed back
            inline = url.replace("https://", f"https://ops:{PASSWORD.replace(' ', '%20')}@")
            assert read_back(status(inline, "--prometheus-ca", str(pki.ca), password=None)) == ["sim-01"]

            # Without the CA (system trust only) or with another CA, the certificate is refused
            for args in ((), ("--prometheus-ca", str(pki.other_ca))):
                bad = status(url, "--prometheus-user", "ops", *args)
                assert bad.returncode == 1 and bad.stdout == ""
                assert bad.stderr.startswith(f"berth status: prometheus {url}: ConnectError: ")
                assert "CERTIFICATE_VERIFY_FAILED" in bad.stderr and len(bad.stderr.splitlines()) == 1

            # A wrong password is one line naming the cause, and the password is not in it
            wrong = status(url, "--prometheus-user", "ops", "--prometheus-ca", str(pki.ca), password="guess")
            assert wrong.returncode == 1
            assert wrong.stderr.strip() == (f"berth status: prometheus {url}: 401 Unauthorized "
                                            "(check the token or user and password)")

            # --prometheus-insecure is the explicit way past verification
            assert read_back(status(url, "--prometheus-user", "ops", "--prometheus-insecure")) == ["sim-01"]
        finally:
            if prom is not None:
                prom.close()
            exporter.stop()
