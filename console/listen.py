"""Listen addresses for Berth's own servers (SSH, /metrics): ``HOST:PORT`` or ``[V6]:PORT``, checked once."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); a name is never assumed to be one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def parse_listen(text: object, example_port: int) -> Listen:
    """``HOST:PORT`` or ``[V6]:PORT`` (port 0: any free port); ValueError says what is wrong, with an
    example on ``example_port`` (the door's usual port)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"must be HOST:PORT, e.g. '127.0.0.1:{example_port}'")
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r} is not [HOST]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} has no port (write HOST:PORT, e.g. '127.0.0.1:{example_port}')")
        if ":" in host:
            raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. '[::1]:{example_port}'")
    if not host:
        raise ValueError(f"{text!r} has no host (127.0.0.1 for this machine, 0.0.0.0 for every address)")
    if not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port!r} is not a number from 0 to 65535")
    if not re.fullmatch(r"[A-Za-z0-9._:-]+", host):
        raise ValueError(f"{text!r}: host {host!r} is not a host name or address")
    return Listen(host, int(port))
