"""The inventory: which Docker daemons Berth watches, and the rules it applies.

An inventory is a TOML file turned into frozen, validated dataclasses. Every
problem becomes one ``ConfigError`` whose text is a single line naming the
file, the line and what is wrong, because the operator reads it in a terminal
before anything else has started.

Without an inventory file Berth watches one node, found exactly as the
``docker`` CLI would find its daemon: ``DOCKER_HOST`` (with
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``), else ``DOCKER_CONTEXT``, else the
``currentContext`` of the docker config file, else ``/var/run/docker.sock``.

The docker SDK's ``ContextAPI`` is not used to find that context: it ignores
``DOCKER_HOST`` and ``DOCKER_CONTEXT``, reads the process environment rather
than the ``env`` passed here, and looks for the context store relative to the
working directory when ``config.json`` does not exist. The store layout (a
sha256 of the name, ``meta.json``, ``tls/<id>/docker/``) is the CLI's, and
``kwargs_from_env`` from the SDK still builds the ``DOCKER_HOST`` TLS settings.

This module never imports Textual.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import socket
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

from docker.context.config import get_context_id
from docker.errors import DockerException
from docker.utils import kwargs_from_env

from console.listen import is_loopback_host

__all__ = [
    "DEFAULT_SOCKET_URL",
    "AlertThresholds",
    "ConfigError",
    "Inventory",
    "NodeConfig",
    "TLSConfig",
    "TenantQuota",
    "inventory_from_contexts",
    "load_inventory",
    "parse_inventory",
    "parse_size",
    "render_inventory",
    "resolve_inventory",
]

DEFAULT_SOCKET_URL = "unix:///var/run/docker.sock"
USER_INVENTORY = Path(".config", "berth", "inventory.toml")  # under the home directory

Scheme = Literal["unix", "tcp", "ssh"]
_SCHEMES: tuple[Scheme, ...] = ("unix", "tcp", "ssh")
_USE_SCHEMES = "use unix://, tcp:// or ssh://"
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
MAX_NAME = 63  # characters in a node name or an ssh user name (a DNS label's limit; fits every column)
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?\Z")
_UNNAMED = "<inventory>"


class ConfigError(Exception):
    """An unusable inventory, described in one line: ``file:line: problem``.

    ``file`` is the inventory path as the operator gave it, or the environment
    variable / docker context the settings came from; ``line`` is ``None``
    when the problem is not tied to one line.
    """

    def __init__(
        self, problem: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        self.problem = " ".join(str(problem).splitlines())
        self.file = file
        self.line = line
        where = f"{file}:{line}" if file and line else (file or "")
        super().__init__(f"{where}: {self.problem}" if where else self.problem)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Client TLS for a tcp:// node. Paths are absolute once loaded."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    url: str
    labels: tuple[tuple[str, str], ...] = ()
    tls: TLSConfig | None = None
    # Plain-text tcp:// to a non-loopback address, chosen on purpose.
    insecure: bool = False
    timeout: float = 5.0  # seconds per API call
    # Seconds between samples of idle containers that are not on screen.
    stats_idle_interval: float = 5.0

    @property
    def scheme(self) -> Scheme:
        return cast(Scheme, self.url.partition("://")[0])

    @property
    def is_local(self) -> bool:
        """True for a unix socket, or tcp:// to a loopback address."""
        if self.scheme == "unix":
            return True
        if self.scheme != "tcp":
            return False
        try:
            return _is_loopback(_parse_url(self.url).host)
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class TenantQuota:
    name: str
    cpu: float | None = None  # cores
    memory: int | None = None  # bytes


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    cpu_density: float = 0.9  # node CPU used / NCPU above this -> alert
    mem_density: float = 0.9
    cpu_committed: float = 4.0  # sum of CPU limits / NCPU above this -> alert
    mem_committed: float = 1.5
    stale_after: float = 15.0  # seconds without fresh data -> node stale
    restart_loop: int = 3  # restarts within restart_window seconds -> alert
    restart_window: float = 300.0


