"""Masking secrets before anything reaches the audit log or a summary line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL", "AUTH", "PRIVATE")
_SECRET_NAME = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)
_URL_CREDS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]+)@")
_WORDS = "|".join(_SECRET_WORDS)
_ASSIGN = re.compile(
    rf"(?P<name>[A-Za-z0-9_.-]*(?:{_WORDS})[A-Za-z0-9_.-]*)(?P<sep>\s*[=:]\s*|\s+)(?P<value>\"[^\"]*\"|'[^']*'|\S+)",
    re.IGNORECASE)


def secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def mask_text(text: str) -> str:
    """URL credentials and NAME=value pairs with a secret-looking name lose their value."""
    text = _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _ASSIGN.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


def mask_env(env: list[str] | None) -> list[str]:
    """Environment entries keep their names; values of secret-looking names are masked."""
    out = []
    for item in env or []:
        name, eq, _ = item.partition("=")
        out.append(f"{name}={MASK}" if eq and secret_name(name) else mask_text(item))
    return out


def mask(obj: Any) -> Any:
    """A deep copy of ``obj`` safe to write down: secret-looking keys masked, strings scrubbed."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = str(k)
            if key in ("Env", "env") and isinstance(v, list):
                out[key] = mask_env(v)
            elif secret_name(key) and isinstance(v, str | bytes | int | float) and not isinstance(v, bool):
                out[key] = MASK
            else:
                out[key] = mask(v)
        return out
    if isinstance(obj, list | tuple):
        return [mask(v) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj)
    return obj
