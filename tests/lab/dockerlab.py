"""Real-daemon test lab: each "bare-metal node" is a private `dockerd`.

Integration tests must cross the real Engine API (STYLE.md, practice 8), so the
lab starts its own daemons instead of relying on a system dockerd: every node
gets its own socket, data root, exec root, managed containerd, containerd
namespace and daemon config file under one short temp dir.  Nothing here is
shared with the host's docker (if any) or with another engineer's lab.

Cleanup is by construction, never by process name: a node only ever signals
its own dockerd pid, and processes whose command line names this node's
directory or containerd namespace (its containerd and shims), plus the
container processes below those shims or inside its containers' cgroups.

Typical use::

    with Lab(3) as lab:
        lab.import_image()
        placed = run_standard_workload(lab)
        lab.write_inventory(tmp / "inventory.toml")
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import http.client
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

LAB_API_VERSION = "1.41"
BUSYBOX_REF = "berth/busybox:test"
TENANT_LABEL = "tenant"
# Image config set at import time: without PATH, `sh` is not found in the container.
IMAGE_CHANGES = ("ENV PATH=/bin", 'CMD ["/bin/sh"]')

# dockerd finds containerd, runc and docker-init through PATH; pytest may run
# with a PATH that lacks the sbin directories.
IDLE_COMMAND = ("sleep", "1000000")
BURN_COMMAND = ("sh", "-c", "while :; do :; done")
MEM_COMMAND = ("sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 && sleep 1000000")
EXIT_COMMAND = ("sh", "-c", "exit 3")
# Fast stops, see LabNode.run_container: docker-init as PID 1 plus a short StopTimeout.
FAST_STOP_TIMEOUT = 2

_LAB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BUSYBOX_CANDIDATES = ("/usr/bin/busybox", "/bin/busybox", "/usr/sbin/busybox")
_SHIM_SOCKET_DIR = "/run/containerd/s/"
_MNT_DETACH = 2
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0


class LabError(RuntimeError):
    """The lab could not start, or could not clean up after itself."""


class Placement(NamedTuple):
    """Where a workload container runs: `(node name, container id)`."""

    node: str
    id: str


@dataclass(frozen=True)
class InventoryNode:
    """One `[[node]]` entry of a Berth inventory."""

    name: str
    url: str
    labels: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Availability


def find_busybox() -> Path | None:
    """The first statically linked busybox on this host (it must run in an empty rootfs)."""
    candidates = [shutil.which("busybox", path=_LAB_PATH), *_BUSYBOX_CANDIDATES]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and _is_static_elf(Path(candidate)):
            return Path(candidate)
    return None


def lab_available() -> str | None:
    """Why a lab cannot run here, or None when it can."""
    reasons: list[str] = []
    if not os.path.isdir("/proc") or not os.path.isdir("/sys/fs/cgroup"):
        reasons.append("not a Linux host with /proc and /sys/fs/cgroup")
    if os.geteuid() != 0:
        reasons.append("not root (the lab starts its own dockerd daemons)")
    missing = [b for b in ("dockerd", "containerd", "runc", "docker-init") if not shutil.which(b, path=_LAB_PATH)]
    if missing:
        reasons.append(f"missing {', '.join(missing)} (apt-get install docker.io)")
    if find_busybox() is None:
        reasons.append("no statically linked busybox (apt-get install busybox-static)")
    if importlib.util.find_spec("docker") is None:
        reasons.append("docker SDK not installed (pip install -e '.[test]')")
    return "; ".join(reasons) or None


def _is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a PT_INTERP (dynamic loader) program header."""
    try:
        with path.open("rb") as f:
            header = f.read(64)
            if len(header) < 52 or header[:4] != b"\x7fELF":
                return False
            endian = "<" if header[5] == 1 else ">"
            if header[4] == 2:  # ELFCLASS64
                (phoff,) = struct.unpack_from(endian + "Q", header, 32)
                phentsize, phnum = struct.unpack_from(endian + "HH", header, 54)
            else:
                (phoff,) = struct.unpack_from(endian + "I", header, 28)
                phentsize, phnum = struct.unpack_from(endian + "HH", header, 42)
            f.seek(phoff)
            for _ in range(phnum):
                (p_type,) = struct.unpack_from(endian + "I", f.read(phentsize), 0)
                if p_type == 3:  # PT_INTERP
                    return False
            return True
    except (OSError, struct.error):
        return False