class _FrozenMap(Mapping[str, TenantQuota]):
    """A read-only, hashable mapping, so a frozen Inventory stays hashable."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, TenantQuota]] = ()) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> TenantQuota:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other.items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


@dataclass(frozen=True, slots=True)
class Inventory:
    nodes: tuple[NodeConfig, ...]
    # The container label that names the tenant; without it a container is "unassigned".
    tenancy_label: str = "tenant"
    tenants: Mapping[str, TenantQuota] = field(default_factory=_FrozenMap)
    alerts: AlertThresholds = field(default_factory=AlertThresholds)
    path: Path | None = None  # absolute path of the inventory file, when there is one
    # For humans: "inventory /x/y.toml", "DOCKER_HOST", "docker context 'foo'".
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, tuple):
            object.__setattr__(self, "nodes", tuple(self.nodes))
        if not isinstance(self.tenants, _FrozenMap):
            object.__setattr__(self, "tenants", _FrozenMap(self.tenants.items()))

    def tenant_quota(self, name: str) -> TenantQuota | None:
        return self.tenants.get(name)


# --------------------------------------------------------------------------- sizes

_SI = 1000
_BIN = 1024


def _size_units() -> dict[str, int]:
    units = {"": 1, "B": 1, "b": 1, "kB": _SI}  # kB: the SI spelling of kilo
    for power, letter in enumerate("KMGT", start=1):
        lower = letter.lower()
        units[letter] = units[lower] = units[f"{lower}b"] = (
            _BIN**power
        )  # docker: 16G, 16g, 16gb
        units[f"{letter}B"] = _SI**power  # SI: 16GB
        units[f"{letter}iB"] = units[f"{letter}i"] = _BIN**power  # IEC: 16GiB, 16Gi
    return units


_UNITS = _size_units()
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*\Z")
_SIZE_UNITS_HELP = (
    "use B, KB/MB/GB/TB (1000-based), KiB/MiB/GiB/TiB or K/M/G/T (1024-based)"
)
_MAX_SIZE = 2**63 - 1  # the Engine API stores bytes in an int64


def parse_size(value: int | str) -> int:
    """Bytes from ``17179869184``, ``"16GiB"``, ``"16 GB"`` or docker-style ``"16g"``.

    KB/MB/GB/TB are powers of 1000; KiB/MiB/GiB/TiB, bare K/M/G/T and docker's
    lowercase k/m/g/t (and kb/mb/gb/tb) are powers of 1024, as ``docker run -m``
    reads them. Raises ValueError, and nothing else, for anything that is not
    a positive size.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        # ValueError, not TypeError: callers catch one exception for any bad size.
        raise ValueError(  # noqa: TRY004
            f"size must be a number of bytes or a string like '16GiB', not {_kind(value)}"
        )
    if isinstance(value, int):
        amount = Decimal(value)
        unit = ""
    else:
        match = _SIZE.match(value)
        if match is None or len(match.group(1)) > 40:
            if value.strip().startswith("-"):
                raise ValueError(f"size {_q(value)} must be positive")
            raise ValueError(f"size {_q(value)} is not a size like '16GiB' or '512MB'")
        try:
            amount = Decimal(match.group(1))
        except InvalidOperation as exc:  # the pattern should make this impossible
            raise ValueError(f"size {_q(value)} is not a number") from exc
        unit = match.group(2)
        if unit not in _UNITS:
            raise ValueError(
                f"size {_q(value)} has an unknown unit {_q(unit)} ({_SIZE_UNITS_HELP})"
            )
    if amount <= 0:
        raise ValueError(f"size {_q(value)} must be positive")
    if amount > _MAX_SIZE:  # checked before multiplying, so huge inputs stay cheap
        raise ValueError(f"size {_q(value)} is too large")
    size = int(amount * _UNITS[unit])
    if size < 1:
        raise ValueError(f"size {_q(value)} is less than one byte")
    if size > _MAX_SIZE:
        raise ValueError(f"size {_q(value)} is too large")
    return size


def _format_size(size: int) -> str | int:
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if size % _BIN**power == 0:
            return f"{size // _BIN**power}{unit}"
    return size


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: Scheme
    host: str  # "" for unix
    port: int | None


def engine_key(url: str) -> str:
    """A node url normalised for comparison: scheme and host case-folded, a unix path's
    redundant slashes and dots removed. Two spellings with one key are one daemon. (A symlink or
    another host name for the same daemon is found once connected, by its /info ID.)"""
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "unix":
        return "unix://" + os.path.normpath("/" + rest.lstrip("/"))
    userinfo, at, hostport = rest.rstrip("/").rpartition("@")
    return f"{scheme.lower()}://{userinfo}{at}{hostport.lower()}"


