"""A Podman lab node: Debian's podman serving its Docker-compatible API, beside the dockerd nodes.

Bare-metal fleets run Podman's `podman system service` as well as dockerd, so Berth is tested
against it as a second real engine.  Each node is one `podman system service` with everything
of its own under one directory: `--root`, `--runroot`, `--tmpdir`, a private containers.conf
(`CONTAINERS_CONF`) with the events log, network config dir and default ulimits, vfs storage.
What these machines need, as found:

* `--cgroup-manager cgroupfs` (no systemd here);
* `default_ulimits` for nofile and nproc at or below the hard limits: Podman's own defaults
  (nofile 1048576) are refused with "error setting rlimit type 7";
* `catatonit` for `--init` (Podman's compat API ignores containers.conf `init_path`).

Containers run with NetworkMode "none": the dockerd lab nodes run `--bridge=none`, and Podman's
compat API would otherwise put every container on its `podman0` bridge with host NAT rules.

Cleanup is by construction, as in dockerlab: the node signals its own service pid only, then
processes whose command line names its directory (conmon) and their descendants (containers).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import closing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockerlab import (
    _LAB_PATH,
    _STOP_TIMEOUT,
    BUSYBOX_REF,
    FAST_STOP_TIMEOUT,
    IDLE_COMMAND,
    IMAGE_CHANGES,
    LAB_API_VERSION,
    TENANT_LABEL,
    InventoryNode,
    Lab,
    LabError,
    LabNode,
    _alive,
    _cgroup_mounts,
    _descendants,
    _kill_quietly,
    _log_rmtree_error,
    _matching_pids,
    _mounts_under,
    _UnixHTTPConnection,
    _wait_until,
    _write_quietly,
)

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

_START_TIMEOUT = 30.0
_CATATONIT = "/usr/libexec/podman/catatonit"
# Well under any sane hard limit and plenty for a test container.
_ULIMIT_CAP = 4096


def podman_available() -> str | None:
    """Why a Podman node cannot run here, or None when it can."""
    reasons: list[str] = []
    if os.geteuid() != 0:
        reasons.append("not root (Podman lab nodes run rootful)")
    missing = [b for b in ("podman", "conmon", "runc") if not shutil.which(b, path=_LAB_PATH)]
    if missing:
        reasons.append(f"missing {', '.join(missing)} (apt-get install podman)")
    if not os.path.exists(_CATATONIT):
        reasons.append(f"missing {_CATATONIT} (apt-get install catatonit)")
    return "; ".join(reasons) or None


def default_ulimits() -> list[str]:
    """nofile and nproc for containers, at or below this machine's hard limits."""
    out = []
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(which)[1]
        value = _ULIMIT_CAP if hard == resource.RLIM_INFINITY else min(hard, _ULIMIT_CAP)
        out.append(f"{name}={value}:{value}")
    return out


