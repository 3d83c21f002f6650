"""TLS and SSH done right, and no secrets in errors.

- A real dockerd on tcp://127.0.0.1:PORT with --tlsverify (mutual TLS, as `dockerd` documents it),
  certificates made here with `cryptography`: the right CA connects; a wrong CA, no CA (system
  roots) and a missing client certificate are refused with a clear TLS reason; the docker CLI's
  DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH convention is honoured.
- ssh:// through a private sshd (own host key, authorized key, known_hosts) whose
  /var/run/docker.sock is a lab daemon's socket: a known host connects; an unknown host key is
  refused and never written to known_hosts.
- Credentials never appear in error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faultkit
import pytest
from dockerlab import Lab, LabNode, build_busybox_tar
from hostile_server import HostileProcess

from console.config import ConfigError, Inventory, NodeConfig, TLSConfig, parse_inventory, resolve_inventory
from console.engine.client import EngineClient
from console.engine.errors import EngineError
from console.fleet.model import FleetSnapshot, NodeState
from console.fleet.poller import Fleet

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402


# -- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False),
                            critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        assert issuer is not None
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(root: Path) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    ca_key, other_key = _key(), _key()
    ca = _cert("berth test CA", ca_key, None, ca_key, ca=True)
    other = _cert("some other CA", other_key, None, other_key, ca=True)
    srv_key, cli_key = _key(), _key()
    srv = _cert("dockerd", srv_key, ca, ca_key, server=True)
    cli = _cert("berth", cli_key, ca, ca_key)
    return Pki(root, _write_cert(ca, root / "ca.pem"), _write_cert(srv, root / "server-cert.pem"),
               _write_key(srv_key, root / "server-key.pem"), _write_cert(cli, root / "cert.pem"),
               _write_key(cli_key, root / "key.pem"), _write_cert(other, root / "other-ca.pem"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TLSNode(LabNode):
    """A lab node that also listens on tcp://127.0.0.1:PORT with --tlsverify (clients need a cert)."""

    def __init__(self, name: str, dir: Path, pki: Pki, port: int) -> None:
        super().__init__(name, dir)
        self.pki = pki
        self.port = port

    def command(self) -> list[str]:
        p = self.pki
        return [*super().command(), "--host", f"tcp://127.0.0.1:{self.port}", "--tlsverify",
                "--tlscacert", str(p.ca), "--tlscert", str(p.server_cert), "--tlskey", str(p.server_key)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_node(pki: Pki) -> Iterator[TLSNode]:
    faultkit.require_lab()
    base = Path(__import__("tempfile").mkdtemp(prefix="berth-lab-", dir="/tmp"))
    node = TLSNode("tls-n1", base / "n1", pki, free_port())
    try:
        node.start()
        yield node
    finally:
        node.destroy()
        shutil.rmtree(base, ignore_errors=True)


def tls_inventory(node: TLSNode, tls: str) -> Inventory:
    return parse_inventory(f'[[node]]\nname = "tls"\nurl = "tcp://127.0.0.1:{node.port}"\n[node.tls]\n{tls}\n')


async def settle(inv: Inventory, name: str, timeout: float = 15.0) -> FleetSnapshot:
    """Run a Fleet until the node leaves 'connecting' (up or down), and a bit longer if it is down,
    so a late success would be seen."""
    async with Fleet(inv) as fleet:
        snap = await faultkit.wait_for(fleet, lambda s: faultkit.state(s, name) is not NodeState.CONNECTING,
                                       timeout, f"{name} connects or fails")
        if faultkit.state(snap, name) is NodeState.DOWN:
            await asyncio.sleep(1.5)  # covers the supervisor's first retries
            snap = fleet.publish()
        return snap


# -- TLS -------------------------------------------------------------------------------------

@pytest.mark.lab
async def test_tls_with_the_right_ca_and_a_client_certificate_connects(tls_node: TLSNode, pki: Pki) -> None:
    inv = tls_inventory(tls_node, f'ca = "{pki.ca}"\ncert = "{pki.client_cert}"\nkey = "{pki.client_key}"')
    snap = await settle(inv, "tls")
    node = snap.node("tls")
    assert node is not None and node.state is NodeState.UP, node
    assert node.api_version and node.engine_version


@pytest.mark.lab
async def test_stats_samples_arrive_over_mutual_tls(tls_node: TLSNode, pki: Pki, tmp_path: Path) -> None:
    """The lean stats reader makes its own connections and TLS handshakes (not httpx's): a busy
    container on the TLS node is sampled over verified mutual TLS, with the CPU figure it burns."""
    tls_node.import_image(build_busybox_tar(tmp_path / "busybox.tar"))
    cid = tls_node.run_container("tls-burner", ["sh", "-c", "while :; do :; done"], nano_cpus=500_000_000)
    inv = tls_inventory(tls_node, f'ca = "{pki.ca}"\ncert = "{pki.client_cert}"\nkey = "{pki.client_key}"')
    try:
        async with Fleet(inv) as fleet:
            # a handshake per one-shot read costs more than it saves: no idle cadence
            assert all(not w.idle_interval for w in fleet.watchers)
            snap = await faultkit.wait_for(
                fleet, lambda s: (c := faultkit.container(s, cid)) is not None and (c.cpu_percent or 0) > 20,
                20.0, "the burner sampled over TLS")
            c = faultkit.container(snap, cid)
            assert c is not None and c.cpu_percent is not None and 20 < c.cpu_percent < 80, c
            assert c.mem_used, c
            # inspects went over httpx's verified pool, not the plain keep-alive pool
            assert all(w.client._pool is None for w in fleet.watchers)
    finally:
        with contextlib.closing(tls_node.client()) as client:
            client.api.remove_container(cid, force=True)


@pytest.mark.lab
async def test_tls_with_a_wrong_ca_is_refused_with_a_certificate_error(tls_node: TLSNode, pki: Pki) -> None:
    inv = tls_inventory(tls_node, f'ca = "{pki.other_ca}"\ncert = "{pki.client_cert}"\nkey = "{pki.client_key}"')
    node = (await settle(inv, "tls")).node("tls")
    assert node is not None and node.state is NodeState.DOWN
    assert f"TLS: the daemon's certificate is not signed by the CA in {pki.other_ca}" in (node.error or "")
    assert "certificate verify failed" in (node.error or "")


@pytest.mark.lab
async def test_tls_verifies_by_default_against_system_roots(tls_node: TLSNode, pki: Pki) -> None:
    """No `ca`: the daemon's certificate must chain to the system roots, which ours does not."""
    inv = tls_inventory(tls_node, f'cert = "{pki.client_cert}"\nkey = "{pki.client_key}"')
    node = (await settle(inv, "tls")).node("tls")
    assert node is not None and node.state is NodeState.DOWN
    assert "TLS: the daemon's certificate does not chain to the system CAs" in (node.error or "")


@pytest.mark.lab
async def test_mutual_tls_without_a_client_certificate_is_refused_with_a_clear_reason(tls_node: TLSNode,
                                                                                    pki: Pki) -> None:
    inv = tls_inventory(tls_node, f'ca = "{pki.ca}"')
    node = (await settle(inv, "tls")).node("tls")
    assert node is not None and node.state is NodeState.DOWN
    assert "TLS: the daemon refused our client certificate (none is configured" in (node.error or ""), node.error


async def test_tls_to_a_plain_http_port_says_the_port_does_not_speak_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with HostileProcess({"plain": "ok"}) as servers:
        inv = parse_inventory(f'[[node]]\nname = "plain"\nurl = "{servers.url("plain")}"\n'
                              f'[node.tls]\nca = "{pki.ca}"\ncert = "{pki.client_cert}"\nkey = "{pki.client_key}"\n')
        node = (await settle(inv, "plain")).node("plain")
    assert node is not None and node.state is NodeState.DOWN
    assert "TLS: the daemon does not speak TLS on this port" in (node.error or ""), node.error


@pytest.mark.lab
async def test_docker_cert_path_convention_is_honoured(tls_node: TLSNode, pki: Pki, tmp_path: Path) -> None:
    """DOCKER_HOST=tcp://127.0.0.1:PORT DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=dir with ca.pem, cert.pem, key.pem."""
    certs = tmp_path / "certs"
    certs.mkdir()
    for src, dst in ((pki.ca, "ca.pem"), (pki.client_cert, "cert.pem"), (pki.client_key, "key.pem")):
        shutil.copy(src, certs / dst)
    env = {"DOCKER_HOST": f"tcp://127.0.0.1:{tls_node.port}", "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": str(certs)}
    inv = resolve_inventory(None, env=env, home=tmp_path)
    (cfg,) = inv.nodes
    assert cfg.tls is not None and cfg.tls.verify and cfg.tls.ca == certs / "ca.pem"
    assert cfg.tls.cert == certs / "cert.pem" and cfg.tls.key == certs / "key.pem"
    node = (await settle(inv, cfg.name)).node(cfg.name)
    assert node is not None and node.state is NodeState.UP, node


def test_plain_tcp_to_a_non_loopback_address_needs_insecure() -> None:
    with pytest.raises(ConfigError, match="plain-text tcp to a non-loopback host"):
        parse_inventory('[[node]]\nname = "n"\nurl = "tcp://10.0.0.5:2375"\n')
    inv = parse_inventory('[[node]]\nname = "n"\nurl = "tcp://10.0.0.5:2375"\ninsecure = true\n')
    assert inv.nodes[0].insecure and inv.nodes[0].tls is None
    for loopback in ("127.0.0.1", "localhost", "[::1]"):
        inv = parse_inventory(f'[[node]]\nname = "n"\nurl = "tcp://{loopback}:2375"\n')
        assert not inv.nodes[0].insecure


def test_plain_tcp_from_docker_host_to_a_remote_address_is_marked_insecure(tmp_path: Path) -> None:
    """The docker CLI speaks plain tcp when told to; Berth follows but marks the node insecure."""
    inv = resolve_inventory(None, env={"DOCKER_HOST": "tcp://10.0.0.5:2375"}, home=tmp_path)
    assert inv.nodes[0].insecure and inv.nodes[0].tls is None


# -- SSH -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshSetup:
    port: int
    client_config: Path
    known_hosts: Path
    host_key_pub: str
    bin_dir: Path  # holds an `ssh` wrapper that applies client_config


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "berth-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SshSetup, Lab]]:
    """A private sshd on 127.0.0.1:PORT, in its own mount namespace where /run/docker.sock (and so
    /var/run/docker.sock, the socket `ssh://` forwards to) is a lab daemon's socket."""
    faultkit.require_lab("/usr/sbin/sshd", "ssh", "ssh-keygen", "unshare")
    d = tmp_path_factory.mktemp("ssh")
    d.chmod(0o700)
    _keygen(d / "host_key")
    _keygen(d / "id_berth")
    (d / "authorized_keys").write_text((d / "id_berth.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", f"HostKey {d / 'host_key'}", f"AuthorizedKeysFile {d / 'authorized_keys'}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", "PidFile none", "AllowStreamLocalForwarding local",
        "AllowTcpForwarding local", "X11Forwarding no", "PermitTTY no", "LogLevel VERBOSE", ""]))
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {(d / 'host_key.pub').read_text().split(' berth')[0]}\n")
    (d / "ssh_config").write_text("\n".join([
        "Host 127.0.0.1", f"  IdentityFile {d / 'id_berth'}", "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {d / 'known_hosts'}", "  GlobalKnownHostsFile /dev/null", "  UpdateHostKeys no",
        "  ConnectTimeout 5", ""]))
    # OpenSSH reads ~/.ssh/config from the passwd home, not $HOME: a wrapper on PATH applies ours,
    # as an operator's own config would apply (Berth runs whatever `ssh` is first on PATH).
    bin_dir = d / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {d / "ssh_config"} "$@"\n')
    wrapper.chmod(0o755)

    lab = Lab(1)
    proc: subprocess.Popen[bytes] | None = None
    try:
        lab.start()
        sock = lab.nodes[0].sock
        script = (f"mount -t tmpfs -o mode=755 berth-run /run && mkdir -m 755 /run/sshd && "
                  f"touch /run/docker.sock && mount --bind {sock} /run/docker.sock && "
                  f"exec /usr/sbin/sshd -D -e -f {d / 'sshd_config'}")
        log = (d / "sshd.log").open("wb")
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield SshSetup(port, d / "ssh_config", d / "known_hosts", (d / "host_key.pub").read_text(), bin_dir), lab
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        lab.close()