def redact_url(url: str) -> str:
    """The url with any password in its user info replaced by ***, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, hostpart = authority.rpartition("@")
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}{slash}{path}"


def _parse_url(url: str) -> _Url:
    """Validate a node URL; ValueError says what is wrong in operator terms."""
    shown = redact_url(url)  # errors name the url, never its password
    if not url:
        raise ValueError("url is empty")
    if any(c.isspace() for c in url):
        raise ValueError(f"url {_q(shown)} contains whitespace")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"url {_q(shown)} has no scheme ({_USE_SCHEMES})")
    if scheme not in _SCHEMES:
        raise ValueError(
            f"url {_q(shown)} has an unsupported scheme {_q(scheme)} ({_USE_SCHEMES})"
        )
    if "?" in rest or "#" in rest:
        raise ValueError(f"url {_q(shown)} must not have a query or fragment")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ValueError(
                f"url {_q(shown)} must name an absolute socket path, like {DEFAULT_SOCKET_URL}"
            )
        if rest.rstrip("/") == "":
            raise ValueError(f"url {_q(shown)} has no socket path")
        return _Url("unix", "", None)
    netloc, slash, path = rest.partition("/")
    if path or (slash and scheme == "ssh"):
        raise ValueError(f"url {_q(shown)} must not have a path")
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        if scheme == "tcp":
            raise ValueError(
                f"url {_q(shown)} must not contain a user name (tcp:// has no login)"
            )
        if not userinfo:
            raise ValueError(f"url {_q(shown)} has an empty user name")
        if ":" in userinfo:
            raise ValueError(
                f"url {_q(shown)} must not contain a password (use an ssh key or agent)"
            )
        if len(userinfo) > MAX_NAME:
            raise ValueError(
                f"url {_q(shown[:40] + '…')} has a user name of {len(userinfo)} characters"
                f" (at most {MAX_NAME})"
            )
    host, port_text = _split_host_port(shown, hostport)
    if not host:
        raise ValueError(f"url {_q(shown)} has no host")
    port: int | None = None
    if port_text == "":
        raise ValueError(f"url {_q(shown)} has no port after ':'")
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit():
            raise ValueError(
                f"url {_q(shown)} has a port {_q(port_text)} that is not a number"
            )
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"url {_q(shown)} has port {port} out of range (1-65535)")
    elif scheme == "tcp":
        raise ValueError(
            f"url {_q(shown)} has no port (the docker convention is 2376 with TLS, 2375 without)"
        )
    return _Url(cast(Scheme, scheme), host, port)


def _split_host_port(url: str, hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        inside, bracket, after = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"url {_q(url)} has an unclosed '[' in its host")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise ValueError(
                f"url {_q(url)} has an invalid IPv6 address {_q(inside)}"
            ) from None
        if after and not after.startswith(":"):
            raise ValueError(f"url {_q(url)} has text after the IPv6 address")
        return inside, (after[1:] if after else None)
    if hostport.count(":") > 1:
        raise ValueError(
            f"url {_q(url)} needs brackets around an IPv6 address, like tcp://[::1]:2376"
        )
    host, colon, port = hostport.partition(":")
    if host and not _HOST_NAME.match(host):
        raise ValueError(f"url {_q(url)} has an invalid host name {_q(host)}")
    return host, (port if colon else None)


def _is_loopback(host: str) -> bool:
    return is_loopback_host(host)


# --------------------------------------------------------------------------- locating lines

_KeyPath = tuple[str | int, ...]
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(dotted))


class _Lines:
    """Where each table and key of a TOML text was written (1-based lines).

    tomllib keeps no positions, so this scans the raw text for headers and
    ``key =`` lines. It is a best effort used only to point at lines; values
    always come from tomllib. A key inside an inline table maps to its
    parent's line.
    """

    def __init__(self, text: str) -> None:
        self._at: dict[_KeyPath, int] = {}
        self._arrays: dict[_KeyPath, int] = {}
        current: _KeyPath = ()
        in_string: str | None = None
        for number, line in enumerate(text.split("\n"), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if match := _ARRAY_HEADER.match(line):
                parts = _split_key(match.group(1))
                array = (*self._resolve(parts[:-1]), parts[-1])
                index = self._arrays.get(array, 0)
                self._arrays[array] = index + 1
                current = (*array, index)
                self._at.setdefault(array, number)
                self._at[current] = number
            elif match := _TABLE_HEADER.match(line):
                current = self._resolve(_split_key(match.group(1)))
                self._at.setdefault(current, number)
            elif match := _KEY_LINE.match(line):
                parts = _split_key(match.group(1))
                for end in range(1, len(parts) + 1):
                    self._at.setdefault((*current, *parts[:end]), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_string = quote
                    break

    def _resolve(self, parts: tuple[str, ...]) -> _KeyPath:
        """Give array-of-tables segments their current index: node.tls -> node.0.tls."""
        resolved: _KeyPath = ()
        for part in parts:
            resolved = (*resolved, part)
            if resolved in self._arrays:
                resolved = (*resolved, self._arrays[resolved] - 1)
        return resolved

    def line(self, path: _KeyPath) -> int | None:
        while path:
            if path in self._at:
                return self._at[path]
            path = path[:-1]
        return None


# --------------------------------------------------------------------------- validation

# [serve] and [[user]] are `berth serve`'s, validated there (console/serve/config.py).
_TOP_KEYS = ("tenancy", "node", "tenant", "alerts", "serve", "user")
_NODE_KEYS = (
    "name",
    "url",
    "labels",
    "tls",
    "insecure",
    "timeout",
    "stats_idle_interval",
)
_TLS_KEYS = ("ca", "cert", "key", "verify")
_TENANCY_KEYS = ("label",)
_TENANT_KEYS = ("cpu", "memory")
_ALERT_KEYS = tuple(AlertThresholds.__dataclass_fields__)
_TOML_ERROR_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*\Z")
_TOML_ERROR_END = re.compile(r"\s*\(at end of document\)\s*\Z")


class _Reader:
    """Turns tomllib's dicts into dataclasses, failing with file and line."""

    def __init__(self, label: str, lines: _Lines | None, base: Path) -> None:
        self.label = label
        self.lines = lines
        self.base = base  # relative TLS paths are resolved against this directory

    def fail(self, path: _KeyPath, problem: str) -> NoReturn:
        line = self.lines.line(path) if self.lines is not None else None
        raise ConfigError(problem, file=self.label, line=line)

    def known_keys(
        self,
        table: Mapping[str, Any],
        allowed: tuple[str, ...],
        path: _KeyPath,
        what: str,
    ) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = (
                    f"did you mean {_q(close[0])}?"
                    if close
                    else f"valid keys: {', '.join(allowed)}"
                )
                self.fail((*path, key), f"{what}unknown key {_q(key)} ({hint})")

    def table(self, value: object, path: _KeyPath, what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"{what} must be a table, not {_kind(value)}")
        return value

    def string(self, value: object, path: _KeyPath, what: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"{what} must be a string, not {_kind(value)}")
        return value

    def boolean(self, value: object, path: _KeyPath, what: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"{what} must be true or false, not {_kind(value)}")
        return value

    def positive(self, value: object, path: _KeyPath, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"{what} must be a number, not {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:
            self.fail(path, f"{what} {value} is too large")
        if not math.isfinite(number):
            self.fail(path, f"{what} must be a finite number, not {value}")
        if number <= 0:
            self.fail(path, f"{what} must be greater than 0, not {value}")
        return number

    def count(self, value: object, path: _KeyPath, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"{what} must be a whole number, not {_kind(value)}")
        if value < 1:
            self.fail(path, f"{what} must be at least 1, not {value}")
        return value

    # -- the document

    def inventory(
        self, data: Mapping[str, Any], path: Path | None, source: str
    ) -> Inventory:
        self.known_keys(data, _TOP_KEYS, (), "")
        tenancy_label = "tenant"
        if "tenancy" in data:
            tenancy = self.table(data["tenancy"], ("tenancy",), "[tenancy]")
            self.known_keys(tenancy, _TENANCY_KEYS, ("tenancy",), "[tenancy]: ")
            if "label" in tenancy:
                tenancy_label = self.string(
                    tenancy["label"], ("tenancy", "label"), "tenancy label"
                )
                if not tenancy_label.strip():
                    self.fail(("tenancy", "label"), "tenancy label must not be empty")
        nodes = self.nodes(data.get("node"))
        tenants = self.tenants(data["tenant"]) if "tenant" in data else _FrozenMap()
        alerts = self.alerts(data["alerts"]) if "alerts" in data else AlertThresholds()
        return Inventory(nodes, tenancy_label, tenants, alerts, path, source)

    def nodes(self, value: object) -> tuple[NodeConfig, ...]:
        if value is None:
            self.fail(
                (), "no nodes: add at least one [[node]] table with a name and a url"
            )
        if isinstance(value, dict):
            self.fail(("node",), "write [[node]] (an array of tables), not [node]")
        if not isinstance(value, list):
            self.fail(
                ("node",),
                f"node must be an array of [[node]] tables, not {_kind(value)}",
            )
        if not value:
            self.fail(
                ("node",),
                "no nodes: add at least one [[node]] table with a name and a url",
            )
        seen: dict[str, int] = {}
        engines: dict[str, int] = {}  # normalised url -> index of the first node with it
        nodes: list[NodeConfig] = []
        for index, table in enumerate(value):
            node = self.node(table, ("node", index), f"node #{index + 1}")
            engine = engine_key(node.url)
            if engine in engines:
                first = nodes[engines[engine]]
                line = self.lines.line(("node", engines[engine], "url")) if self.lines else None
                self.fail(
                    ("node", index, "url"),
                    f"node {_q(node.name)}: url {_q(redact_url(node.url))} is the same engine as node"
                    f" {_q(first.name)}" + (f" (line {line})" if line else "")
                    + ": each daemon once, or its containers count twice",
                )
            engines[engine] = index
            if node.name in seen:
                first_line = (
                    self.lines.line(("node", seen[node.name], "name"))
                    if self.lines
                    else None
                )
                earlier = f" (first defined on line {first_line})" if first_line else ""
                self.fail(
                    ("node", index, "name"),
                    f"duplicate node name {_q(node.name)}{earlier}",
                )
            seen[node.name] = index
            nodes.append(node)
        return tuple(nodes)

    def node(self, value: object, path: _KeyPath, what: str) -> NodeConfig:
        table = self.table(value, path, what)
        if "name" not in table:
            self.fail(path, f"{what}: missing required key 'name'")
        name = self.string(table["name"], (*path, "name"), f"{what}: name")
        if len(name) > MAX_NAME:
            self.fail(
                (*path, "name"),
                f"{what}: name {_q(name[:20] + '…')} is {len(name)} characters long (at most {MAX_NAME})",
            )
        if not _NODE_NAME.match(name):
            self.fail(
                (*path, "name"),
                f"{what}: name {_q(name)} is not allowed (use letters, digits, '.', '_' and '-',"
                " starting with a letter or digit; no '/', targets are NODE/CONTAINER)",
            )
        who = f"node {_q(name)}"
        self.known_keys(table, _NODE_KEYS, path, f"{who}: ")
        if "url" not in table:
            self.fail(path, f"{who}: missing required key 'url'")
        url = self.string(table["url"], (*path, "url"), f"{who}: url")
        try:
            parsed = _parse_url(url)
        except ValueError as exc:
            self.fail((*path, "url"), f"{who}: {exc}")

        labels: tuple[tuple[str, str], ...] = ()
        if "labels" in table:
            raw = self.table(table["labels"], (*path, "labels"), f"{who}: labels")
            labels = tuple(
                (
                    key,
                    self.string(
                        item, (*path, "labels", key), f"{who}: label {_q(key)}"
                    ),
                )
                for key, item in raw.items()
            )
        insecure = False
        if "insecure" in table:
            insecure = self.boolean(
                table["insecure"], (*path, "insecure"), f"{who}: insecure"
            )
        timeout = 5.0
        if "timeout" in table:
            timeout = self.positive(
                table["timeout"], (*path, "timeout"), f"{who}: timeout"
            )
        idle = 5.0
        if "stats_idle_interval" in table:
            idle = self.positive(
                table["stats_idle_interval"],
                (*path, "stats_idle_interval"),
                f"{who}: stats_idle_interval",
            )
        tls = self.tls(table["tls"], (*path, "tls"), who) if "tls" in table else None

        if parsed.scheme != "tcp":
            if tls is not None:
                self.fail(
                    (*path, "tls"),
                    f"{who}: tls applies only to tcp:// urls, not {parsed.scheme}://",
                )
            if insecure:
                self.fail(
                    (*path, "insecure"),
                    f"{who}: insecure applies only to tcp:// urls, not {parsed.scheme}://",
                )
        elif tls is not None and insecure:
            self.fail(
                (*path, "insecure"),
                f"{who}: insecure = true means plain-text tcp and contradicts tls"
                " (to skip certificate checks, set verify = false in tls)",
            )
        elif tls is None and not insecure and not _is_loopback(parsed.host):
            self.fail(
                (*path, "url"),
                f"{who}: url {_q(url)} is plain-text tcp to a non-loopback host:"
                " configure tls, or add insecure = true to accept that",
            )
        return NodeConfig(name, url, labels, tls, insecure, timeout, idle)

    def tls(self, value: object, path: _KeyPath, who: str) -> TLSConfig:
        table = self.table(value, path, f"{who}: tls")
        self.known_keys(table, _TLS_KEYS, path, f"{who}: tls: ")
        files: dict[str, Path | None] = {}
        for key in ("ca", "cert", "key"):
            files[key] = None
            if key in table:
                text = self.string(table[key], (*path, key), f"{who}: tls {key}")
                if not text:
                    self.fail((*path, key), f"{who}: tls {key} must not be empty")
                file = Path(text).expanduser()
                if not file.is_absolute():
                    file = self.base / file
                if not file.is_file():
                    self.fail(
                        (*path, key), f"{who}: tls {key} file {_q(str(file))} not found"
                    )
                files[key] = file
        verify = True
        if "verify" in table:
            verify = self.boolean(
                table["verify"], (*path, "verify"), f"{who}: tls verify"
            )
        if files["cert"] and not files["key"]:
            self.fail(
                path,
                f"{who}: tls has a cert but no key (a client certificate needs both)",
            )
        if files["key"] and not files["cert"]:
            self.fail(
                path,
                f"{who}: tls has a key but no cert (a client certificate needs both)",
            )
        return TLSConfig(files["ca"], files["cert"], files["key"], verify)

    def tenants(self, value: object) -> _FrozenMap:
        table = self.table(value, ("tenant",), "tenant")
        quotas = []
        for name, raw in table.items():
            path: _KeyPath = ("tenant", name)
            if not isinstance(raw, dict):
                self.fail(
                    path,
                    f"tenant {_q(name)} must be a table: write [tenant.NAME] with cpu and memory keys",
                )
            who = f"tenant {_q(name)}"
            self.known_keys(raw, _TENANT_KEYS, path, f"{who}: ")
            cpu = (
                self.positive(raw["cpu"], (*path, "cpu"), f"{who}: cpu quota")
                if "cpu" in raw
                else None
            )
            memory = None
            if "memory" in raw:
                value = raw["memory"]
                if isinstance(value, bool) or not isinstance(value, int | str):
                    self.fail(
                        (*path, "memory"),
                        f"{who}: memory quota must be bytes or a string like '16GiB', not {_kind(value)}",
                    )
                try:
                    memory = parse_size(value)
                except ValueError as exc:
                    self.fail((*path, "memory"), f"{who}: memory quota: {exc}")
            quotas.append((name, TenantQuota(name, cpu, memory)))
        return _FrozenMap(quotas)

    def alerts(self, value: object) -> AlertThresholds:
        table = self.table(value, ("alerts",), "[alerts]")
        self.known_keys(table, _ALERT_KEYS, ("alerts",), "[alerts]: ")
        values: dict[str, Any] = {}
        for key, raw in table.items():
            if key == "restart_loop":
                values[key] = self.count(raw, ("alerts", key), f"alerts {key}")
            else:
                values[key] = self.positive(raw, ("alerts", key), f"alerts {key}")
        return AlertThresholds(**values)


@contextmanager
def _one_line_errors(label: str) -> Iterator[None]:
    """Let only ConfigError out: a bug or an odd OS error still reaches the operator as one line."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot read inventory ({type(exc).__name__}: {exc})", file=label
        ) from exc


def parse_inventory(text: str, path: Path | None = None) -> Inventory:
    """Validate inventory TOML text. ``path`` names it in errors and anchors relative TLS paths."""
    label = str(path) if path is not None else _UNNAMED
    with _one_line_errors(label):
        return _parse(text, label, path)


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate the inventory file at ``path`` (``~`` expanded)."""
    label = str(path)
    with _one_line_errors(label):
        file = Path(path).expanduser()
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise ConfigError("inventory file not found", file=label) from None
        except IsADirectoryError:
            raise ConfigError(
                "is a directory, not an inventory file", file=label
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read inventory: {exc.strerror or exc}", file=label
            ) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(
                f"not UTF-8 text (bad byte at offset {exc.start})",
                file=label,
                line=line,
            ) from None
        return _parse(text, label, file)


def _parse(text: str, label: str, path: Path | None) -> Inventory:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, label) from None
    absolute = Path(os.path.abspath(path)) if path is not None else None
    base = absolute.parent if absolute is not None else Path.cwd()
    source = f"inventory {absolute}" if absolute is not None else "inventory text"
    return _Reader(label, _Lines(text), base).inventory(data, absolute, source)


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, label: str) -> ConfigError:
    """tomllib (3.11) has no lineno attribute: read it from the message."""
    message = str(exc)
    line: int | None = None
    if match := _TOML_ERROR_AT.search(message):
        line = int(match.group(1))
        message = f"{message[: match.start()]} (column {match.group(2)})"
    elif match := _TOML_ERROR_END.search(message):
        line = text.count("\n") + 1
        message = f"{message[: match.start()]} (at end of file)"
    return ConfigError(f"invalid TOML: {message}", file=label, line=line)


