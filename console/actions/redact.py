"""The one masking policy: what is a secret in any text Berth shows or stores.

Applied wherever text is written down or put on a screen: audit records (evidence included:
an isolate's ``logs_tail``), the console's detail view (env, command, labels), the logs view,
the CLI's plans, errors and audit listing, the console's activity line. One rule, so the screen
and the audit log can never disagree about a value.

- ``NAME=value``, ``NAME: value``, ``"NAME":value``, ``--name value`` where NAME looks secret (key,
  token, secret, password, auth, session, cookie, ...): the value is masked whole, quoted or not.
  ``name:value`` with no space is an image tag or host:port and is left alone (unless the name
  is a secret word itself: ``password:x``).
- Credential headers (``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``)
  lose everything after the header name to the end of the line: a cookie header holds many
  ``a=b;`` pairs, and an auth header's scheme (``Bearer``) is followed by the token itself.
- A bearer token anywhere (``Bearer x``), JSON web tokens, URL passwords.
- Environment entries also mask long opaque values (32+ letters and digits) whatever the name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "PASS", "CREDENTIAL", "AUTH",
                 "PRIVATE", "SESSION", "COOKIE", "SIGNATURE", "CSRF", "XSRF", "DSN")
_WORDS = "|".join(_SECRET_WORDS)
_SECRET_NAME = re.compile(_WORDS, re.IGNORECASE)
# Headers whose whole value is the credential, however many words or `a=b;` pairs it has.
_WHOLE_LINE = re.compile(r"(?:proxy-)?authori[sz]ation|(?:set-)?cookie2?", re.IGNORECASE)
_SCHEMES = r"(?:Bearer|Basic|Digest|Token|Negotiate|NTLM|Bot|AWS4-HMAC-SHA256|OAuth|ApiKey)"
_URL_CREDS = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]+)@")
_ASSIGN = re.compile(
    rf"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]*(?:{_WORDS})[A-Za-z0-9_.-]*)(?P<q>[\"']?)(?P<sep>\s*[=:]\s*|\s+)"
    rf"(?P<rest>[^\r\n]*)", re.IGNORECASE)
_BEARER = re.compile(r"\b(?P<scheme>Bearer)\s+(?!\*\*\*)[^\s\"',;]+", re.IGNORECASE)
_SCHEME_VALUE = re.compile(rf"{_SCHEMES}\s+[^\s\"',;]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_LONG_OPAQUE = re.compile(r"(?=[^\n]*\d)(?=[^\n]*[A-Za-z])[A-Za-z0-9+/=_\-.]{32,}")


def secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _value_end(rest: str, whole_line: bool, opener: str) -> int:
    """How much of ``rest`` (what follows NAME=) is the secret value; ``opener`` is the quote the
    whole NAME=value stands in, if any (``-H "Cookie: a=1; b=2"``): the value ends before it."""
    if rest[:1] in ("'", '"'):
        close = rest.find(rest[0], 1)
        return len(rest) if close < 0 else close + 1
    if whole_line:
        close = rest.find(opener) if opener else -1
        return len(rest) if close < 0 else close
    scheme = _SCHEME_VALUE.match(rest)
    if scheme:
        return scheme.end()
    m = re.match(r"\S*", rest)
    return m.end() if m else 0


def _assign(m: re.Match[str]) -> str:
    name, quote, sep, rest = m["name"], m["q"], m["sep"], m["rest"]
    if not rest or rest.startswith(MASK):
        return m.group()
    if not sep.strip() and not name.startswith("-") and not _WHOLE_LINE.fullmatch(name):
        # "NAME value" (no = or :) is only taken for flags (--password x) and credential headers:
        # prose such as "token refresh failed" keeps its words
        return m.group()
    header = bool(_WHOLE_LINE.fullmatch(name))
    if sep.strip() == ":" and not quote and not header and sep[-1:] not in (" ", "\t") \
            and name.strip("-_.").upper() not in _SECRET_WORDS:
        # "name:value" with nothing between is an image tag or host:port (auth-proxy:v2,
        # session-db:5432), not an assignment; "token: x" and '"token":"x"' are
        return m.group()
    whole = sep.strip() == ":" and header
    before = m.string[m.start() - 1] if m.start() else ""
    end = _value_end(rest, whole, before if before in ("'", '"') else "")
    value = rest[:end]
    masked = MASK
    if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) > 1:
        masked = f"{value[0]}{MASK}{value[0]}"
    tail = rest[end:]
    # what follows the value may hold more pairs: mask those too
    return f"{name}{quote}{sep}{masked}{mask_text(tail) if tail else ''}"


# Every rule below needs one of these: most text (log lines, names) has none and is returned as
# is, after a few substring searches (a regex alternation ignoring case costs 10-50x more).
_NEEDLES = tuple(w.lower() for w in _SECRET_WORDS) + ("://", "eyj", "bearer")


def mask_text(text: str) -> str:
    """Free text (log lines, commands, labels, errors, reasons) with every secret masked."""
    if not text:
        return text
    low = text.lower()
    if not any(needle in low for needle in _NEEDLES):
        return text
    if "://" in text:
        text = _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    if "eyJ" in text:
        text = _JWT.sub(MASK, text)
    text = "\n".join(_ASSIGN.sub(_assign, line) for line in text.split("\n")) if "\n" in text \
        else _ASSIGN.sub(_assign, text)
    return _BEARER.sub(lambda m: f"{m['scheme']} {MASK}", text)


def mask_env_entry(entry: str) -> str:
    """One ``NAME=value`` environment entry: the name kept, the value masked when the name looks
    secret, when the value is a long opaque string, and wherever mask_text would."""
    name, eq, value = entry.partition("=")
    if not eq or not value:
        return mask_text(entry) if not eq else entry
    if secret_name(name):
        return f"{name}={MASK}"
    if _LONG_OPAQUE.fullmatch(value) and not value.startswith("/"):
        return f"{name}={MASK}"
    return f"{name}={mask_text(value)}"


def mask_env(env: list[str] | None) -> list[str]:
    """Environment entries keep their names; secret values are masked (mask_env_entry)."""
    return [mask_env_entry(str(item)) for item in env or []]


def mask_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    """Labels are NAME=value pairs too: the same rule as the environment."""
    out = {}
    for k, v in labels.items():
        name, _, value = mask_env_entry(f"{k}={v}").partition("=")
        out[name] = value
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
