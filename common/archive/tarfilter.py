"""Leaving excluded members out of a tar stream, for the archives of volumes reachable only
through Docker's archive API (GNU tar leaves them out itself on the direct path).

``filter_tar(src, excludes)`` is a readable stream: the members of ``src`` whose
volume-relative path ``excludes`` matches are dropped — header blocks (with the ``x``
pax and ``L``/``K`` long-name headers that belong to them) and data — and so is
everything below an excluded directory and a hardlink to a dropped file; the rest passes
byte for byte. It understands what Go's archive/tar (dockerd) writes: ustar headers, pax
``x`` and ``g`` headers, GNU long names. Sparse members are refused (IntegrityError),
as is a stream that ends early. ``left_out`` lists the excluded paths (a directory once).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from common.archive.excludes import Excludes
from common.archive.tarfields import BLOCK, check_header, cstr, number, pax_int, pax_records
from common.errors import IntegrityError

_HINT = "back the volume up without excludes, or with --format repo"
_CHUNK = 1 << 20


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _parts(name: bytes) -> tuple[str, ...]:
    text = name.decode("utf-8", "surrogateescape")
    return tuple(p for p in text.split("/") if p not in ("", "."))


class FilteredTar:
    """A tar stream without the excluded members (see the module doc); ``read`` only."""

    def __init__(self, src: BinaryIO, excludes: Excludes) -> None:
        self.src = src
        self.excludes = excludes
        self.left_out: list[str] = []
        self._dropped_files: set[tuple[str, ...]] = set()
        self._dropped_dirs: set[tuple[str, ...]] = set()
        self._chunks = self._run()
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        out = [self._buf]
        size = len(self._buf)
        while n < 0 or size < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            out.append(chunk)
            size += len(chunk)
        data = b"".join(out)
        if n < 0:
            self._buf = b""
            return data
        self._buf = data[n:]
        return data[:n]

    def _exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            piece = self.src.read(min(n - got, _CHUNK))
            if not piece:
                raise IntegrityError("the volume's tar stream ended inside a member", _HINT)
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def _copy(self, n: int) -> Iterator[bytes]:
        while n > 0:
            piece = self._exact(min(n, _CHUNK))
            n -= len(piece)
            yield piece

    def _below_dropped(self, parts: tuple[str, ...]) -> bool:
        """Whether ``parts`` is an excluded directory or below one."""
        return bool(self._dropped_dirs) and any(
            parts[:i] in self._dropped_dirs for i in range(1, len(parts) + 1))

    def _run(self) -> Iterator[bytes]:
        meta = b""
        path: bytes | None = None
        link: bytes | None = None
        size: int | None = None
        while True:
            hdr = self.src.read(BLOCK)
            if len(hdr) < BLOCK:
                hdr += self._exact(BLOCK - len(hdr)) if hdr else b""
            if not hdr or hdr == bytes(BLOCK):  # the end: pass the rest on as it is
                yield hdr
                while rest := self.src.read(_CHUNK):
                    yield rest
                return
            check_header(hdr)
            flag = hdr[156:157]
            length = number(hdr[124:136], "size")
            if flag in (b"x", b"L", b"K", b"g"):
                data = self._exact(_padded(length))
                if flag == b"g":
                    yield hdr + data
                    continue
                meta += hdr + data
                if flag == b"x":
                    for key, value in pax_records(data[:length]):
                        if key == b"path":
                            path = value
                        elif key == b"linkpath":
                            link = value
                        elif key == b"size":
                            size = pax_int(value, key)
                        elif key.startswith(b"GNU.sparse."):
                            raise IntegrityError("the volume's tar stream has a sparse "
                                                 "member, which excludes cannot filter", _HINT)
                elif flag == b"L":
                    path = cstr(data[:length])
                else:
                    link = cstr(data[:length])
                continue
            if flag == b"S":
                raise IntegrityError("the volume's tar stream has a sparse member, which "
                                     "excludes cannot filter", _HINT)
            name = path if path is not None else _ustar_name(hdr)
            target = link if link is not None else cstr(hdr[157:257])
            data_len = _padded(length if size is None else size) \
                if flag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
            keep = self._keep(_parts(name), flag, _parts(target))
            if keep:
                yield meta + hdr
                yield from self._copy(data_len)
            else:
                for _ in self._copy(data_len):
                    pass
            meta, path, link, size = b"", None, None, None

    def _keep(self, parts: tuple[str, ...], flag: bytes, target: tuple[str, ...]) -> bool:
        if not parts:
            return True  # the volume root
        is_dir = flag == b"5"
        if self._below_dropped(parts):
            return False
        if flag == b"1" and (target in self._dropped_files or self._below_dropped(target)):
            self._dropped_files.add(parts)
            return False
        if not self.excludes.matches("/".join(parts), is_dir):
            return True
        self.left_out.append("/".join(parts))
        if is_dir:
            self._dropped_dirs.add(parts)
        else:
            self._dropped_files.add(parts)
        return False


def _ustar_name(hdr: bytes) -> bytes:
    name = cstr(hdr[0:100])
    if hdr[257:262] == b"ustar":
        prefix = cstr(hdr[345:500])
        if prefix:
            return prefix + b"/" + name
    return name


def filter_tar(src: BinaryIO, excludes: Excludes) -> FilteredTar:
    """``src`` without what ``excludes`` matches (see the module doc)."""
    return FilteredTar(src, excludes)
