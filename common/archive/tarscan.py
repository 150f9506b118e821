"""An incremental (push) tar parser that describes every member and hashes its content.

``TarScanner.feed(chunk)`` takes the tar stream in chunks of any size, as they pass by on
their way to a compressor or to ``tar -x``; it never holds more than one header (at most
``MAX_META`` bytes of pax records or long names) in memory and hashes member data straight
from the chunks (no copies). For each member it emits a ``TarEntry`` once the member's
data has gone by, with the digest (``blake3`` or ``sha256``: ``DIGESTS``) of the member's
*logical* content: for a sparse file the holes count as zeros, so the digest equals
``b3sum`` (``sha256sum``) of the restored file.

Understood: ustar / POSIX pax (``x`` headers, ``SCHILY.xattr.*`` and
``LIBARCHIVE.xattr.*`` xattrs, sparse formats 0.0, 0.1 and 1.0) and the GNU extensions
(``L``/``K`` long names, ``S`` old sparse files, base-256 numbers). That covers what GNU
tar, bsdtar and Go's archive/tar (Docker's archive API) write.

The scanner is also the restore policy's eyes, so it must see exactly the members the
extractor (GNU tar, or Go's archive/tar behind dockerd) will create: whatever they could
read differently is refused with ``TarAmbiguityError`` (rules in ``tarmember`` and
``tarfields``). Here: no ``x``/``L``/``K`` header twice before one member, none dangling
before a ``g`` header or the end, global headers only with harmless keywords (Go ignores
them, GNU tar applies them), metadata headers capped at ``MAX_META``, and nothing but
zeros after the end-of-archive block (``tar -x`` stops at the first zero block, so any
member behind it would silently not be restored).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from typing import Literal

import blake3

from common.archive.tarfields import (
    BLOCK,
    MAX_META,
    TarAmbiguityError,
    TarFormatError,
    check_header,
    cstr,
    number,
    pax_int,
    pax_records,
)
from common.archive.tarmember import (
    TYPES,
    Member,
    TarEntry,
    check_sparse_map,
    describe,
    old_sparse_entries,
    text,
)

__all__ = ["BLOCK", "DIGESTS", "MAX_META", "TYPES", "DataSink", "Digest", "TarAmbiguityError",
           "TarEntry", "TarFormatError", "TarScanner", "check_digest"]

_ZEROS = bytes(1 << 20)
_ZERO_BLOCK = bytes(BLOCK)
_META = {b"x": "pax", b"g": "global pax", b"L": "GNU long-name", b"K": "GNU long-link"}
#: Global pax keywords GNU tar ignores as much as Go does (Go ignores global headers).
_GLOBAL_OK = frozenset({b"comment", b"charset", b"hdrcharset"})
#: Old GNU sparse extension blocks accepted for one member (21 map entries each).
_MAX_EXTENSIONS = MAX_META // BLOCK


DataSink = Callable[[memoryview], object]
#: Content digests a manifest may use, by the ``TarEntry`` field that holds them.
Digest = Literal["blake3", "sha256"]
DIGESTS: tuple[Digest, ...] = ("blake3", "sha256")


def check_digest(name: object) -> Digest:
    """``name`` if it is a known content digest, else TarFormatError."""
    if name not in DIGESTS:
        raise TarFormatError(f"unknown content digest {name!r}",
                             f"volkeeper knows {', '.join(DIGESTS)}; upgrade it")
    return name


def _both(a: DataSink, b: DataSink) -> DataSink:
    def sink(data: memoryview) -> None:
        a(data)
        b(data)
    return sink


class TarScanner:
    """Parse a tar stream pushed in with ``feed``; call ``on_entry`` for each member.

    ``hash_content=False`` skips hashing (the digests stay None); ``digest`` names the
    algorithm (``TarEntry.sha256`` or ``TarEntry.blake3`` is set). ``close()`` raises
    TarFormatError when the stream stopped before the end-of-archive marker.
    ``on_start``, when given, is called with each member before its data goes by; for a
    regular file it may return a sink that receives the member's logical content (holes of
    sparse members as zeros) in pieces, as memoryviews valid only during the call.
    """

    def __init__(self, on_entry: Callable[[TarEntry], None], hash_content: bool = True,
                 on_start: Callable[[TarEntry], DataSink | None] | None = None,
                 digest: Digest = "sha256") -> None:
        self.on_entry = on_entry
        self.hash_content = hash_content
        self.digest = check_digest(digest)
        self.on_start = on_start
        self.finished = False
        self.members = 0
        #: where the end-of-archive marker (its first zero block) starts in the stream,
        #: once ``finished``
        self.end_offset: int | None = None
        self._fed = 0  # stream bytes in the chunks before the current one
        self._refused = False
        self._cur: memoryview = memoryview(b"")
        self._pos = 0
        self._gen = self._run()
        next(self._gen)

    # --- input plumbing ----------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse the next piece of the stream."""
        if not data:
            return
        if self.finished:
            self._trailing(memoryview(data).cast("B"))
            return
        if self._refused:
            raise TarFormatError("the tar stream was refused already", "see the first error")
        self._fed += len(self._cur)
        self._cur = memoryview(data).cast("B")
        self._pos = 0
        try:
            self._gen.send(None)
        except StopIteration:
            self.finished = True
            self.end_offset = self._fed + self._pos - BLOCK
            self._trailing(self._cur[self._pos :])
        except BaseException:
            self._refused = True  # fail closed: never "finished" after a refusal
            raise

    @staticmethod
    def _trailing(rest: memoryview) -> None:
        """After the end-of-archive block only zeros (record padding) may follow."""
        if rest.tobytes().count(0) != len(rest):
            raise TarAmbiguityError(
                "the tar stream goes on after its end-of-archive block (GNU tar stops "
                "there and would silently not restore the rest)")

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
        pax: list[tuple[bytes, bytes]] | None = None
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            hdr = self._take(BLOCK)
            if hdr is None:
                hdr = yield from self._read(BLOCK)
            if hdr == _ZERO_BLOCK:
                if pax is not None or longname is not None or longlink is not None:
                    raise TarAmbiguityError("the tar stream ends right after a pax or GNU "
                                            "long-name header")
                return  # end-of-archive marker (the second zero block is optional)
            check_header(hdr)
            typeflag = hdr[156:157]
            size = number(hdr[124:136], "size")
            if size < 0:
                raise TarFormatError(f"tar header of {text(cstr(hdr[:100]))!r} has a "
                                     "negative size", "the archive is corrupt")
            if typeflag in _META:
                data = yield from self._meta(typeflag, size)
                if typeflag == b"g":
                    if pax is not None or longname is not None or longlink is not None:
                        raise TarAmbiguityError("a global pax header comes between a pax or "
                                                "long-name header and its member")
                    self._global(data)
                elif typeflag == b"x" and pax is None:
                    pax = pax_records(data)
                elif typeflag == b"L" and longname is None:
                    longname = self._long(data, typeflag)
                elif typeflag == b"K" and longlink is None:
                    longlink = self._long(data, typeflag)
                else:
                    raise TarAmbiguityError(f"two {_META[typeflag]} headers come before one "
                                            "tar member")
                continue
            member = describe(hdr, typeflag, size, pax or [], longname, longlink)
            pax, longname, longlink = None, None, None
            yield from self._member(member, hdr)

    def _meta(self, typeflag: bytes, size: int) -> Generator[None, None, bytes]:
        """The data of a pax/global/long-name header, at most ``MAX_META`` bytes."""
        if size > MAX_META:
            raise TarAmbiguityError(f"a {_META[typeflag]} header of {size} bytes (at most "
                                    f"{MAX_META} are accepted)")
        padded = -size % BLOCK
        data = self._take(size + padded)
        if data is not None:
            return data[:size]
        data = yield from self._read(size)
        yield from self._stream(padded, None)
        return data

    @staticmethod
    def _global(data: bytes) -> None:
        for key, _value in pax_records(data, "global pax header"):
            if key not in _GLOBAL_OK:
                raise TarAmbiguityError(
                    f"a global pax header sets {text(key)!r} for the members after it (GNU "
                    "tar applies it, Docker ignores it)")

    @staticmethod
    def _long(data: bytes, typeflag: bytes) -> bytes:
        name = cstr(data)
        if not name:
            raise TarAmbiguityError(f"a {_META[typeflag]} header is empty")
        return name

    def _member(self, member: Member, hdr: bytes) -> Generator[None]:
        """Hand the member to the callbacks and pass its data (and padding) by."""
        entry = member.entry
        size = member.stored
        padded = -size % BLOCK
        sparse_map = member.sparse_map
        if member.sparse == "old":
            sparse_map = yield from self._old_gnu_sparse(hdr, entry.path)
        hasher: blake3.blake3 | hashlib._Hash | None = None
        if self.hash_content and entry.type == "file":
            hasher = blake3.blake3() if self.digest == "blake3" else hashlib.sha256()
        sink: DataSink | None = hasher.update if hasher is not None else None
        if self.on_start is not None:
            extra = self.on_start(entry)
            if extra is not None and entry.type == "file":
                sink = extra if sink is None else _both(sink, extra)
        if member.sparse is not None:
            stored = size
            if sparse_map is None:  # format 1.0: the map leads the data section
                sparse_map, maplen = yield from self._sparse_map_10(entry.path, size)
                stored -= maplen
            check_sparse_map(entry.path, sparse_map, entry.size, stored)
            pos = 0
            for offset, length in sparse_map:
                self._zeros(offset - pos, sink)
                yield from self._stream(length, sink)
                pos = offset + length
        else:  # sink is None unless the member is a file being hashed
            rest = self._consume(size, sink)
            if rest:
                yield from self._stream(rest, sink)
        rest = self._consume(padded, None)
        if rest:
            yield from self._stream(rest, None)
        if hasher is not None:
            setattr(entry, self.digest, hasher.hexdigest())
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

    def _sparse_map_10(self, label: str, size: int
                       ) -> Generator[None, None, tuple[list[tuple[int, int]], int]]:
        """Read a format-1.0 sparse map (decimal lines padded to a block) from the data."""
        buf = b""
        consumed = 0
        numbers: list[int] = []
        count: int | None = None
        while count is None or len(numbers) < 2 * count:
            if b"\n" not in buf:
                consumed += BLOCK
                if consumed > min(size, MAX_META):
                    raise TarAmbiguityError(f"sparse map of {label!r} runs past its data or "
                                            f"beyond {MAX_META} bytes")
                buf += yield from self._read(BLOCK)
                continue
            line, buf = buf.split(b"\n", 1)
            value = pax_int(line, b"GNU sparse map")
            if count is None:
                count = value
            else:
                numbers.append(value)
        return list(zip(numbers[0::2], numbers[1::2], strict=True)), consumed

    def _old_gnu_sparse(self, hdr: bytes, label: str
                        ) -> Generator[None, None, list[tuple[int, int]]]:
        """Read the sparse map of an old GNU ``S`` member (in the header + extension blocks).
        GNU tar reads an extension block only after a full array, Go whenever the
        ``isextended`` flag is set: a flag after a short array is refused."""
        out, full = old_sparse_entries(hdr, 386, 4, label)
        extended = hdr[482]
        blocks = 0
        while extended:
            if not full or blocks >= _MAX_EXTENSIONS:
                raise TarAmbiguityError(f"old GNU sparse map of {label!r} is malformed")
            ext = yield from self._read(BLOCK)
            blocks += 1
            more, full = old_sparse_entries(ext, 0, 21, label)
            out += more
            extended = ext[504]
        return out