# --------------------------------------------------------------------------- no inventory: docker's own choice


@dataclass(frozen=True, slots=True)
class _DockerContext:
    name: str
    host: str
    skip_tls_verify: bool
    tls_dir: Path  # holds ca.pem / cert.pem / key.pem when the context has TLS material


def resolve_inventory(
    cli_path: str | None, env: Mapping[str, str] = os.environ, home: Path | None = None
) -> Inventory:
    """Pick the inventory: --inventory, $BERTH_INVENTORY, ~/.config/berth/inventory.toml.

    With none of them, one implicit node where the docker CLI would connect:
    DOCKER_HOST, else DOCKER_CONTEXT, else the config file's currentContext,
    else /var/run/docker.sock. The node is named after the context; for the
    "default" context it is the short host name of this machine (or "local")
    for a unix socket, and the remote host for tcp:// and ssh://.
    """
    if cli_path:
        return load_inventory(cli_path)
    if env.get("BERTH_INVENTORY"):
        return load_inventory(env["BERTH_INVENTORY"])
    with _one_line_errors("docker environment"):
        home = home if home is not None else Path.home()
        user_file = home / USER_INVENTORY
        if user_file.is_file():
            return load_inventory(user_file)
        return _docker_inventory(env, home)


def _docker_inventory(env: Mapping[str, str], home: Path) -> Inventory:
    config_dir = _docker_config_dir(env, home)
    if env.get("DOCKER_HOST"):
        name, origin = "default", "DOCKER_HOST"
    elif env.get("DOCKER_CONTEXT"):
        name, origin = env["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    else:
        name, origin = _current_context(config_dir), str(config_dir / "config.json")
    if name == "default":
        node, source = _default_context_node(env, config_dir)
        return Inventory((node,), source=source)
    context = _load_context(config_dir, name, origin)
    return Inventory(
        (_context_node(context, _node_name(context.name)),),
        source=f"docker context {name!r}",
    )


def inventory_from_contexts(env: Mapping[str, str] = os.environ) -> str:
    """TOML with one [[node]] per docker context, for ``berth inventory from-contexts``.

    Includes "default" (DOCKER_HOST or the local socket). Contexts Berth cannot
    use (npipe://, a broken meta.json, missing TLS files) are left out with a
    comment saying why. Plain tcp:// contexts get ``insecure = true``, because
    that is what the docker CLI does with them; review before use.
    """
    with _one_line_errors("docker contexts"):
        return _contexts_inventory_text(env)


def _contexts_inventory_text(env: Mapping[str, str]) -> str:
    config_dir = _docker_config_dir(env, Path.home())
    nodes: list[NodeConfig] = []
    notes: list[str] = []
    try:
        nodes.append(_default_context_node(env, config_dir)[0])
    except ConfigError as exc:
        notes.append(f"skipped context 'default': {exc}")
    for name, meta in _context_metas(config_dir):
        try:
            context = _load_context(config_dir, name, str(meta))
            node = _context_node(
                context, _unique(_node_name(name), {n.name for n in nodes})
            )
            same = next(
                (n for n in nodes if engine_key(n.url) == engine_key(node.url)), None
            )
            if same is not None:  # two contexts for one daemon: watched once
                notes.append(
                    f"skipped context {name!r}: the same engine as node {same.name!r}"
                    f" ({redact_url(node.url)})"
                )
                continue
            nodes.append(node)
        except ConfigError as exc:
            notes.append(f"skipped context {name!r}: {exc.problem}")
    if not nodes:
        raise ConfigError(
            f"no usable docker contexts ({'; '.join(notes)})",
            file=str(config_dir / "contexts"),
        )
    header = [
        f"# Berth inventory generated from the docker contexts in {config_dir}",
        "# Review it, then save it as ~/.config/berth/inventory.toml or pass it with --inventory.",
        *(f"# {' '.join(note.splitlines())}" for note in notes),
        "",
    ]
    return "\n".join(header) + render_inventory(Inventory(tuple(nodes)))


def _docker_config_dir(env: Mapping[str, str], home: Path) -> Path:
    """The docker CLI's config directory: $DOCKER_CONFIG, else ~/.docker."""
    configured = env.get("DOCKER_CONFIG")
    return Path(configured).expanduser() if configured else home / ".docker"


def _current_context(config_dir: Path) -> str:
    config = config_dir / "config.json"
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "default"
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read docker config: {exc}", file=str(config)
        ) from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(
            f"docker config is not valid JSON: {exc}", file=str(config)
        ) from None
    name = data.get("currentContext") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else "default"


