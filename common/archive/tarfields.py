"""Strict decoding of tar header fields and pax records, shared by ``tarscan``.

The scanner is the policy in front of an extractor — GNU tar 1.34 (``tar -x``) on the
direct path, Go's archive/tar (dockerd's archive API) on the other — so it must read a
member exactly as they do. Where the two are lenient in different ways (a number field
with trailing garbage, a pax length with a ``+`` sign, a NUL inside a pax path) the
readers disagree, and an archive could show the scanner one member list while the
extractor creates another. So this module accepts only the forms both read the same way
— the forms GNU tar, bsdtar, Go and Python's tarfile write — and raises
``TarAmbiguityError`` for anything else.

- numbers: octal digits after optional spaces, ended by spaces/NULs; an all-NUL field
  is 0; GNU base-256 only with a leading 0x80 (positive) or 0xff (negative) byte;
- pax records: ``"<decimal length> <key>=<value>\\n"`` exactly, no NUL in a key, no NUL
  in a ``path``/``linkpath``, decimal values as plain digits.
"""

from __future__ import annotations

import re
import zlib

from common.errors import IntegrityError

BLOCK = 512
#: Largest pax, global pax or GNU long-name/long-link header accepted (Go's archive/tar
#: refuses larger ones too); GNU tar would buffer any size whole.
MAX_META = 1 << 20
INT64 = 1 << 63

_OCTAL = re.compile(rb" *([0-7]+)[ \0]*")
_DECIMAL = re.compile(rb"[0-9]{1,19}")
_TIME = re.compile(rb"(-?)([0-9]{1,19})(?:\.([0-9]+))?")
_RECORD_LENGTH = re.compile(rb"([0-9]{1,9}) ")

AMBIGUOUS_HINT = ("the tar stream was crafted or damaged: volkeeper refuses what GNU tar or "
                  "Docker could read differently from its own policy check; restore another "
                  "backup, or inspect the archive with 'tar -tvf' and extract it by hand if "
                  "you trust it")


class TarFormatError(IntegrityError):
    """The byte stream is not a well-formed tar archive (corrupt, truncated or not tar)."""


class TarAmbiguityError(TarFormatError):
    """The archive holds something the extractors (GNU tar, Go's archive/tar) might read
    differently from the scanner — crafted or exotic; refused rather than guessed at."""

    def __init__(self, message: str, hint: str | None = AMBIGUOUS_HINT) -> None:
        super().__init__(message, hint)


def number(field: bytes, what: str, *, base256: bool = True) -> int:
    """A numeric header field, as GNU tar's ``from_header`` and Go's parser both read it."""
    if field[-1] == 0 and field[:-1].isdigit():  # the common spelling: digits, then NUL
        try:
            return int(field[:-1], 8)
        except ValueError:  # an 8 or a 9
            pass
    elif field[-2:] == b"\0 " and field[:-2].isdigit():  # GNU tar's checksum field
        try:
            return int(field[:-2], 8)
        except ValueError:
            pass
    first = field[0]
    if base256 and first in (0x80, 0xFF):
        value = int.from_bytes(field, "big", signed=True) if first == 0xFF else \
            int.from_bytes(field[1:], "big")
        if not -INT64 <= value < INT64:
            raise TarAmbiguityError(f"tar header {what} field {field!r} is out of range")
        return value
    if not field.strip(b"\0"):
        return 0
    m = _OCTAL.fullmatch(field)
    if m is None:
        raise TarAmbiguityError(
            f"tar header has a {what} field {field!r} that is not a plain octal number "
            "(GNU tar and Docker read such fields differently)")
    return int(m.group(1), 8)


def cstr(field: bytes) -> bytes:
    """A NUL-terminated string field."""
    return field.split(b"\0", 1)[0]


def check_header(hdr: bytes) -> None:
    """The header checksum (unsigned, or the historic signed sum) must match."""
    try:
        stored = number(hdr[148:156], "checksum", base256=False)
    except TarAmbiguityError:
        raise TarFormatError("tar header has an unreadable checksum field",
                             "the archive is corrupt or not a tar archive") from None
    # the unsigned byte sum: adler32's low half is 1 + the sum of the bytes modulo 65521,
    # exact for 256 bytes (at most 65281); several times faster than sum() on 512 bytes
    computed = (zlib.adler32(hdr[:256]) & 0xFFFF) + (zlib.adler32(hdr[256:]) & 0xFFFF) \
        - 2 - sum(hdr[148:156]) + 8 * 32
    if stored != computed:
        signed = sum(b - 256 if b > 127 else b for b in hdr[:148] + hdr[156:]) + 256
        if stored != signed:
            raise TarFormatError("tar header checksum mismatch",
                                 "the archive is corrupt or not a tar archive")


def pax_records(data: bytes, what: str = "pax header") -> list[tuple[bytes, bytes]]:
    """Split pax extended header records (``"%d %s=%s\\n"``) into (key, value) pairs."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        m = _RECORD_LENGTH.match(data, pos)
        end = pos + int(m.group(1)) if m is not None else 0
        if m is None or end > len(data) or end - 1 <= m.end() or data[end - 1] != 0x0A:
            raise TarAmbiguityError(f"{what} has a malformed record at byte {pos}")
        key, eq, value = data[m.end() : end - 1].partition(b"=")
        if not eq or not key or b"\0" in key or key[0] in b" \t":  # GNU skips blanks
            raise TarAmbiguityError(f"{what} has a malformed record at byte {pos}")
        out.append((key, value))
        pos = end
    return out


def pax_int(value: bytes, key: bytes) -> int:
    """A decimal pax value (``size``, ``uid``, sparse numbers): plain digits only."""
    if _DECIMAL.fullmatch(value) is None or int(value) >= INT64:
        raise TarAmbiguityError(f"pax record {key.decode(errors='replace')}={value!r} is not "
                                "a plain decimal number")
    return int(value)


def pax_time_ns(value: bytes, key: bytes) -> int:
    """Nanoseconds of a pax time record (decimal seconds, maybe negative) exactly."""
    m = _TIME.fullmatch(value)
    if m is None or int(m.group(2)) >= INT64:
        raise TarAmbiguityError(f"pax record {key.decode(errors='replace')}={value!r} is not "
                                "a decimal time")
    ns = int(m.group(2)) * 1_000_000_000 + int((m.group(3) or b"0")[:9].ljust(9, b"0"))
    return -ns if m.group(1) else ns


def pax_text(value: bytes, key: bytes) -> bytes:
    """A ``path``/``linkpath``-like value: non-empty, without NUL (GNU tar would cut it
    there, Go refuses it, GNU ignores an empty ``path``)."""
    if not value or b"\0" in value:
        raise TarAmbiguityError(f"pax record {key.decode(errors='replace')} is empty or "
                                "holds a NUL byte")
    return value
