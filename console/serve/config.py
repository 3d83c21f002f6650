"""`[serve]` and `[[user]]`: who may come in, through which door, as what role.

They live in the inventory file beside the nodes, so one file describes the fleet and its team.
Errors follow the inventory's: one ``ConfigError`` line, ``file:line: problem``.

```toml
[serve]
ssh = "0.0.0.0:2222"             # SSH front door (off when absent)
host_key = "berth_host_ed25519"  # created 0600 on first start when missing; relative to this file
max_sessions = 32

[[user]]
name = "alice"
role = "operator"                # "viewer" (the default) or "operator"
keys = ["ssh-ed25519 AAAA... alice@laptop"]
```
"""

from __future__ import annotations

import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from console.listen import Listen
from console.listen import parse_listen as _parse_listen
from console.config import (  # the inventory's own line finder and reader, so errors read the same
    ConfigError,
    _kind,
    _Lines,
    _q,
    _Reader,
    _toml_error,
)
from console.identity import ROLES, Role

SERVE_KEYS = ("ssh", "web", "metrics", "host_key", "max_sessions")
USER_KEYS = ("name", "role", "keys")
DEFAULT_HOST_KEY = "berth_host_ed25519"
DEFAULT_MAX_SESSIONS = 32
MAX_USER_NAME = 63  # a login name (useradd's limit is 32; systemd-homed and OpenSSH take longer)
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\Z")


def _asyncssh() -> Any:
    """asyncssh, imported once without its DSA deprecation noise on the operator's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh
    return asyncssh


def parse_listen(text: object) -> Listen:
    """``HOST:PORT`` for a front door (console.listen), examples on the SSH door's usual port."""
    return _parse_listen(text, 2222)


@dataclass(frozen=True, slots=True)
class AuthorizedKey:
    blob: bytes  # the key in SSH wire format: what a client presents
    algorithm: str
    fingerprint: str  # as `ssh-keygen -l` prints it: SHA256:...
    comment: str


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    keys: tuple[AuthorizedKey, ...]


@dataclass(frozen=True, slots=True)
class ServeConfig:
    ssh: Listen | None = None
    web: Listen | None = None
    metrics: Listen | None = None
    host_key: Path = Path(DEFAULT_HOST_KEY)
    max_sessions: int = DEFAULT_MAX_SESSIONS
    users: tuple[User, ...] = ()
    source: str = "<inventory>"  # the file, for messages

    def user_for_key(self, blob: bytes) -> tuple[User, AuthorizedKey] | None:
        for user in self.users:
            for key in user.keys:
                if key.blob == blob:
                    return user, key
        return None


def parse_public_key(line: str) -> AuthorizedKey:
    """One OpenSSH public key line (``ssh-ed25519 AAAA... comment``); ValueError saying why not."""
    text = line.strip()
    if not text:
        raise ValueError("is empty")
    if "\n" in text or "\r" in text:
        raise ValueError("spans several lines (one key per string)")
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise ValueError(f"{_q(text)} is not 'TYPE BASE64 [comment]' as in an id_*.pub file")
    asyncssh = _asyncssh()
    try:
        key = asyncssh.import_public_key(f"{parts[0]} {parts[1]}")
    except (asyncssh.KeyImportError, ValueError, TypeError) as exc:
        raise ValueError(f"{_q(text)} is not an OpenSSH public key ({exc})") from None
    algorithm = key.get_algorithm()
    if parts[0] != algorithm:
        raise ValueError(f"{_q(text)} says {parts[0]!r} but holds a {algorithm!r} key")
    return AuthorizedKey(bytes(key.public_data), algorithm, key.get_fingerprint("sha256"),
                         parts[2] if len(parts) > 2 else "")