def _context_metas(config_dir: Path) -> list[tuple[str, Path]]:
    """(name, meta.json) for every stored context, sorted by name as `docker context ls` does."""
    meta_root = config_dir / "contexts" / "meta"
    found: list[tuple[str, Path]] = []
    if not meta_root.is_dir():
        return found
    for meta in sorted(meta_root.glob("*/meta.json")):
        try:
            name = json.loads(meta.read_text(encoding="utf-8"))["Name"]
        except (OSError, ValueError, KeyError, TypeError):
            name = None
        found.append(
            (name if isinstance(name, str) and name else meta.parent.name, meta)
        )
    return sorted(found)


def _load_context(config_dir: Path, name: str, origin: str) -> _DockerContext:
    context_id = get_context_id(name)
    meta = config_dir / "contexts" / "meta" / context_id / "meta.json"
    where = f"docker context {name!r}"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"context named by {origin} does not exist (no {meta})", file=where
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {meta}: {exc}", file=where) from None
    endpoints = data.get("Endpoints") if isinstance(data, dict) else None
    docker = endpoints.get("docker") if isinstance(endpoints, dict) else None
    if not isinstance(docker, dict):
        raise ConfigError(f"{meta} has no docker endpoint", file=where)
    host = docker.get("Host") or DEFAULT_SOCKET_URL
    if not isinstance(host, str):
        raise ConfigError(f"{meta}: docker endpoint Host is not a string", file=where)
    # The CLI always writes SkipTLSVerify; absent means verify (the SDK reads absent as skip).
    skip = docker.get("SkipTLSVerify") is True
    tls_dir = config_dir / "contexts" / "tls" / context_id / "docker"
    return _DockerContext(name, host, skip, tls_dir)