def ssh_inventory(setup: SshSetup) -> Inventory:
    return parse_inventory(f'[[node]]\nname = "viassh"\nurl = "ssh://root@127.0.0.1:{setup.port}"\n')


@pytest.mark.lab
async def test_ssh_to_a_known_host_forwards_to_its_docker_socket(sshd: tuple[SshSetup, Lab],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    setup, lab = sshd
    monkeypatch.setenv("PATH", f"{setup.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    snap = await settle(ssh_inventory(setup), "viassh", timeout=25)
    node = snap.node("viassh")
    assert node is not None and node.state is NodeState.UP, node
    info = lab.nodes[0].client().info()
    assert node.engine_version == info["ServerVersion"]
    assert node.cpus == info["NCPU"]


@pytest.mark.lab
async def test_ssh_refuses_an_unknown_host_key_and_does_not_learn_it(sshd: tuple[SshSetup, Lab],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    setup, _ = sshd
    before = setup.known_hosts.read_text()
    monkeypatch.setenv("PATH", f"{setup.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    setup.known_hosts.write_text("")  # nothing known: the key must not be accepted silently
    try:
        snap = await settle(ssh_inventory(setup), "viassh", timeout=25)
        after = setup.known_hosts.read_text()
    finally:
        setup.known_hosts.write_text(before)
    node = snap.node("viassh")
    assert node is not None and node.state is NodeState.DOWN
    assert "Host key verification failed" in (node.error or ""), node.error
    assert after == "", "the unknown host key was written to known_hosts"


@pytest.mark.lab
async def test_ssh_refuses_a_changed_host_key(sshd: tuple[SshSetup, Lab], monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    setup, _ = sshd
    before = setup.known_hosts.read_text()
    _keygen(tmp_path / "impostor")
    impostor = (tmp_path / "impostor.pub").read_text().split(" berth")[0]
    monkeypatch.setenv("PATH", f"{setup.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    setup.known_hosts.write_text(f"[127.0.0.1]:{setup.port} {impostor}\n")
    try:
        snap = await settle(ssh_inventory(setup), "viassh", timeout=25)
    finally:
        setup.known_hosts.write_text(before)
    node = snap.node("viassh")
    assert node is not None and node.state is NodeState.DOWN
    assert "Host key verification failed" in (node.error or ""), node.error


# -- secrets ----------------------------------------------------------------------------------

SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize("url", [f"ssh://admin:{SECRET}@10.0.0.1", f"tcp://admin:{SECRET}@10.0.0.1:2376"])
def test_a_password_in_an_inventory_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_inventory(f'[[node]]\nname = "n"\nurl = "{url}"\n')
    assert SECRET not in str(err.value)
    assert "admin:***@10.0.0.1" in str(err.value)


def test_a_password_in_docker_host_is_refused_without_repeating_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_inventory(None, env={"DOCKER_HOST": f"ssh://admin:{SECRET}@10.0.0.1"}, home=tmp_path)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("url", [f"tcp://admin:{SECRET}@127.0.0.1:{{port}}", f"ssh://admin:{SECRET}@127.0.0.1:{{port}}"])
async def test_engine_errors_never_carry_url_credentials(url: str, caplog: pytest.LogCaptureFixture,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NodeConfig built in code (bypassing the inventory's refusal) with user:password@ in its url:
    whatever fails, the error text and the logs do not contain the password."""
    port = free_port()  # nothing listens there
    (tmp_path / "ssh_config").write_text("Host *\n  ConnectTimeout 3\n  UserKnownHostsFile /dev/null\n")
    wrapper = tmp_path / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh") or "ssh"} -F {tmp_path / "ssh_config"} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    caplog.set_level(logging.DEBUG)
    cfg = NodeConfig("leaky", url.format(port=port), timeout=3.0)
    client = EngineClient(cfg)
    try:
        with pytest.raises(EngineError) as err:
            await client.ping()
    finally:
        await client.aclose()
    assert SECRET not in str(err.value) and SECRET not in err.value.message
    inv = Inventory((cfg,))
    node = (await settle(inv, "leaky")).node("leaky")
    assert node is not None and node.state is NodeState.DOWN
    assert SECRET not in (node.error or "")
    assert SECRET not in caplog.text


def test_tls_key_material_is_not_echoed_in_errors(tmp_path: Path) -> None:
    """A key that does not match its certificate: the error names the files, never their content."""
    pki = make_pki(tmp_path / "pki")
    _write_key(_key(), tmp_path / "wrong-key.pem")
    secret_line = (tmp_path / "wrong-key.pem").read_text().splitlines()[1]
    cfg = NodeConfig("tls", "tcp://127.0.0.1:2376", tls=TLSConfig(pki.ca, pki.client_cert, tmp_path / "wrong-key.pem"))

    async def connect() -> EngineError:
        client = EngineClient(cfg)
        try:
            with pytest.raises(EngineError) as err:
                await client.ping()
            return err.value
        finally:
            await client.aclose()

    err = asyncio.run(connect())
    assert secret_line not in str(err)
    assert "key" in str(err).lower()
