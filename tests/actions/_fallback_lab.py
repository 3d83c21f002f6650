"""Throwaway dockerd nodes for the action tests, used only while tests/lab/dockerlab.py is absent.

Each node is a real dockerd in a short directory under /tmp, stopped by its own pid.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

IMAGE = "berth/busybox:test"


def build_busybox_tar() -> bytes:
    """A rootfs tarball: /bin/busybox plus one symlink per applet (none named busybox)."""
    bb = shutil.which("busybox")
    if bb is None:
        raise RuntimeError("busybox binary not found")
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "etc", "data", "var"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(bb, arcname="bin/busybox")
        for name in applets:
            if name == "busybox":
                continue
            info = tarfile.TarInfo(f"bin/{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        for name, text in (("etc/passwd", "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
                           ("etc/image-file", "from the image\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Node:
    name: str
    root: Path
    pool: int
    proc: subprocess.Popen | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 30.0) -> None:
        (self.root / "log").parent.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "log", "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--host", self.url, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
             "--bridge=none", "--iptables=false",
             "--default-address-pool", f"base=10.{self.pool}.0.0/16,size=24", *self.extra],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd {self.name} exited: see {self.root / 'log'}")
            try:
                self.client().ping()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"dockerd {self.name} did not answer within {timeout}s")

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=60)

    def kill(self) -> None:
        """SIGKILL this node's dockerd (by its own pid) as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # containerd is the daemon's child: SIGKILL of dockerd leaves it, so stop it by its pid file
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FallbackLab:
    def __init__(self, count: int, base_pool: int = 210) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ba", dir="/tmp"))
        self.nodes = [Node(f"n{i + 1}", self.dir / f"n{i + 1}", base_pool + i) for i in range(count)]
        self._rootfs = build_busybox_tar()

    def start(self) -> FallbackLab:
        for n in self.nodes:
            n.start()
            c = n.client()
            c.api.import_image_from_data(self._rootfs, repository="berth/busybox", tag="test",
                                         changes=['ENV PATH=/bin', 'CMD ["/bin/sh"]'])
            c.close()
        return self

    def close(self) -> None:
        for n in self.nodes:
            n.stop()
        subprocess.run(["umount", "-R", "-l", str(self.dir)], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
