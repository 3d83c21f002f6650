"""Connections to one node: unix socket, tcp, tcp+TLS (mutual TLS as docker does it), ssh tunnel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from console.config import NodeConfig, TLSConfig


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where httpx should send requests for one node."""

    base_url: str
    uds: str | None = None
    # Only https endpoints carry a context (always verifying, see ssl_context). Plain http over a
    # unix socket or an ssh tunnel has no TLS at all, and httpx would otherwise load the system CA
    # store for nothing: ~50 ms per node before the first ping.
    verify: ssl.SSLContext | bool = False


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """Client TLS as the docker CLI does it: verify the daemon against CA (or system roots), present cert/key."""
    ctx = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert:
        ctx.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
    return ctx


def endpoint_for(node: NodeConfig, ssh_socket: str | None = None) -> Endpoint:
    parts = urlsplit(node.url)
    if parts.scheme == "unix":
        return Endpoint(base_url="http://docker", uds=parts.path)
    if parts.scheme == "tcp":
        port = parts.port or (2376 if node.tls else 2375)
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        if node.tls:
            return Endpoint(base_url=f"https://{host}:{port}", verify=ssl_context(node.tls))
        return Endpoint(base_url=f"http://{host}:{port}")
    if parts.scheme == "ssh":
        if ssh_socket is None:
            raise ValueError("ssh:// nodes need a tunnel socket")
        return Endpoint(base_url="http://docker", uds=ssh_socket)
    raise ValueError(f"unsupported scheme {parts.scheme!r}")


def make_client(endpoint: Endpoint, timeout: float, max_connections: int = 64) -> httpx.AsyncClient:
    """One pool per node. Streams (stats, events) hold a connection each, so the pool is generous."""
    transport = httpx.AsyncHTTPTransport(
        uds=endpoint.uds,
        verify=endpoint.verify,
        retries=0,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=16),
    )
    return httpx.AsyncClient(
        transport=transport,
        base_url=endpoint.base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": "berth"},
        follow_redirects=False,
    )


class SSHTunnel:
    """An OpenSSH-forwarded local unix socket to the remote docker socket.

    The user's ssh config, agent and known_hosts apply (we run their `ssh`);
    BatchMode keeps ssh from prompting on the operator's terminal, and
    StrictHostKeyChecking is left to the user's config (default: ask = refuse
    in batch mode), so unknown host keys are never silently accepted.
    """

    def __init__(self, url: str, remote_socket: str = "/var/run/docker.sock") -> None:
        parts = urlsplit(url)
        self.target = parts.hostname or ""
        self.user = parts.username
        self.port = parts.port
        self.remote_socket = parts.path if parts.path not in ("", "/") else remote_socket
        self._dir = tempfile.mkdtemp(prefix="berth-ssh-")
        os.chmod(self._dir, 0o700)
        self.socket = str(Path(self._dir) / "docker.sock")
        self._proc: asyncio.subprocess.Process | None = None
        self.last_error: str = ""

    def command(self) -> list[str]:
        ssh = shutil.which("ssh") or "ssh"
        cmd = [ssh, "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
               "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
               "-o", "StreamLocalBindUnlink=yes",
               "-L", f"{self.socket}:{self.remote_socket}"]
        if self.port:
            cmd += ["-p", str(self.port)]
        cmd.append(f"{self.user}@{self.target}" if self.user else self.target)
        return cmd

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def ensure(self, timeout: float = 10.0) -> None:
        """Start (or restart) ssh and wait until the forwarded socket exists."""
        if self.alive and os.path.exists(self.socket):
            return
        await self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        self._proc = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                err = b""
                if self._proc.stderr:
                    err = await self._proc.stderr.read(2000)
                lines = err.decode(errors="replace").strip().splitlines()
                self.last_error = lines[-1] if lines else f"ssh exited {self._proc.returncode}"
                raise ConnectionError(f"ssh tunnel failed: {self.last_error}")
            if os.path.exists(self.socket):
                return
            await asyncio.sleep(0.05)
        await self.close()
        raise TimeoutError("ssh tunnel did not come up in time")

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()

    def cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
