"""Hand-made tar blocks for hostile-archive tests: headers with any field value, pax and
GNU long-name headers, a member hidden in another member's "data"."""

from __future__ import annotations

BLOCK = 512
USTAR = b"ustar\x0000"
GNU = b"ustar  \0"
V7 = bytes(8)
END = bytes(2 * BLOCK)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def set_checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)


def header(name: str | bytes, typeflag: bytes, size: int = 0, *, link: str | bytes = b"",
           magic: bytes = USTAR, size_field: bytes | None = None, devmajor: int = 0,
           devminor: int = 0, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 0,
           patch: dict[int, bytes] | None = None, checksum: bool = True) -> bytes:
    """One 512-byte header block; ``patch`` overwrites bytes at offsets before the
    checksum is computed (unless ``checksum`` is False)."""
    raw_name = name.encode() if isinstance(name, str) else name
    raw_link = link.encode() if isinstance(link, str) else link
    b = bytearray(BLOCK)
    b[0 : len(raw_name[:100])] = raw_name[:100]
    b[100:108] = octal(mode, 8)
    b[108:116] = octal(uid, 8)
    b[116:124] = octal(gid, 8)
    b[124:136] = size_field if size_field is not None else octal(size, 12)
    b[136:148] = octal(mtime, 12)
    b[156:157] = typeflag
    b[157 : 157 + len(raw_link[:100])] = raw_link[:100]
    b[257:265] = magic
    if magic != V7:
        b[329:337] = octal(devmajor, 8)
        b[337:345] = octal(devminor, 8)
    for at, data in (patch or {}).items():
        b[at : at + len(data)] = data
    if checksum:
        set_checksum(b)
    return bytes(b)


def record(key: str | bytes, value: str | bytes) -> bytes:
    """One well-formed pax record."""
    k = key.encode() if isinstance(key, str) else key
    v = value.encode() if isinstance(value, str) else value
    body = b" " + k + b"=" + v + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax(*records: bytes, typeflag: bytes = b"x", declared: int | None = None) -> bytes:
    """A pax extended header (``x``; ``g`` for a global one) holding ``records``."""
    payload = b"".join(records)
    size = len(payload) if declared is None else declared
    return header("PaxHeaders/x", typeflag, size) + padded(payload)


def long_name(name: str | bytes, typeflag: bytes = b"L", declared: int | None = None) -> bytes:
    """A GNU long-name (``L``) or long-link (``K``) header and its data."""
    raw = (name.encode() if isinstance(name, str) else name) + b"\0"
    size = len(raw) if declared is None else declared
    return header("././@LongLink", typeflag, size, magic=GNU) + padded(raw)


def member(name: str, typeflag: bytes = b"0", data: bytes = b"", **kw: object) -> bytes:
    """A header and its (padded) data; ``size`` defaults to ``len(data)``."""
    size = kw.pop("size", len(data))
    return header(name, typeflag, size, **kw) + padded(data)  # type: ignore[arg-type]


def hiding(kind: bytes, hidden: bytes, name: str = "cover", **kw: object) -> bytes:
    """A member of type ``kind`` whose declared size covers ``hidden`` (a complete
    member): GNU tar and Go ignore that size and extract ``hidden``."""
    body = padded(hidden)
    return header(name, kind, len(body), **kw) + body  # type: ignore[arg-type]