# --------------------------------------------------------------------------
# Test image


def build_busybox_tar(path: Path | str, busybox: Path | str | None = None) -> Path:
    """Write a rootfs tarball: static /bin/busybox, one symlink per applet, the usual empty dirs.

    The `busybox` applet itself is skipped: a `bin/busybox -> busybox` link
    would replace the binary.
    """
    binary = Path(busybox) if busybox else find_busybox()
    if binary is None:
        raise LabError("no statically linked busybox found (apt-get install busybox-static)")
    listed = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True, timeout=30)
    applets = sorted({a for a in listed.stdout.split() if a and a != "busybox" and "/" not in a})
    if "sh" not in applets:
        raise LabError(f"{binary} has no sh applet")

    out = Path(path)
    with tarfile.open(out, "w") as tar:
        for name, mode in (
            ("bin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("dev", 0o755),
            ("dev/shm", 0o1777),
            ("proc", 0o555),
            ("sys", 0o555),
            ("root", 0o700),
        ):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, _BytesReader(data))
        tar.add(str(binary), arcname="bin/busybox", recursive=False, filter=_root_owned)
        for applet in applets:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    return out


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755
    return info


class _BytesReader:
    """Minimal file object for `TarFile.addfile` (avoids io.BytesIO typing noise)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def transfer_image(src: LabNode, dst: LabNode, ref: str = BUSYBOX_REF) -> None:
    """Copy an image between nodes with save/load (there is no registry in the lab)."""
    with closing(src.client()) as source, closing(dst.client()) as target:
        # GET /images/{ref}/get keeps the repo:tag in the archive, so load re-tags it.
        data = b"".join(source.api.get_image(ref))
        target.images.load(data)
        target.images.get(ref)


# --------------------------------------------------------------------------
# One node


class LabNode:
    """One bare-metal node: a private dockerd with its own dirs and containerd."""

    def __init__(
        self,
        name: str,
        dir: Path | str,
        *,
        labels: Mapping[str, str] | None = None,
        live_restore: bool = False,
    ) -> None:
        self.name = name
        self.dir = Path(dir)
        self.sock = self.dir / "docker.sock"
        self.url = f"unix://{self.sock}"
        self.labels: dict[str, str] = dict(labels or {})
        self.live_restore = live_restore
        self.log_path = self.dir / "dockerd.log"
        self.pidfile = self.dir / "docker.pid"
        # Unique per node: dockerd would share /run/containerd/containerd.sock if a
        # system containerd runs; distinct namespaces keep nodes apart even then.
        self.containerd_namespace = "berth-" + hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        if len(str(self.sock)) > 100:
            raise LabError(f"{name}: {self.sock} is too long for a unix socket path")
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LabNode({self.name!r}, {str(self.dir)!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        """The dockerd pid while it runs (also while frozen), else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def frozen(self) -> bool:
        return self._frozen and self.running

    def command(self) -> list[str]:
        d = self.dir
        cmd = [
            "dockerd",
            "--host", self.url,
            "--data-root", str(d / "data"),
            "--exec-root", str(d / "exec"),
            "--pidfile", str(self.pidfile),
            "--config-file", str(d / "daemon.json"),
            "--containerd-namespace", self.containerd_namespace,
            "--containerd-plugins-namespace", self.containerd_namespace + "-plugins",
            "--bridge=none",
            "--iptables=false",
            "--log-level=warn",
        ]  # fmt: skip
        if self.live_restore:
            cmd.append("--live-restore")
        return cmd

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start dockerd and wait until `/_ping` answers."""
        with self._lock:
            if self.running:
                raise LabError(f"{self.name}: dockerd already running (pid {self.pid})")
            self.dir.mkdir(parents=True, exist_ok=True)
            self._clear_stale_pidfiles()
            # An explicit config file keeps the host's /etc/docker/daemon.json out.
            # The daemon ID (GET /info "ID") derives from the trust key: with the
            # default /etc/docker/key.json every lab node would report the same ID.
            config = {"deprecated-key-path": str(self.dir / "key.json")}
            (self.dir / "daemon.json").write_text(json.dumps(config, indent=2) + "\n")
            env = {**os.environ, "PATH": _LAB_PATH}
            for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
                env.pop(var, None)
            with self.log_path.open("ab") as logfile:
                self._proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.dir,
                    # Own session: a Ctrl-C to pytest must not hit the daemons before cleanup runs.
                    start_new_session=True,
                )
            self._frozen = False
            proc = self._proc

        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise LabError(f"{self.name}: dockerd exited with {proc.returncode} while starting\n{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=_STOP_TIMEOUT)
                raise LabError(f"{self.name}: /_ping did not answer within {timeout:.0f} s\n{self.log_tail()}")
            if self.ping(timeout=min(2.0, remaining)) is not None:
                return
            time.sleep(0.05)

    def ping(self, timeout: float = 2.0) -> str | None:
        """The API-Version header of `GET /_ping`, or None when the node does not answer in time."""
        conn = _UnixHTTPConnection(str(self.sock), timeout)
        try:
            conn.request("GET", "/_ping")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                return None
            return response.getheader("API-Version") or ""
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def kill(self) -> None:
        """SIGKILL dockerd (its own pid only); its containerd dies with it, shims survive."""
        proc = self._require_proc("kill")
        containerd_pid = _read_int(self._containerd_pidfile())
        self._signal(signal.SIGKILL)
        proc.wait(timeout=_STOP_TIMEOUT)
        self._frozen = False
        if containerd_pid is not None:
            # dockerd starts containerd with a parent-death signal; let it land so
            # callers observe a fully dead node, not a half-dead one.
            _wait_until(lambda: not _alive(containerd_pid), timeout=5)

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM dockerd and wait for a clean shutdown; SIGKILL if it takes longer than timeout."""
        proc = self._require_proc("stop")
        if self._frozen:
            self.thaw()
        self._signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s: dockerd ignored SIGTERM for %.0f s, killing it", self.name, timeout)
            self._signal(signal.SIGKILL)
            proc.wait(timeout=_STOP_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP dockerd: the socket still accepts connections but nothing answers."""
        proc = self._require_proc("freeze")
        self._signal(signal.SIGSTOP)
        self._frozen = True
        # kill() returns before the group stop reaches every thread; a thread still
        # running could answer one more request.  Wait until all of them are stopped.
        if not _wait_until(lambda: _all_threads_stopped(proc.pid), timeout=10):
            raise LabError(f"{self.name}: dockerd did not stop on SIGSTOP within 10 s")

    def thaw(self) -> None:
        self._require_proc("thaw")
        self._signal(signal.SIGCONT)
        self._frozen = False

    def restart(self, *, hard: bool = False, timeout: float = _START_TIMEOUT) -> None:
        """Stop (or SIGKILL with hard=True) and start again on the same dirs."""
        if self.running:
            if hard:
                self.kill()
            else:
                self.stop()
        self.start(timeout=timeout)

    def client(self, timeout: float = 30.0) -> docker.DockerClient:
        """A docker SDK client pinned to API 1.41 (caller closes it)."""
        import docker

        return docker.DockerClient(base_url=self.url, version=LAB_API_VERSION, timeout=timeout)

    def import_image(self, tar: Path | str, ref: str = BUSYBOX_REF) -> str:
        """`POST /images/create?fromSrc=-` with PATH and CMD set; returns the image id."""
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(ref)
        with closing(self.client(timeout=120)) as client:
            output = client.api.import_image(
                src=str(tar), repository=repository, tag=tag or "latest", changes=list(IMAGE_CHANGES)
            )
            if '"error"' in str(output):
                raise LabError(f"{self.name}: import of {ref} failed: {output}")
            image_id: str = client.images.get(ref).id
            return image_id

    def run_container(
        self,
        name: str,
        command: Sequence[str] = IDLE_COMMAND,
        *,
        tenant: str | None = None,
        labels: Mapping[str, str] | None = None,
        image: str = BUSYBOX_REF,
        init: bool = True,
        stop_timeout: int = FAST_STOP_TIMEOUT,
        **host_config: Any,
    ) -> str:
        """Create and start a detached container the lab way; returns its id.

        Busybox `sleep` or `sh` as PID 1 ignore SIGTERM, so every `docker stop`,
        daemon shutdown and kill-on-restore would wait out the default 10 s.
        init=True makes docker-init (tini) PID 1 and it forwards SIGTERM; the
        short StopTimeout bounds the rare case where SIGTERM lands before tini
        installs its handlers and the kernel drops it (PID 1 without a handler).
        host_config takes `create_host_config` arguments (mem_limit, nano_cpus, shm_size...).
        """
        all_labels = dict(labels or {})
        if tenant is not None:
            all_labels[TENANT_LABEL] = tenant
        with closing(self.client()) as client:
            api = client.api
            created = api.create_container(
                image,
                list(command),
                name=name,
                labels=all_labels,
                stop_timeout=stop_timeout,
                host_config=api.create_host_config(init=init, **host_config),
            )
            container_id: str = created["Id"]
            api.start(container_id)
            return container_id

    def inventory_entry(self) -> InventoryNode:
        return InventoryNode(self.name, self.url, dict(self.labels))

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no dockerd log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def destroy(self) -> None:
        """Remove every trace of this node: containers, processes, mounts, cgroups, files.

        Each step is best-effort so that one failure does not leave the rest
        behind; the final check raises LabError if anything survived.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._signal(signal.SIGCONT)
                self._frozen = False
                self._remove_containers()
                self._terminate_dockerd()
            self._remove_bridges()
            container_ids = self._container_ids()
            self._kill_leftovers(container_ids)
            self._remove_cgroups(container_ids)
            self._unmount_all()
            # rm -rf descends into mount points: never run it while anything is still mounted.
            if self.dir.exists() and not _mounts_under(self.dir):
                shutil.rmtree(self.dir, onerror=_log_rmtree_error)
            self._verify_gone(container_ids)

    # -- internals ----------------------------------------------------------

    def _require_proc(self, verb: str) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise LabError(f"{self.name}: cannot {verb}, dockerd is not running")
        return self._proc

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def _clear_stale_pidfiles(self) -> None:
        """Drop pidfiles left by a killed dockerd or containerd.

        dockerd refuses to start while its pidfile names a live process, and
        adopts the containerd named in containerd.pid while that pid exists.
        Both checks are kill(pid, 0), which a zombie passes: here PID 1 reaps
        orphans (the dead containerd) only after a second or two, so a restart
        right after kill() would wait forever for a dead containerd.  A pid
        counts as ours only if it is alive and its command line names this node.
        """
        owned = set(_matching_pids(self._owns))
        dockerd_pid = _read_int(self.pidfile)
        if dockerd_pid and dockerd_pid in owned:
            raise LabError(f"{self.name}: a dockerd for {self.dir} already runs as pid {dockerd_pid}")
        self.pidfile.unlink(missing_ok=True)
        containerd_pidfile = self._containerd_pidfile()
        containerd_pid = _read_int(containerd_pidfile)
        if containerd_pid is not None and containerd_pid not in owned:
            containerd_pidfile.unlink(missing_ok=True)

    def _containerd_pidfile(self) -> Path:
        return self.dir / "exec" / "containerd" / "containerd.pid"

    def _owns(self, argv: list[str]) -> bool:
        """True when a command line belongs to this node (its dir or containerd namespace)."""
        prefix = str(self.dir) + "/"
        for i, arg in enumerate(argv):
            if prefix in arg or arg == str(self.dir):
                return True
            if arg == "-namespace" and i + 1 < len(argv) and argv[i + 1] == self.containerd_namespace:
                return True
        return False

    def _remove_bridges(self) -> None:
        """Delete the host bridge interfaces of this node's user-defined networks.

        dockerd keeps `br-<id>` interfaces across its own shutdown (and a killed daemon
        cannot remove them), so every lab that made a network would leak bridges, and
        their routes: after ~30, new daemons find no free address pool ("could not find
        an available, non-overlapping IPv4 address pool"). The network ids are read
        from this node's own network store, so no other node's bridges are touched.
        """
        store = self.dir / "data" / "network" / "files" / "local-kv.db"
        try:
            raw = store.read_bytes()
        except OSError:
            return
        for net_id in sorted(set(re.findall(rb"docker/network/v1\.0/network/([0-9a-f]{64})", raw))):
            bridge = "br-" + net_id[:12].decode()
            if Path("/sys/class/net", bridge).exists():
                subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)

    def _remove_containers(self) -> None:
        try:
            with closing(self.client(timeout=20)) as client:
                for container in client.api.containers(all=True, quiet=True):
                    client.api.remove_container(container["Id"], force=True, v=True)
        except Exception as exc:  # noqa: BLE001 - cleanup goes on; _verify_gone judges the result
            log.warning("%s: removing containers through the API failed: %s", self.name, exc)

    def _terminate_dockerd(self) -> None:
        assert self._proc is not None
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log.warning("%s: dockerd did not exit on SIGTERM, killing it", self.name)
            self._signal(signal.SIGKILL)
            self._proc.wait(timeout=_STOP_TIMEOUT)

    def _container_ids(self) -> list[str]:
        containers = self.dir / "data" / "containers"
        try:
            return [p.name for p in containers.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)]
        except OSError:
            return []

    def _container_cgroups(self, container_ids: Iterable[str]) -> list[Path]:
        found: list[Path] = []
        for mount in _cgroup_mounts():
            for cid in container_ids:
                path = mount / "docker" / cid
                if path.is_dir():
                    found.append(path)
        return found

    def _kill_leftovers(self, container_ids: list[str]) -> None:
        """SIGKILL what dockerd left behind: container processes, shims, containerd."""
        cgroups = self._container_cgroups(container_ids)
        for cgroup in cgroups:
            state = cgroup / "freezer.state"
            if state.exists():  # a paused container ignores SIGKILL until thawed
                _write_quietly(state, "THAWED")
        owned = _matching_pids(self._owns)
        shim_sockets = _unix_socket_paths(owned, prefix=_SHIM_SOCKET_DIR)
        victims: list[int] = []
        for cgroup in cgroups:
            victims.extend(_read_pids(cgroup / "cgroup.procs"))
        # Container processes outlive a SIGKILLed shim; kill them through the shim's process tree.
        shims = [pid for pid in owned if (argv := _proc_argv(pid)) and "containerd-shim" in os.path.basename(argv[0])]
        victims.extend(_descendants(shims))
        victims.extend(owned)  # containerd (--config DIR/exec/...), shims (-address DIR/...), a stray dockerd
        for pid in dict.fromkeys(victims):
            if pid != os.getpid():
                _kill_quietly(pid)
        _wait_until(lambda: not any(_alive(p) for p in victims), timeout=10)
        for path in shim_sockets:
            Path(path).unlink(missing_ok=True)

    def _remove_cgroups(self, container_ids: list[str]) -> None:
        for cgroup in self._container_cgroups(container_ids):
            try:
                cgroup.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("%s: cannot remove cgroup %s: %s", self.name, cgroup, exc)

    def _unmount_all(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        for _ in range(10):
            mounts = _mounts_under(self.dir)
            if not mounts:
                return
            for mountpoint in mounts:
                target = mountpoint.encode()
                if libc.umount2(target, 0) != 0 and libc.umount2(target, _MNT_DETACH) != 0:
                    err = ctypes.get_errno()
                    log.warning("%s: umount %s failed: %s", self.name, mountpoint, os.strerror(err))

    def _verify_gone(self, container_ids: list[str]) -> None:
        leftovers: list[str] = []
        pids = _matching_pids(self._owns)
        if pids:
            leftovers.append(f"processes {pids}")
        cgroups = self._container_cgroups(container_ids)
        if cgroups:
            leftovers.append(f"cgroups {[str(c) for c in cgroups]}")
        mounts = _mounts_under(self.dir)
        if mounts:
            leftovers.append(f"mounts {mounts}")
        if self.dir.exists():
            leftovers.append(f"directory {self.dir}")
        if leftovers:
            raise LabError(f"{self.name}: destroy left behind " + "; ".join(leftovers))


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


# --------------------------------------------------------------------------
# /proc and mount helpers (Linux only)


def _proc_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _matching_pids(predicate: Callable[[list[str]], bool]) -> list[int]:
    me = os.getpid()
    return [pid for pid in _all_pids() if pid != me and (argv := _proc_argv(pid)) and predicate(argv)]


def _descendants(roots: Iterable[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: list[int] = []
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _all_threads_stopped(pid: int) -> bool:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    states = [_thread_state(pid, tid) for tid in tids]
    return bool(states) and all(state in ("T", "t") for state in states)


def _thread_state(pid: int, tid: str) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _kill_quietly(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _write_quietly(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        log.warning("cannot write %s to %s: %s", text, path, exc)


def _unix_socket_paths(pids: Iterable[int], prefix: str) -> list[str]:
    """Filesystem paths (under prefix) of unix sockets held open by these processes."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    paths: list[str] = []
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return paths
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and fields[7].startswith(prefix):
            paths.append(fields[7])
    return sorted(set(paths))


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mountinfo() -> Iterator[tuple[str, str]]:
    """(mount point, filesystem type) in mount order."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            yield _unescape_mountinfo(fields[4]), right.split()[0]


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below root, deepest and most recent first (the order to unmount)."""
    base = str(root)
    found = [(i, mp) for i, (mp, _) in enumerate(_mountinfo()) if mp == base or mp.startswith(base + "/")]
    found.sort(key=lambda item: (item[1].count("/"), item[0]), reverse=True)
    return [mp for _, mp in found]


def _cgroup_mounts() -> list[Path]:
    return [Path(mp) for mp, fstype in _mountinfo() if fstype in ("cgroup", "cgroup2")]


def _log_rmtree_error(function: object, path: str, exc_info: object) -> None:
    log.warning("rm -rf: cannot remove %s (%s)", path, exc_info)


# --------------------------------------------------------------------------
# A lab of nodes


class Lab:
    """N lab nodes (`lab-n1`, `lab-n2`, ...) under one temp dir, started in parallel.

    `close()` destroys everything; an atexit hook backs it up for crashes
    that skip fixture teardown.
    """

    def __init__(self, size: int = 3, *, live_restore: bool = False, prefix: str = "berth-lab-") -> None:
        if size < 1:
            raise ValueError("a lab needs at least one node")
        self.base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.nodes: list[LabNode] = [
            LabNode(f"lab-n{i}", self.base / f"n{i}", labels={"rack": f"r{i}"}, live_restore=live_restore)
            for i in range(1, size + 1)
        ]
        self.workload: dict[str, Placement] = {}
        self._image_tar: Path | None = None
        self._closed = False
        atexit.register(self.close)

    def __repr__(self) -> str:
        return f"Lab({str(self.base)!r}, nodes={[n.name for n in self.nodes]})"

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no lab node {name!r} (have {[n.name for n in self.nodes]})")

    def start(self) -> None:
        """Start every node in parallel; raise the first failure (the caller closes the lab)."""
        _in_parallel(lambda node: node.start(), self.nodes)

    @property
    def image_tar(self) -> Path:
        """The busybox rootfs tarball, built once per lab."""
        if self._image_tar is None:
            self._image_tar = build_busybox_tar(self.base / "busybox.tar")
        return self._image_tar

    def import_image(self, ref: str = BUSYBOX_REF) -> None:
        tar = self.image_tar
        _in_parallel(lambda node: node.import_image(tar, ref), self.nodes)

    def write_inventory(
        self,
        path: Path | str,
        tenancy_label: str = TENANT_LABEL,
        extra_nodes: Iterable[InventoryNode] = (),
        node_settings: Mapping[str, float] | None = None,
    ) -> Path:
        """Write a Berth inventory TOML for the lab nodes (plus extra_nodes, e.g. unreachable ones);
        `node_settings` (e.g. {"stats_idle_interval": 2}) go on every lab node."""
        entries = [node.inventory_entry() for node in self.nodes] + list(extra_nodes)
        lines = [
            f"# Berth inventory for lab {self.base} (generated by tests/lab/dockerlab.py)",
            "[tenancy]",
            f"label = {_toml_str(tenancy_label)}",
        ]
        for entry in entries:
            lines += ["", "[[node]]", f"name = {_toml_str(entry.name)}", f"url = {_toml_str(entry.url)}"]
            lines += [f"{_toml_key(k)} = {v:g}" for k, v in (node_settings or {}).items()]
            if entry.labels:
                pairs = ", ".join(f"{_toml_key(k)} = {_toml_str(v)}" for k, v in entry.labels.items())
                lines.append(f"labels = {{ {pairs} }}")
        out = Path(path)
        out.write_text("\n".join(lines) + "\n")
        return out

    def close(self) -> None:
        """Destroy all nodes and the lab dir; raise LabError listing whatever survived."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors = [f"{node.name}: {exc}" for node, exc in _in_threads(LabNode.destroy, self.nodes)]
        if not _mounts_under(self.base):
            shutil.rmtree(self.base, onerror=_log_rmtree_error)
        if self.base.exists():
            errors.append(f"cannot remove {self.base}")
        if errors:
            raise LabError("lab cleanup incomplete: " + " | ".join(errors))


def _in_threads(work: Callable[[LabNode], object], nodes: list[LabNode]) -> list[tuple[LabNode, Exception]]:
    """Run work(node) for every node in its own thread; return the failures.

    Plain threads rather than concurrent.futures: executors refuse new work
    once the interpreter shuts down, which is exactly when the atexit backstop runs.
    """
    failures: list[tuple[LabNode, Exception]] = []

    def run(node: LabNode) -> None:
        try:
            work(node)
        except Exception as exc:  # noqa: BLE001 - collected and re-raised by the caller
            failures.append((node, exc))

    threads = [threading.Thread(target=run, args=(node,), name=f"lab-{node.name}") for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _in_parallel(work: Callable[[LabNode], object], nodes: list[LabNode]) -> None:
    """Run work(node) for every node concurrently; raise the first failure after all finished."""
    failures = _in_threads(work, nodes)
    if failures:
        node, exc = failures[0]
        raise exc


_TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _TOML_BARE_KEY.fullmatch(key) else _toml_str(key)


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------
# The standard workload


@dataclass(frozen=True)
class _Spec:
    name: str
    node: str
    command: tuple[str, ...]
    tenant: str | None
    mem_limit: str | None = None
    nano_cpus: int | None = None
    shm_size: str | None = None


def standard_workload_specs(node_names: list[str]) -> list[_Spec]:
    """The container layout of `run_standard_workload` (needs at least 2 nodes)."""
    if len(node_names) < 2:
        raise LabError("the standard workload needs at least 2 nodes")
    first, second, last = node_names[0], node_names[1], node_names[-1]
    specs = [
        _Spec("acme-burn", first, BURN_COMMAND, "acme", nano_cpus=500_000_000),
        _Spec("globex-mem", second, MEM_COMMAND, "globex", mem_limit="256m", shm_size="64m"),
    ]
    for node in node_names:
        short = node.removeprefix("lab-")
        specs.append(_Spec(f"initech-{short}-1", node, IDLE_COMMAND, "initech", mem_limit="64m"))
        specs.append(_Spec(f"initech-{short}-2", node, IDLE_COMMAND, "initech"))
    specs.append(_Spec("stray-idle", last, IDLE_COMMAND, None))
    specs.append(_Spec("initech-batch", last, EXIT_COMMAND, "initech"))
    return specs


def run_standard_workload(lab: Lab, image: str = BUSYBOX_REF) -> dict[str, Placement]:
    """Run the three-tenant workload over the lab; returns (and stores in lab.workload) name -> Placement.

    - acme: `acme-burn` on the first node, a busy loop capped at 0.5 core.
    - globex: `globex-mem` on the second node, ~40 MiB held in /dev/shm (shm 64m, limit 256m).
    - initech: two idle containers per node (`initech-nX-1` with a 64m limit,
      `initech-nX-2` unlimited) and `initech-batch`, exited with code 3, on the last node.
    - no tenant label ("unassigned"): `stray-idle` on the last node.

    Returns once every container is in its final state: the burner runs,
    globex-mem has filled its shm, initech-batch has exited.
    """
    specs = standard_workload_specs([n.name for n in lab.nodes])
    placed: dict[str, Placement] = {}
    lock = threading.Lock()

    def run_on(node: LabNode) -> None:
        for spec in (s for s in specs if s.node == node.name):
            limits: dict[str, Any] = {
                "mem_limit": spec.mem_limit,
                "nano_cpus": spec.nano_cpus,
                "shm_size": spec.shm_size,
            }
            container_id = node.run_container(
                spec.name,
                spec.command,
                tenant=spec.tenant,
                image=image,
                **{key: value for key, value in limits.items() if value is not None},
            )
            with lock:
                placed[spec.name] = Placement(node.name, container_id)
            if spec.command == EXIT_COMMAND:
                with closing(node.client()) as client:
                    status = client.api.wait(container_id, timeout=30)["StatusCode"]
                if status != 3:
                    raise LabError(f"{spec.name} exited with {status}, expected 3")
            if spec.command == MEM_COMMAND:
                _wait_for_process(node, container_id, "sleep")

    _in_parallel(run_on, [n for n in lab.nodes if any(s.node == n.name for s in specs)])
    lab.workload = {spec.name: placed[spec.name] for spec in specs}
    return lab.workload


def _wait_for_process(node: LabNode, container_id: str, command: str) -> None:
    """Wait until a process whose command starts with `command` runs in the container."""
    deadline = time.monotonic() + 30
    with closing(node.client()) as client:
        while time.monotonic() < deadline:
            top = client.api.top(container_id)
            column = top["Titles"].index("CMD")
            if any(row[column].split()[:1] == [command] for row in top["Processes"] or []):
                return
            time.sleep(0.1)
    raise LabError(f"{node.name}: no {command!r} process in {container_id[:12]} after 30 s")


def destroy_lab_dir(base: Path | str) -> None:
    """Tear down a lab left behind by a killed test run, given its base dir (no globbing, by design)."""
    root = Path(base)
    if not root.name.startswith("berth-") or root.parent != Path("/tmp"):
        raise LabError(f"{root} does not look like a lab dir (/tmp/berth-*)")
    for node_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        LabNode(f"stale-{node_dir.name}", node_dir).destroy()
    if not _mounts_under(root):
        shutil.rmtree(root)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Destroy labs leaked by a killed test run.")
    parser.add_argument("--destroy", nargs="+", metavar="DIR", required=True, help="lab base dirs, /tmp/berth-lab-*")
    for lab_dir in parser.parse_args().destroy:
        destroy_lab_dir(lab_dir)
        print(f"destroyed {lab_dir}")