def _context_node(context: _DockerContext, name: str) -> NodeConfig:
    """One node from a docker context, with the CLI's TLS rules.

    A tcp:// endpoint uses TLS when the context holds any of ca/cert/key.pem
    or sets SkipTLSVerify. Contexts written by the docker SDK's
    ``create_context`` store http://, https:// and http+unix:// hosts instead;
    their scheme decides plain or TLS.
    """
    url, tls_by_scheme = _context_url(context.host)
    table: dict[str, Any] = {"name": name, "url": url}
    if url.startswith("tcp://"):
        files = {key: context.tls_dir / f"{key}.pem" for key in ("ca", "cert", "key")}
        present = {key: str(file) for key, file in files.items() if file.is_file()}
        use_tls = bool(present) or context.skip_tls_verify
        if tls_by_scheme is not None:
            use_tls = tls_by_scheme
        table["url"] = _with_default_port(url, use_tls)
        if use_tls:
            table["tls"] = {**present, "verify": not context.skip_tls_verify}
        else:
            table["insecure"] = _needs_insecure(table["url"])
    return _implicit_node(table, f"docker context {context.name!r}")


def _context_url(host: str) -> tuple[str, bool | None]:
    """(CLI-style url, TLS implied by an SDK-style scheme or None)."""
    for prefix, scheme, tls in (
        ("http+unix://", "unix://", None),
        ("https://", "tcp://", True),
        ("http://", "tcp://", False),
    ):
        if host.startswith(prefix):
            return scheme + host[len(prefix) :], tls
    return host, None


