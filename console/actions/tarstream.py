"""A streaming tar reader that passes an archive through, remembering and optionally dropping entries.

Used to copy a volume or writable-layer path twice: once while the container runs (everything,
recording each entry's metadata) and once after it stopped (only entries that changed since),
without ever holding a file in memory. Understands ustar, PAX (x/g) and GNU long names (L/K),
which is what the Engine's archive endpoint (Go's archive/tar) writes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

BLOCK = 512
_DATA_LESS = frozenset(b"123456")  # hard link, symlink, char, block, dir, fifo


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    type: str  # tar typeflag: "0" file, "5" dir, "2" symlink, ...
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    link: str

    @property
    def key(self) -> tuple[str, int, int, int, int, int, str]:
        """What the quick check compares (mtime to the second, as the Engine's tar writes it)."""
        return (self.type, self.size, self.mode, self.uid, self.gid, int(self.mtime), self.link)


def _num(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256, for values octal cannot hold
        value = int.from_bytes(field, "big", signed=False) & ~(0x80 << (8 * (len(field) - 1)))
        return value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[sp + 1:pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def normalize(path: str) -> str:
    path = path.lstrip("/")
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/")


class TarFilter:
    """Feed archive bytes in, get (possibly fewer) archive bytes out.

    ``keep(entry)`` decides per entry (None keeps all); every entry seen is recorded in ``entries``
    under ``prefix + normalized path``.
    """

    def __init__(self, keep: Callable[[Entry], bool] | None = None, prefix: str = "") -> None:
        self.keep = keep
        self.prefix = prefix.rstrip("/")
        self.entries: dict[str, Entry] = {}
        self.kept = 0
        self.dropped = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._hdr = bytearray()
        self._data_left = 0
        self._emit = True
        self._ext_left = 0
        self._ext_kind = b""
        self._ext_buf = bytearray()
        self._ext_size = 0
        self._pending = bytearray()  # raw extension headers belonging to the next entry
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.bytes_in += len(data)
        out: list[bytes] = []
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n and not self.done:
            if self._data_left:
                take = min(self._data_left, n - pos)
                if self._emit:
                    out.append(bytes(view[pos:pos + take]))
                self._data_left -= take
                pos += take
                continue
            if self._ext_left:
                take = min(self._ext_left, n - pos)
                chunk = bytes(view[pos:pos + take])
                self._ext_buf += chunk
                self._pending += chunk
                self._ext_left -= take
                pos += take
                if not self._ext_left:
                    self._finish_ext()
                continue
            take = min(BLOCK - len(self._hdr), n - pos)
            self._hdr += view[pos:pos + take]
            pos += take
            if len(self._hdr) == BLOCK:
                header = bytes(self._hdr)
                self._hdr.clear()
                emitted = self._header(header)
                if emitted:
                    out.append(emitted)
        result = b"".join(out)
        self.bytes_out += len(result)
        return result

    def close(self) -> bytes:
        """The end-of-archive marker (the input's own marker is consumed, not forwarded)."""
        trailer = b"\0" * (2 * BLOCK)
        self.bytes_out += len(trailer)
        return trailer

    def _finish_ext(self) -> None:
        data = bytes(self._ext_buf[:self._ext_size])
        if self._ext_kind == b"x":
            self._pax.update(_pax(data))
        elif self._ext_kind == b"L":
            self._long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif self._ext_kind == b"K":
            self._long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        self._ext_buf.clear()

    def _header(self, header: bytes) -> bytes | None:
        if header == b"\0" * BLOCK:
            self.done = True
            return None
        kind = header[156:157]
        size = _num(header[124:136])
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if kind in (b"x", b"g", b"L", b"K"):
            self._pending += header
            self._ext_kind, self._ext_size, self._ext_left = kind, size, padded
            if not padded:
                self._finish_ext()
            return None
        name = _str(header[0:100])
        if header[257:262] == b"ustar":
            prefix = _str(header[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        path = self._pax.get("path") or self._long_name or name
        link = self._pax.get("linkpath") or self._long_link or _str(header[157:257])
        if "size" in self._pax:
            size = int(self._pax["size"])
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
        mtime = float(self._pax["mtime"]) if "mtime" in self._pax else float(_num(header[136:148]))
        uid = int(self._pax["uid"]) if "uid" in self._pax else _num(header[108:116])
        gid = int(self._pax["gid"]) if "gid" in self._pax else _num(header[116:124])
        typeflag = (kind or b"0").decode("latin-1").replace("\0", "0")
        entry = Entry(path=normalize(path), type=typeflag, size=size, mode=_num(header[100:108]) & 0o7777,
                      uid=uid, gid=gid, mtime=mtime, link=link)
        key = f"{self.prefix}/{entry.path}".replace("//", "/") if self.prefix else entry.path
        self.entries[key] = entry
        keep = self.keep is None or self.keep(entry)
        raw = bytes(self._pending) + header
        self._pending.clear()
        self._pax.clear()
        self._long_name = self._long_link = None
        self._data_left = 0 if kind and kind[0] in _DATA_LESS else padded
        self._emit = keep
        if keep:
            self.kept += 1
            return raw
        self.dropped += 1
        return None


async def filtered(source: AsyncIterator[bytes], tar: TarFilter, on_bytes: Callable[[int], None] | None = None
                   ) -> AsyncGenerator[bytes, None]:
    """Pipe ``source`` through ``tar``, counting input bytes; always ends with a proper trailer."""
    async for chunk in source:
        if on_bytes is not None:
            on_bytes(len(chunk))
        out = tar.feed(chunk)
        if out:
            yield out
    yield tar.close()