class _ServeReader:
    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.lines = _Lines(text)
        self.reader = _Reader(label, self.lines, Path("."))
        self.label = label

    def fail(self, path: tuple[Any, ...], problem: str, line: int | None = None) -> None:
        if line is not None:
            raise ConfigError(problem, file=self.label, line=line)
        self.reader.fail(path, problem)

    def listen(self, value: object, key: str) -> Listen:
        text = self.reader.string(value, ("serve", key), f"[serve] {key}")
        try:
            return parse_listen(text)
        except ValueError as exc:
            self.fail(("serve", key), f"[serve] {key} {exc}")
            raise AssertionError from exc  # fail() raised

    def serve(self, data: Mapping[str, Any], base: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "serve" not in data:
            return out
        table = self.reader.table(data["serve"], ("serve",), "[serve]")
        self.reader.known_keys(table, SERVE_KEYS, ("serve",), "[serve]: ")
        for key in ("ssh", "web", "metrics"):
            if key in table:
                out[key] = self.listen(table[key], key)
        if "host_key" in table:
            text = self.reader.string(table["host_key"], ("serve", "host_key"), "[serve] host_key")
            if not text.strip():
                self.fail(("serve", "host_key"), "[serve] host_key must not be empty")
            path = Path(text).expanduser()
            out["host_key"] = path if path.is_absolute() else base / path
        if "max_sessions" in table:
            out["max_sessions"] = self.reader.count(table["max_sessions"], ("serve", "max_sessions"),
                                                    "[serve] max_sessions")
        return out

    def users(self, value: object) -> tuple[User, ...]:
        if value is None:
            return ()
        if isinstance(value, dict):
            self.fail(("user",), "write [[user]] (an array of tables), not [user]")
        if not isinstance(value, list):
            self.fail(("user",), f"user must be an array of [[user]] tables, not {_kind(value)}")
        users: list[User] = []
        names: dict[str, int] = {}
        owners: dict[bytes, tuple[str, int | None]] = {}
        for index, raw in enumerate(cast(list[Any], value)):
            path = ("user", index)
            what = f"user #{index + 1}"
            table = self.reader.table(raw, path, what)
            if "name" not in table:
                self.fail(path, f"{what}: missing required key 'name'")
            name = self.reader.string(table["name"], (*path, "name"), f"{what}: name")
            if len(name) > MAX_USER_NAME:
                self.fail((*path, "name"), f"{what}: name {_q(name)} is {len(name)} characters long "
                                           f"(at most {MAX_USER_NAME})")
            if not _USER_NAME.match(name):
                self.fail((*path, "name"), f"{what}: name {_q(name)} is not allowed (use letters, digits, "
                                           "'.', '_' and '-', not starting with '.' or '-')")
            who = f"user {_q(name)}"
            self.reader.known_keys(table, USER_KEYS, path, f"{who}: ")
            if name in names:
                first = self.lines.line(("user", names[name], "name"))
                earlier = f" (first defined on line {first})" if first else ""
                self.fail((*path, "name"), f"duplicate user name {_q(name)}{earlier}")
            names[name] = index
            role: str = "viewer"
            if "role" in table:
                role = self.reader.string(table["role"], (*path, "role"), f"{who}: role")
                if role not in ROLES:
                    self.fail((*path, "role"), f"{who}: unknown role {_q(role)} (use {' or '.join(map(repr, ROLES))})")
            if "keys" not in table:
                self.fail(path, f"{who}: missing required key 'keys' (OpenSSH public key lines)")
            raw_keys = table["keys"]
            if isinstance(raw_keys, str):
                raw_keys = [raw_keys]
            if not isinstance(raw_keys, list) or not raw_keys:
                self.fail((*path, "keys"), f"{who}: keys must be a non-empty array of OpenSSH public key lines, "
                                           f"not {_kind(raw_keys)}")
            keys: list[AuthorizedKey] = []
            for number, line in enumerate(cast(list[Any], raw_keys), start=1):
                where = self._key_line(line, (*path, "keys"))
                if not isinstance(line, str):
                    self.fail((*path, "keys"), f"{who}: key #{number} must be a string, not {_kind(line)}", where)
                try:
                    key = parse_public_key(line)
                except ValueError as exc:
                    self.fail((*path, "keys"), f"{who}: key #{number} {exc}", where)
                    raise AssertionError from exc
                if key.blob in owners:
                    owner, at = owners[key.blob]
                    whose = "listed twice for this user" if owner == name else f"already user {_q(owner)}'s"
                    earlier = f" (line {at})" if at else ""
                    self.fail((*path, "keys"), f"{who}: key #{number} ({key.fingerprint}) is {whose}{earlier}: "
                                               "a key decides who someone is, so it belongs to one user", where)
                owners[key.blob] = (name, where)
                keys.append(key)
            users.append(User(name, cast(Role, role), tuple(keys)))
        return tuple(users)

    def _key_line(self, line: object, keys_path: tuple[Any, ...]) -> int | None:
        """The line a key string is written on (keys arrays often span lines), else the `keys =` line."""
        start = self.lines.line(keys_path)
        if isinstance(line, str) and line.split() and start is not None:
            needle = line.split()[1] if len(line.split()) > 1 else line.split()[0]
            for number, text in enumerate(self.text.split("\n"), start=1):
                if number >= start and needle in text:
                    return number
        return start


def parse_serve(text: str, path: Path | None) -> ServeConfig:
    """The `[serve]` and `[[user]]` tables of an inventory text (the nodes are console.config's)."""
    label = str(path) if path is not None else "<inventory>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, label) from None
    base = Path(os.path.abspath(Path(path).expanduser())).parent if path is not None else Path.cwd()
    reader = _ServeReader(text, label)
    settings = reader.serve(data, base)
    users = reader.users(data.get("user"))
    settings.setdefault("host_key", base / DEFAULT_HOST_KEY)
    return ServeConfig(users=users, source=label, **settings)


def load_serve(path: str | Path) -> ServeConfig:
    label = str(path)
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError("inventory file not found", file=label) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not an inventory file", file=label) from None
    except OSError as exc:
        raise ConfigError(f"cannot read inventory: {exc.strerror or exc}", file=label) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (bad byte at offset {exc.start})", file=label,
                          line=raw[: exc.start].count(b"\n") + 1) from None
    return parse_serve(text, Path(label))
