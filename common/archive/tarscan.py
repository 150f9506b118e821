"""An incremental (push) tar parser that describes every member and hashes its content.

``TarScanner.feed(chunk)`` takes the tar stream in chunks of any size, as they pass by on
their way to a compressor or to ``tar -x``; it never holds more than one header in memory
and hashes member data straight from the chunks (no copies). For each member it emits a
``TarEntry`` once the member's data has gone by, with the sha256 of the member's *logical*
content: for a sparse file the holes count as zeros, so the digest equals ``sha256sum`` of
the restored file.

Understood: ustar / POSIX pax (``x`` and global ``g`` headers, ``SCHILY.xattr.*`` and
``LIBARCHIVE.xattr.*`` xattrs, sparse formats 0.0, 0.1 and 1.0) and the GNU extensions
(``L``/``K`` long names, ``S`` old sparse files, base-256 numbers). That covers what GNU
tar, bsdtar and Go's archive/tar (Docker's archive API) write.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from common.errors import IntegrityError

BLOCK = 512
_ZEROS = bytes(1 << 20)
_ZERO_BLOCK = bytes(BLOCK)

TYPES = {
    b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
    b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo", b"D": "dir", b"S": "file",
}


DataSink = Callable[[memoryview], object]


def _both(a: DataSink, b: DataSink) -> DataSink:
    def sink(data: memoryview) -> None:
        a(data)
        b(data)
    return sink


def _mtime_ns(text: bytes) -> int:
    """Nanoseconds of a pax ``mtime`` record (decimal seconds, maybe negative) exactly."""
    whole, _, frac = text.strip().partition(b".")
    negative = whole.startswith(b"-")
    ns = abs(int(whole or b"0")) * 1_000_000_000 + int((frac[:9] or b"0").ljust(9, b"0"))
    return -ns if negative else ns


class TarFormatError(IntegrityError):
    """The byte stream is not a well-formed tar archive (corrupt, truncated or not tar)."""


@dataclass
class TarEntry:
    """One member of a tar archive, as recorded in a manifest."""

    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    link: str | None = None
    sha256: str | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    sparse: bool = False
    devmajor: int = 0
    devminor: int = 0
    mtime_ns: int = 0  # exact, from the pax record's decimal text (``mtime`` is a float)


def _num(field_: bytes, what: str) -> int:
    """Decode a numeric header field: octal text, or GNU base-256 binary."""
    if field_ and field_[0] & 0x80:
        value = int.from_bytes(field_[1:], "big")
        if field_[0] & 0x40:  # negative base-256
            value -= 1 << (8 * (len(field_) - 1))
        return value
    text = field_.split(b"\0", 1)[0]
    try:
        return int(text, 8)  # int() itself ignores surrounding spaces
    except ValueError:
        text = text.strip(b" \0")
        if not text:
            return 0
        try:
            return int(text, 8)
        except ValueError:
            raise TarFormatError(f"tar header has an invalid {what} field {text!r}",
                                 "the archive is corrupt or not a tar archive") from None


def _str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(field_: bytes) -> bytes:
    return field_.split(b"\0", 1)[0]


def _parse_pax(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split pax extended header records (``"%d %s=%s\\n"``) into (key, value) pairs."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data) and data[pos] != 0:
        sp = data.find(b" ", pos)
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarFormatError("pax header has a malformed record",
                                 "the archive is corrupt") from None
        if sp < 0 or length <= 0 or pos + length > len(data):
            raise TarFormatError("pax header has a malformed record", "the archive is corrupt")
        record = data[sp + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        out.append((key, value))
        pos += length
    return out


def _check_header(hdr: bytes) -> None:
    stored = _num(hdr[148:156], "checksum")
    computed = sum(hdr) - sum(hdr[148:156]) + 8 * 32
    if stored != computed:
        signed = sum(b - 256 if b > 127 else b for b in hdr[:148] + hdr[156:]) + 256
        if stored != signed:
            raise TarFormatError("tar header checksum mismatch",
                                 "the archive is corrupt or not a tar archive")


class TarScanner:
    """Parse a tar stream pushed in with ``feed``; call ``on_entry`` for each member.

    ``hash_content=False`` skips hashing (sha256 stays None). ``close()`` raises
    TarFormatError when the stream stopped before the end-of-archive marker.
    ``on_start``, when given, is called with each member before its data goes by; for a
    regular file it may return a sink that receives the member's logical content (holes of
    sparse members as zeros) in pieces, as memoryviews valid only during the call.
    """

    def __init__(self, on_entry: Callable[[TarEntry], None], hash_content: bool = True,
                 on_start: Callable[[TarEntry], DataSink | None] | None = None) -> None:
        self.on_entry = on_entry
        self.hash_content = hash_content
        self.on_start = on_start
        self.finished = False
        self.members = 0
        self._cur: memoryview = memoryview(b"")
        self._pos = 0
        self._global: dict[bytes, bytes] = {}
        self._gen = self._run()
        next(self._gen)

    # --- input plumbing ----------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse the next piece of the stream."""
        if self.finished or not data:
            return
        self._cur = memoryview(data).cast("B")
        self._pos = 0
        try:
            self._gen.send(None)
        except StopIteration:
            self.finished = True

    def close(self) -> None:
        """Check that the whole archive went by."""
        if not self.finished:
            raise TarFormatError("tar stream ended before the end-of-archive marker",
                                 "the archive is truncated; the source stopped early")

    def _take(self, n: int) -> bytes | None:
        """``n`` bytes if the current chunk holds them all (the common case), else None."""
        pos = self._pos
        if len(self._cur) - pos < n:
            return None
        self._pos = pos + n
        return bytes(self._cur[pos : pos + n])

    def _consume(self, n: int, sink: Callable[[memoryview], object] | None) -> int:
        """Pass on (or skip) up to ``n`` bytes of the current chunk; how many are left."""
        pos = self._pos
        take = min(n, len(self._cur) - pos)
        if take > 0:
            if sink is not None:
                sink(self._cur[pos : pos + take])
            self._pos = pos + take
            return n - take
        return n

    def _read(self, n: int) -> Generator[None, None, bytes]:
        avail = len(self._cur) - self._pos
        if avail >= n:
            self._pos += n
            return bytes(self._cur[self._pos - n : self._pos])
        parts = bytearray()
        while len(parts) < n:
            if self._pos >= len(self._cur):
                yield
                continue
            take = min(n - len(parts), len(self._cur) - self._pos)
            parts += self._cur[self._pos : self._pos + take]
            self._pos += take
        return bytes(parts)

    def _stream(self, n: int, sink: Callable[[memoryview], object] | None) -> Generator[None]:
        while n > 0:
            if self._pos >= len(self._cur):
                yield
                continue
            take = min(n, len(self._cur) - self._pos)
            if sink is not None:
                sink(self._cur[self._pos : self._pos + take])
            self._pos += take
            n -= take

    # --- the parser ----------------------------------------------------------------------
    def _run(self) -> Generator[None]:
        yield
        pax: list[tuple[bytes, bytes]] = []
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            hdr = self._take(BLOCK)
            if hdr is None:
                hdr = yield from self._read(BLOCK)
            if hdr == _ZERO_BLOCK:
                return  # end-of-archive marker (the second zero block is optional)
            _check_header(hdr)
            typeflag = hdr[156:157]
            size = _num(hdr[124:136], "size")
            padded = -size % BLOCK
            if typeflag in (b"x", b"g", b"L", b"K"):
                data = self._take(size + padded)
                if data is not None:
                    data = data[:size]
                else:
                    data = yield from self._read(size)
                    yield from self._stream(padded, None)
                if typeflag == b"x":
                    pax = _parse_pax(data)
                elif typeflag == b"g":
                    self._global.update(_parse_pax(data))
                elif typeflag == b"L":
                    longname = _cstr(data)
                else:
                    longlink = _cstr(data)
                continue
            if self._global:
                records = dict(self._global)
                records.update(pax)
            else:
                records = dict(pax)
            if b"size" in records:
                size = int(records[b"size"])
                padded = -size % BLOCK
            entry, sparse_map, realsize = self._describe(hdr, typeflag, size, records, pax,
                                                         longname, longlink)
            if typeflag == b"S":
                sparse_map, realsize = yield from self._old_gnu_sparse(hdr)
                entry.sparse = True
                entry.size = realsize
            pax, longname, longlink = [], None, None
            hasher = hashlib.sha256() if self.hash_content and entry.type == "file" else None
            sink: DataSink | None = hasher.update if hasher is not None else None
            if self.on_start is not None:
                extra = self.on_start(entry)
                if extra is not None and entry.type == "file":
                    sink = extra if sink is None else _both(sink, extra)
            if entry.sparse:
                stored = size
                if sparse_map is None:  # format 1.0: the map leads the data section
                    sparse_map, maplen = yield from self._sparse_map_10()
                    stored -= maplen
                pos = 0
                for offset, length in sparse_map:
                    if offset < pos or length > stored:
                        raise TarFormatError(f"sparse map of {entry.path!r} is inconsistent",
                                             "the archive is corrupt")
                    self._zeros(offset - pos, sink)
                    yield from self._stream(length, sink)
                    stored -= length
                    pos = offset + length
                self._zeros(realsize - pos, sink)
                yield from self._stream(stored, None)
            else:  # sink is None unless the member is a file being hashed
                rest = self._consume(size, sink)
                if rest:
                    yield from self._stream(rest, sink)
            rest = self._consume(padded, None)
            if rest:
                yield from self._stream(rest, None)
            if hasher is not None:
                entry.sha256 = hasher.hexdigest()
            self.members += 1
            self.on_entry(entry)

    @staticmethod
    def _zeros(n: int, sink: Callable[[memoryview], object] | None) -> None:
        if sink is None:
            return
        while n > 0:
            take = min(n, len(_ZEROS))
            sink(memoryview(_ZEROS)[:take])
            n -= take

    def _describe(
        self, hdr: bytes, typeflag: bytes, size: int, records: dict[bytes, bytes],
        pax: list[tuple[bytes, bytes]], longname: bytes | None, longlink: bytes | None,
    ) -> tuple[TarEntry, list[tuple[int, int]] | None, int]:
        name = _cstr(hdr[0:100])
        magic = hdr[257:263]
        if magic == b"ustar\0" and hdr[345] != 0:
            name = _cstr(hdr[345:500]) + b"/" + name
        if longname is not None:
            name = longname
        name = records.get(b"path", name)
        kind = TYPES.get(typeflag, "file")
        if kind == "file" and name.endswith(b"/") and typeflag == b"\0":
            kind = "dir"
        mtime_raw = records.get(b"mtime")
        try:
            mtime_ns = _mtime_ns(mtime_raw) if mtime_raw else \
                _num(hdr[136:148], "mtime") * 1_000_000_000
        except ValueError:
            raise TarFormatError(f"pax mtime {mtime_raw!r} is malformed",
                                 "the archive is corrupt") from None
        mtime = float(mtime_raw) if mtime_raw else float(_num(hdr[136:148], "mtime"))
        xattrs: dict[str, bytes] = {}
        for key, value in records.items():
            if key.startswith(b"SCHILY.xattr."):
                xattrs[_str(key[13:])] = value
            elif key.startswith(b"LIBARCHIVE.xattr."):
                xattr_name = urllib.parse.unquote_to_bytes(key[17:])
                xattrs[_str(xattr_name)] = base64.b64decode(value + b"==")
        sparse_map: list[tuple[int, int]] | None = None
        realsize = size
        is_sparse = False
        if records and (b"GNU.sparse.major" in records or b"GNU.sparse.map" in records
                        or b"GNU.sparse.offset" in records):
            is_sparse = True
            name = records.get(b"GNU.sparse.name", name)
            realsize = int(records.get(b"GNU.sparse.realsize",
                                       records.get(b"GNU.sparse.size", realsize)))
            if b"GNU.sparse.map" in records:  # format 0.1
                nums = [int(x) for x in records[b"GNU.sparse.map"].split(b",") if x]
                sparse_map = list(zip(nums[0::2], nums[1::2], strict=True))
            elif records.get(b"GNU.sparse.major") != b"1":  # format 0.0
                offs = [int(v) for k, v in pax if k == b"GNU.sparse.offset"]
                lens = [int(v) for k, v in pax if k == b"GNU.sparse.numbytes"]
                sparse_map = list(zip(offs, lens, strict=True))
        if kind != "file" and kind != "dir":
            realsize = 0
        text = _str(name)
        if len(text) > 1 and text.endswith("/"):
            text = text.rstrip("/") or "/"
        entry = TarEntry(
            path=text,
            type=kind,
            size=realsize if kind == "file" else 0,
            mode=_num(hdr[100:108], "mode") & 0o7777,
            uid=int(records[b"uid"]) if b"uid" in records else _num(hdr[108:116], "uid"),
            gid=int(records[b"gid"]) if b"gid" in records else _num(hdr[116:124], "gid"),
            mtime=mtime,
            link=_str(records.get(b"linkpath", longlink if longlink is not None
                                  else _cstr(hdr[157:257])))
            if kind in ("symlink", "hardlink") else None,
            xattrs=xattrs,
            sparse=is_sparse,
            mtime_ns=mtime_ns,
        )
        if kind in ("char", "block"):
            entry.devmajor = _num(hdr[329:337], "devmajor")
            entry.devminor = _num(hdr[337:345], "devminor")
        return entry, sparse_map, realsize

    def _sparse_map_10(self) -> Generator[None, None, tuple[list[tuple[int, int]], int]]:
        """Read a format-1.0 sparse map (decimal lines padded to a block) from the data."""
        buf = b""
        consumed = 0
        numbers: list[int] = []
        count: int | None = None
        while count is None or len(numbers) < 2 * count:
            if b"\n" not in buf:
                buf += yield from self._read(BLOCK)
                consumed += BLOCK
                continue
            line, buf = buf.split(b"\n", 1)
            try:
                value = int(line)
            except ValueError:
                raise TarFormatError("sparse map is malformed", "the archive is corrupt") from None
            if count is None:
                count = value
            else:
                numbers.append(value)
        return list(zip(numbers[0::2], numbers[1::2], strict=True)), consumed

    def _old_gnu_sparse(
        self, hdr: bytes
    ) -> Generator[None, None, tuple[list[tuple[int, int]], int]]:
        """Read the sparse map of an old GNU ``S`` member (in the header + extension blocks)."""
        out: list[tuple[int, int]] = []

        def collect(block: bytes, start: int, count: int) -> None:
            for i in range(count):
                off = block[start + 24 * i : start + 24 * i + 12]
                if off[0] == 0:
                    return
                out.append((_num(off, "sparse offset"),
                            _num(block[start + 24 * i + 12 : start + 24 * i + 24], "sparse size")))

        collect(hdr, 386, 4)
        extended = hdr[482]
        while extended:
            ext = yield from self._read(BLOCK)
            collect(ext, 0, 21)
            extended = ext[504]
        return out, _num(hdr[483:495], "realsize")