def _default_context_node(
    env: Mapping[str, str], config_dir: Path
) -> tuple[NodeConfig, str]:
    """The docker CLI's "default" context: DOCKER_HOST (+ TLS variables), else the local socket."""
    host = env.get("DOCKER_HOST", "").strip()
    if not host:
        local = {"name": _node_name("default"), "url": DEFAULT_SOCKET_URL}
        return _implicit_node(local, "docker"), f"default socket {DEFAULT_SOCKET_URL}"
    url = host if "://" in host else f"tcp://{host}"  # the CLI reads host:port as tcp
    # The CLI turns TLS on for DOCKER_TLS_VERIFY or DOCKER_TLS (any non-empty value, even "0")
    # and then reads ca/cert/key.pem from DOCKER_CERT_PATH, else the docker config directory.
    verify = bool(env.get("DOCKER_TLS_VERIFY"))
    use_tls = verify or bool(env.get("DOCKER_TLS"))
    url = _with_default_port(url, use_tls)
    table: dict[str, Any] = {"url": url}
    if url.startswith("tcp://") and use_tls:
        cert_path = env.get("DOCKER_CERT_PATH") or str(config_dir)
        table["tls"] = _env_tls(url, cert_path, verify)
    elif url.startswith("tcp://"):
        table["insecure"] = _needs_insecure(url)
    table["name"] = _default_name_for(url)
    return _implicit_node(table, "DOCKER_HOST"), "DOCKER_HOST"