class PodmanNode:
    """One bare-metal node running `podman system service` on a private unix socket."""

    engine = "podman"

    def __init__(self, name: str, dir: Path | str, *, labels: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.dir = Path(dir)
        self.sock = self.dir / "podman.sock"
        self.url = f"unix://{self.sock}"
        self.labels: dict[str, str] = dict(labels or {})
        self.log_path = self.dir / "podman.log"
        self.conf_path = self.dir / "containers.conf"
        if len(str(self.sock)) > 100:
            raise LabError(f"{name}: {self.sock} is too long for a unix socket path")
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PodmanNode({self.name!r}, {str(self.dir)!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def podman_args(self) -> list[str]:
        d = self.dir
        return [
            "podman",
            "--root", str(d / "root"),
            "--runroot", str(d / "run"),
            "--tmpdir", str(d / "tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip

    def command(self) -> list[str]:
        return [*self.podman_args(), "system", "service", "--time=0", self.url]

    def _write_conf(self) -> None:
        d = self.dir
        ulimits = ", ".join(json.dumps(u) for u in default_ulimits())
        self.conf_path.write_text(
            "[containers]\n"
            f"default_ulimits = [{ulimits}]\n"
            'netns = "none"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f"events_logfile_path = {json.dumps(str(d / 'events.log'))}\n"
            f"tmp_dir = {json.dumps(str(d / 'tmp'))}\n"
            "[network]\n"
            f"network_config_dir = {json.dumps(str(d / 'networks'))}\n"
        )

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PATH": _LAB_PATH, "CONTAINERS_CONF": str(self.conf_path)}
        for var in ("DOCKER_HOST", "CONTAINER_HOST", "CONTAINER_CONNECTION"):
            env.pop(var, None)
        return env

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        with self._lock:
            if self.running:
                raise LabError(f"{self.name}: podman service already running (pid {self.pid})")
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "networks").mkdir(exist_ok=True)
            self._write_conf()
            self.sock.unlink(missing_ok=True)
            with self.log_path.open("ab") as logfile:
                self._proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                    env=self.env(), cwd=self.dir, start_new_session=True,
                )
            proc = self._proc
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise LabError(f"{self.name}: podman exited with {proc.returncode} while starting\n{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT)
                raise LabError(f"{self.name}: /_ping did not answer within {timeout:.0f} s\n{self.log_tail()}")
            if self.ping(timeout=min(2.0, remaining)) is not None:
                return
            time.sleep(0.05)

    def ping(self, timeout: float = 2.0) -> str | None:
        conn = _UnixHTTPConnection(str(self.sock), timeout)
        try:
            conn.request("GET", "/_ping")
            response = conn.getresponse()
            response.read()
            return (response.getheader("API-Version") or "") if response.status == 200 else None
        except OSError:
            return None
        except Exception:  # noqa: BLE001 - http.client's errors while the socket comes up
            return None
        finally:
            conn.close()

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM the service (its own pid); containers keep running under conmon, as on a real host."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise LabError(f"{self.name}: cannot stop, podman is not running")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT)

    def kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise LabError(f"{self.name}: cannot kill, podman is not running")
        proc.kill()
        proc.wait(timeout=_STOP_TIMEOUT)

    def client(self, timeout: float = 30.0) -> docker.DockerClient:
        import docker

        return docker.DockerClient(base_url=self.url, version=LAB_API_VERSION, timeout=timeout)

    def import_image(self, tar: Path | str, ref: str = BUSYBOX_REF) -> str:
        """The compat `POST /images/create?fromSrc=-`, then a tag: Podman's import ignores `tag`."""
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(ref)
        with closing(self.client(timeout=120)) as client:
            output = client.api.import_image(src=str(tar), repository=repository, changes=list(IMAGE_CHANGES))
            if '"error"' in str(output).lower():
                raise LabError(f"{self.name}: import of {ref} failed: {output}")
            client.api.tag(f"{repository}:latest", repository, tag or "latest")
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
        """As LabNode.run_container (catatonit is the init here); NetworkMode "none" unless given."""
        host_config.setdefault("network_mode", "none")
        return LabNode.run_container(
            self,  # type: ignore[arg-type]  # uses only self.client()
            name, command, tenant=tenant, labels=labels, image=image, init=init, stop_timeout=stop_timeout,
            **host_config,
        )

    def inventory_entry(self) -> InventoryNode:
        return InventoryNode(self.name, self.url, dict(self.labels))

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no podman log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def destroy(self) -> None:
        """Containers removed through the API, the service stopped, leftovers killed, dir removed."""
        with self._lock:
            if self.running:
                self._remove_containers()
                self.stop(timeout=15)
            elif self.dir.exists() and (self.dir / "root").exists():
                # The service is down (a test stopped it): let the CLI clean its own store.
                subprocess.run([*self.podman_args(), "rm", "--all", "--force", "--time", "0"],
                               env=self.env(), capture_output=True, timeout=60, check=False)
            owned = _matching_pids(self._owns)
            victims = list(dict.fromkeys([*_descendants(owned), *owned]))
            for pid in victims:
                if pid != os.getpid():
                    _kill_quietly(pid)
            _wait_until(lambda: not any(_alive(p) for p in victims), timeout=10)
            self._remove_cgroups()
            LabNode._unmount_all(self)  # type: ignore[arg-type]  # uses only self.dir and self.name
            if self.dir.exists() and not _mounts_under(self.dir):
                shutil.rmtree(self.dir, onerror=_log_rmtree_error)
            leftovers = []
            if _matching_pids(self._owns):
                leftovers.append(f"processes {_matching_pids(self._owns)}")
            if _mounts_under(self.dir):
                leftovers.append(f"mounts {_mounts_under(self.dir)}")
            if self.dir.exists():
                leftovers.append(f"directory {self.dir}")
            if leftovers:
                raise LabError(f"{self.name}: destroy left behind " + "; ".join(leftovers))

    def _remove_containers(self) -> None:
        try:
            with closing(self.client(timeout=30)) as client:
                for container in client.api.containers(all=True, quiet=True):
                    client.api.remove_container(container["Id"], force=True, v=True)
        except Exception as exc:  # noqa: BLE001 - cleanup goes on; the leftover check judges the result
            log.warning("%s: removing containers through the API failed: %s", self.name, exc)

    def _owns(self, argv: list[str]) -> bool:
        prefix = str(self.dir) + "/"
        return any(prefix in arg or arg == str(self.dir) for arg in argv)

    def _remove_cgroups(self) -> None:
        """Empty `libpod-<id>` cgroups of this node's containers (their ids are this node's run dirs)."""
        ids = set()
        for base in (self.dir / "root" / "vfs-containers", self.dir / "run" / "vfs-containers"):
            if base.is_dir():
                ids.update(p.name for p in base.iterdir())
        for mount in _cgroup_mounts():
            parent = mount / "libpod_parent"
            for cid in ids:
                for path in (parent / f"libpod-{cid}", parent / f"libpod-conmon-{cid}"):
                    if not path.is_dir():
                        continue
                    if (path / "freezer.state").exists():
                        _write_quietly(path / "freezer.state", "THAWED")
                    for child in [*sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True), path]:
                        with suppress(OSError):
                            child.rmdir()


class PodmanLab:
    """N Podman nodes (`pm-n1`, ...) under one temp dir; usable beside a dockerlab.Lab in one inventory."""

    def __init__(self, size: int = 1, *, prefix: str = "berth-pm-") -> None:
        import tempfile

        self.base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.nodes = [PodmanNode(f"pm-n{i}", self.base / f"n{i}", labels={"rack": f"p{i}", "engine": "podman"})
                      for i in range(1, size + 1)]
        self._closed = False
        atexit.register(self.close)

    def __enter__(self) -> PodmanLab:  # noqa: PYI034 - as dockerlab.Lab
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def import_image(self, tar: Path | str, ref: str = BUSYBOX_REF) -> None:
        for node in self.nodes:
            node.import_image(tar, ref)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors = []
        for node in self.nodes:
            try:
                node.destroy()
            except Exception as exc:  # noqa: BLE001 - every node gets its cleanup
                errors.append(f"{node.name}: {exc}")
        if self.base.exists() and not _mounts_under(self.base):
            shutil.rmtree(self.base, onerror=_log_rmtree_error)
        if errors:
            raise LabError("podman lab cleanup incomplete: " + " | ".join(errors))


def write_mixed_inventory(docker_lab: Lab, podman_lab: PodmanLab, path: Path | str, **kw: Any) -> Path:
    """A Berth inventory naming the dockerd lab's nodes and the Podman nodes side by side."""
    return docker_lab.write_inventory(path, extra_nodes=[n.inventory_entry() for n in podman_lab.nodes], **kw)


__all__ = ["TENANT_LABEL", "PodmanLab", "PodmanNode", "default_ulimits", "podman_available"]