def _env_tls(url: str, cert_path: str, verify: bool) -> dict[str, Any]:
    sdk_env = {"DOCKER_HOST": url, "DOCKER_CERT_PATH": cert_path}
    if verify:
        sdk_env["DOCKER_TLS_VERIFY"] = "1"
    try:
        sdk_tls = kwargs_from_env(environment=sdk_env)["tls"]
    except DockerException:
        # The SDK's message does not say which file; name the missing ones.
        wanted = (
            ("cert.pem", "key.pem", "ca.pem") if verify else ("cert.pem", "key.pem")
        )
        missing = [
            n for n in wanted if not (Path(cert_path).expanduser() / n).is_file()
        ]
        raise ConfigError(
            f"TLS is on (DOCKER_TLS_VERIFY/DOCKER_TLS) but {', '.join(missing) or 'a TLS file'}"
            f" is missing in {cert_path} (DOCKER_CERT_PATH)",
            file="DOCKER_HOST",
        ) from None
    tls: dict[str, Any] = {"verify": verify}
    if sdk_tls.cert:
        tls["cert"], tls["key"] = sdk_tls.cert
    if verify and sdk_tls.ca_cert:
        tls["ca"] = sdk_tls.ca_cert
    return tls


def _with_default_port(url: str, use_tls: bool) -> str:
    """tcp://host means port 2376 with TLS and 2375 without, as in the docker CLI."""
    if not url.startswith("tcp://"):
        return url
    rest = url[len("tcp://") :]
    netloc, slash, path = rest.partition("/")
    if netloc and not re.search(
        r":[0-9]*\Z", netloc.rpartition("]")[2] if "]" in netloc else netloc
    ):
        netloc = f"{netloc}:{2376 if use_tls else 2375}"
    return f"tcp://{netloc}{slash}{path}"


def _needs_insecure(url: str) -> bool:
    """The docker CLI speaks plain tcp when told to; mark it instead of refusing."""
    try:
        return not _is_loopback(_parse_url(url).host)
    except ValueError:
        return False  # the node check reports the URL itself


def _implicit_node(table: dict[str, Any], label: str) -> NodeConfig:
    return _Reader(label, None, Path.cwd()).node(table, (), "node")


def _default_name_for(url: str) -> str:
    try:
        parsed = _parse_url(url)
    except ValueError:
        return _node_name("default")  # the node check reports the URL itself
    if parsed.scheme == "unix":
        return _node_name("default")
    return _sanitize(parsed.host) or "local"


def _node_name(context: str) -> str:
    """A node name for a context; "default" is this machine's short host name, or "local"."""
    if context == "default":
        return _sanitize(socket.gethostname().partition(".")[0]) or "local"
    return _sanitize(context) or "local"


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", text).lstrip("._-")


def _unique(name: str, taken: set[str]) -> str:
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}-{suffix}", suffix + 1
    return candidate


# --------------------------------------------------------------------------- rendering


def render_inventory(inv: Inventory) -> str:
    """TOML for ``inv`` that parse_inventory reads back to the same values; defaults are left out."""
    out: list[str] = []
    if inv.tenancy_label != "tenant":
        out += ["[tenancy]", f"label = {_toml(inv.tenancy_label)}", ""]
    for node in inv.nodes:
        out += ["[[node]]", f"name = {_toml(node.name)}", f"url = {_toml(node.url)}"]
        if node.labels:
            out.append(f"labels = {_inline(dict(node.labels))}")
        if node.tls is not None:
            tls: dict[str, Any] = {
                k: str(v) for k in ("ca", "cert", "key") if (v := getattr(node.tls, k))
            }
            if not node.tls.verify:
                tls["verify"] = False
            out.append(f"tls = {_inline(tls)}")
        if node.insecure:
            out.append("insecure = true  # plain-text tcp, no TLS")
        if node.timeout != 5.0:
            out.append(f"timeout = {_toml(node.timeout)}")
        if node.stats_idle_interval != 5.0:
            out.append(f"stats_idle_interval = {_toml(node.stats_idle_interval)}")
        out.append("")
    for name, quota in inv.tenants.items():
        out.append(f"[tenant.{_toml_key(name)}]")
        if quota.cpu is not None:
            out.append(f"cpu = {_toml(quota.cpu)}")
        if quota.memory is not None:
            out.append(f"memory = {_toml(_format_size(quota.memory))}")
        out.append("")
    changed = {
        key: getattr(inv.alerts, key)
        for key in _ALERT_KEYS
        if getattr(inv.alerts, key) != getattr(AlertThresholds(), key)
    }
    if changed:
        out += [
            "[alerts]",
            *(f"{key} = {_toml(value)}" for key, value in changed.items()),
            "",
        ]
    return "\n".join(out)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    escaped = "".join(
        "\\\\"
        if c == "\\"
        else '\\"'
        if c == '"'
        else f"\\u{ord(c):04x}"
        if ord(c) < 0x20 or ord(c) == 0x7F
        else c
        for c in text
    )
    return f'"{escaped}"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def _inline(table: Mapping[str, object]) -> str:
    return (
        "{ "
        + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in table.items())
        + " }"
        if table
        else "{}"
    )


# --------------------------------------------------------------------------- wording


def _q(value: object) -> str:
    """A value quoted for a one-line message: repr escapes newlines and control characters."""
    if isinstance(value, str) and len(value) > 80:
        value = value[:77] + "..."
    return repr(value)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"
