"""One tar member as the extractors will see it: its header, the pax records and GNU long
names before it, turned into a ``TarEntry`` — or refused.

The rules (each one closes a way to make the scanner and GNU tar / Go's archive/tar see
different member lists; see ``tarfields`` for the field syntax):

- only the member types in ``TYPES``; GNU ``V``/``M``/``N``/``D``, Solaris ``X`` and
  vendor letters are refused (GNU tar extracts unknown types as files, Docker fails);
- a directory, link, symlink, fifo or device member carries no data: a non-zero ``size``
  (header or pax) is refused — both extractors ignore it and would read the "data" as the
  next headers, which the policy would never have seen;
- a regular-file type (``0``/``7``) with a name ending in ``/`` is refused (GNU tar makes
  a directory of it and reads no data, Go a file with data); ``\\0`` with ``/`` is a
  directory (both agree) and must have no data;
- a GNU long name together with a pax ``path`` (or long link with ``linkpath``) is
  refused: GNU tar takes the pax record, Go the long name; empty names and targets too;
- sparse members: pax formats 0.0, 0.1, 1.0 in ustar headers and old GNU ``S`` headers
  in GNU headers, with maps that are ordered, non-overlapping, end exactly at the file's
  size and account for exactly the stored data (Go enforces that, GNU tar would
  silently produce a shorter file).
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from dataclasses import dataclass, field

from common.archive.tarfields import (
    TarAmbiguityError,
    TarFormatError,
    cstr,
    number,
    pax_int,
    pax_text,
    pax_time_ns,
)

#: Member type flags and what they are. Anything else is refused.
TYPES = {
    b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
    b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo", b"S": "file",
}
_KNOWN = {b"V": "GNU volume label", b"M": "GNU multi-volume continuation",
          b"N": "GNU rename/symlink list", b"D": "GNU incremental dump directory",
          b"X": "Solaris extended header", b"A": "Solaris ACL", b"I": "inode metadata"}
_SPARSE = (b"GNU.sparse.major", b"GNU.sparse.minor", b"GNU.sparse.map",
           b"GNU.sparse.offset", b"GNU.sparse.numbytes", b"GNU.sparse.size",
           b"GNU.sparse.realsize", b"GNU.sparse.numblocks", b"GNU.sparse.name")
_REPEATABLE = (b"GNU.sparse.offset", b"GNU.sparse.numbytes")
USTAR, GNU, V7 = b"ustar\x0000", b"ustar  \0", bytes(8)
_UID_LIMIT = 1 << 32


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
    #: the content digest, under the algorithm its manifest names (``DIGESTS``): sha256
    #: (version 1 manifests) or blake3 (version 2); the other one stays None
    sha256: str | None = None
    blake3: str | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    sparse: bool = False
    devmajor: int = 0
    devminor: int = 0
    mtime_ns: int = 0  # exact, from the pax record's decimal text (``mtime`` is a float)


@dataclass
class Member:
    """A described member: its entry, how many bytes of data follow its header (before
    padding), and for a sparse member the map format (``"0.x"``: ``sparse_map`` known,
    ``"1.0"``: the map leads the data, ``"old"``: header and extension blocks)."""

    entry: TarEntry
    stored: int
    sparse: str | None = None
    sparse_map: list[tuple[int, int]] | None = None


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def describe(hdr: bytes, typeflag: bytes, size: int, pax: list[tuple[bytes, bytes]],
             longname: bytes | None, longlink: bytes | None) -> Member:
    """Describe the member whose header is ``hdr``; raises TarAmbiguityError for anything
    the extractors might read differently."""
    magic = hdr[257:265]
    name = cstr(hdr[0:100])
    if magic == USTAR:
        if any(hdr[500:512]):
            raise TarAmbiguityError(f"tar member {text(name)!r} has a star-format header")
        if hdr[345]:
            name = cstr(hdr[345:500]) + b"/" + name
    elif magic not in (GNU, V7):
        raise TarAmbiguityError(f"tar member {text(name)!r} has an unknown header magic "
                                f"{magic!r}")
    records: dict[bytes, bytes] = {}
    for key, value in pax:
        if key in records and key not in _REPEATABLE:
            raise TarAmbiguityError(f"the pax header of {text(name)!r} sets {text(key)!r} "
                                    "twice")
        records[key] = value
    if longname is not None:
        name = longname
    if b"path" in records:
        if longname is not None:
            raise TarAmbiguityError(f"tar member {text(name)!r} has both a GNU long name "
                                    "and a pax path (GNU tar and Docker take different ones)")
        name = pax_text(records[b"path"], b"path")
    label = text(name)
    kind = TYPES.get(typeflag)
    if kind is None:
        what = _KNOWN.get(typeflag, "unknown")
        raise TarAmbiguityError(f"tar member {label!r} has type {typeflag!r} ({what}), "
                                "which volkeeper does not restore")
    link = cstr(hdr[157:257]) if longlink is None else longlink
    if b"linkpath" in records:
        if longlink is not None:
            raise TarAmbiguityError(f"tar member {label!r} has both a GNU long link and a "
                                    "pax linkpath (GNU tar and Docker take different ones)")
        link = pax_text(records[b"linkpath"], b"linkpath")
    sparse_keys = []
    for key in records:
        if key.startswith(b"GNU."):
            if key not in _SPARSE:
                raise TarAmbiguityError(f"tar member {label!r} has a pax record "
                                        f"{text(key)!r} (GNU incremental or multi-volume "
                                        "archives are not restored by volkeeper)")
            sparse_keys.append(key)
    for key in (b"atime", b"ctime"):  # GNU tar fails on a malformed one
        if key in records:
            pax_time_ns(records[key], key)
    for key in (b"uname", b"gname"):  # Go refuses a NUL in them
        if b"\0" in records.get(key, b""):
            raise TarAmbiguityError(f"pax record {key.decode()} of {label!r} holds a NUL")
    stored = pax_int(records[b"size"], b"size") if b"size" in records else size
    if kind == "file" and name.endswith(b"/"):
        if typeflag != b"\0":
            raise TarAmbiguityError(f"tar member {label!r} is a regular file whose name ends "
                                    "in '/' (GNU tar makes a directory of it, Docker a file)")
        kind = "dir"
    if kind != "file" and (size or stored):
        raise TarAmbiguityError(
            f"tar member {label!r} is a {kind} with {max(size, stored)} bytes of data: GNU "
            "tar and Docker ignore the size of such members and would read that data as "
            "further members, which the policy check never saw")
    if not name:
        raise TarAmbiguityError("a tar member has an empty name (GNU tar skips it, Docker "
                                "does not)")
    if kind in ("symlink", "hardlink") and not link:
        raise TarAmbiguityError(f"tar {kind} {label!r} has an empty target")
    member = Member(_entry(hdr, kind, label, records, link, magic), stored)
    if typeflag == b"S":
        if magic != GNU or sparse_keys:
            raise TarAmbiguityError(f"old GNU sparse member {label!r} does not have a plain "
                                    "GNU header")
        member.sparse = "old"
        member.entry.size = _nonnegative(number(hdr[483:495], "realsize"), label)
    elif sparse_keys:
        if kind != "file" or magic != USTAR:
            raise TarAmbiguityError(f"tar member {label!r} has GNU sparse records but is "
                                    "not a pax regular file")
        _pax_sparse(member, records, pax, label)
    member.entry.sparse = member.sparse is not None
    if kind != "file":
        member.entry.size = 0
    elif member.sparse is None:
        member.entry.size = stored
    return member


def _nonnegative(value: int, label: str) -> int:
    if value < 0:
        raise TarAmbiguityError(f"tar member {label!r} has a negative size")
    return value


def _entry(hdr: bytes, kind: str, label: str, records: dict[bytes, bytes], link: bytes,
           magic: bytes) -> TarEntry:
    # Header fields are read (and must be valid) even where a pax record overrides them:
    # GNU tar and Go both decode them and fail on a bad one.
    seconds = number(hdr[136:148], "mtime")
    uid, gid = number(hdr[108:116], "uid"), number(hdr[116:124], "gid")
    mode = number(hdr[100:108], "mode")
    mtime_raw = records.get(b"mtime")
    if mtime_raw is not None:
        mtime_ns = pax_time_ns(mtime_raw, b"mtime")
        mtime = float(mtime_raw)
    else:
        mtime_ns, mtime = seconds * 1_000_000_000, float(seconds)
    if not (0 <= uid < _UID_LIMIT and 0 <= gid < _UID_LIMIT):
        raise TarAmbiguityError(f"tar member {label!r} has owner {uid}:{gid}, out of range")
    uid = pax_int(records[b"uid"], b"uid") if b"uid" in records else uid
    gid = pax_int(records[b"gid"], b"gid") if b"gid" in records else gid
    if not (0 <= uid < _UID_LIMIT and 0 <= gid < _UID_LIMIT):
        raise TarAmbiguityError(f"tar member {label!r} has owner {uid}:{gid}, out of range")
    entry = TarEntry(path=_clean(label), type=kind, size=0,
                     mode=mode & 0o7777, uid=uid, gid=gid,
                     mtime=mtime, link=text(link) if kind in ("symlink", "hardlink") else None,
                     xattrs=_xattrs(records, label), mtime_ns=mtime_ns)
    if kind in ("char", "block") and magic != V7:
        entry.devmajor = number(hdr[329:337], "devmajor")
        entry.devminor = number(hdr[337:345], "devminor")
    return entry


def _clean(path: str) -> str:
    if len(path) > 1 and path.endswith("/"):
        return path.rstrip("/") or "/"
    return path


def _xattrs(records: dict[bytes, bytes], label: str) -> dict[str, bytes]:
    xattrs: dict[str, bytes] = {}
    if not records:
        return xattrs
    for key, value in records.items():
        if key.startswith(b"SCHILY.xattr."):
            xattrs[text(key[13:])] = value
        elif key.startswith(b"LIBARCHIVE.xattr."):
            xattr_name = urllib.parse.unquote_to_bytes(key[17:])
            try:
                xattrs[text(xattr_name)] = base64.b64decode(value + b"==")
            except (binascii.Error, ValueError):
                raise TarFormatError(f"xattr {text(key)!r} of {label!r} is not base64",
                                     "the archive is corrupt") from None
    return xattrs


def _pax_sparse(member: Member, records: dict[bytes, bytes], pax: list[tuple[bytes, bytes]],
                label: str) -> None:
    """A GNU pax sparse member (formats 0.0, 0.1, 1.0), read the way both extractors do."""
    version = (records.get(b"GNU.sparse.major"), records.get(b"GNU.sparse.minor"))
    has_map, has_offsets = b"GNU.sparse.map" in records, b"GNU.sparse.offset" in records
    if version == (b"1", b"0"):
        if has_map or has_offsets or b"GNU.sparse.numblocks" in records:
            raise TarAmbiguityError(f"sparse member {label!r} mixes sparse formats")
        member.sparse = "1.0"
    elif version in ((None, None), (b"0", b"0"), (b"0", b"1")):
        if has_map == has_offsets:
            raise TarAmbiguityError(f"sparse member {label!r} has no (or two) sparse maps")
        keys = [k for k, _ in pax]
        first_map = min(i for i, k in enumerate(keys)
                        if k in (b"GNU.sparse.map", b"GNU.sparse.offset"))
        if b"GNU.sparse.numblocks" not in keys[:first_map]:
            raise TarAmbiguityError(f"sparse member {label!r} lacks GNU.sparse.numblocks "
                                    "before its map")
        if has_map:
            fields = records[b"GNU.sparse.map"].split(b",")
            nums = [pax_int(x, b"GNU.sparse.map") for x in fields]
        else:
            pairs = [(k, v) for k, v in pax if k in _REPEATABLE]
            if any(k != _REPEATABLE[i % 2] for i, (k, _) in enumerate(pairs)):
                raise TarAmbiguityError(f"sparse member {label!r} has a malformed 0.0 map")
            nums = [pax_int(v, k) for k, v in pairs]
        if not nums or len(nums) % 2 or \
                pax_int(records[b"GNU.sparse.numblocks"], b"numblocks") != len(nums) // 2:
            raise TarAmbiguityError(f"sparse member {label!r} has a malformed sparse map")
        member.sparse = "0.x"
        member.sparse_map = list(zip(nums[0::2], nums[1::2], strict=True))
    else:
        raise TarAmbiguityError(f"sparse member {label!r} has an unknown sparse format "
                                f"{version!r}")
    sizes = {pax_int(records[k], k) for k in (b"GNU.sparse.size", b"GNU.sparse.realsize")
             if k in records}
    if len(sizes) > 1:
        raise TarAmbiguityError(f"sparse member {label!r} has conflicting sizes")
    member.entry.size = sizes.pop() if sizes else member.stored
    if b"GNU.sparse.name" in records:
        name = pax_text(records[b"GNU.sparse.name"], b"GNU.sparse.name")
        if name.endswith(b"/"):
            raise TarAmbiguityError(f"sparse member {label!r} is named like a directory")
        member.entry.path = _clean(text(name))


def check_sparse_map(label: str, sparse_map: list[tuple[int, int]], realsize: int,
                     data: int) -> None:
    """The map must be ordered, non-overlapping, end exactly at ``realsize`` (a final
    zero-length entry marks a trailing hole) and cover exactly ``data`` stored bytes."""
    pos = total = 0
    for i, (offset, length) in enumerate(sparse_map):
        if offset < pos or (length == 0 and i != len(sparse_map) - 1):
            raise TarAmbiguityError(f"sparse map of {label!r} is out of order or overlaps")
        pos = offset + length
        total += length
    if pos != realsize or total != data:
        raise TarAmbiguityError(
            f"sparse map of {label!r} covers {pos} bytes holding {total} stored bytes; the "
            f"member says {realsize} bytes holding {data}")


def old_sparse_entries(block: bytes, start: int, count: int, label: str
                       ) -> tuple[list[tuple[int, int]], bool]:
    """Entries of an old GNU sparse array (header or extension block) and whether it was
    full. GNU tar ends the array at an empty length, Go at an empty offset: both must
    agree."""
    out: list[tuple[int, int]] = []
    for i in range(count):
        off = block[start + 24 * i : start + 24 * i + 12]
        length = block[start + 24 * i + 12 : start + 24 * i + 24]
        if (off[0] == 0) != (length[0] == 0):
            raise TarAmbiguityError(f"old GNU sparse map of {label!r} is malformed")
        if off[0] == 0:
            return out, False
        out.append((_nonnegative(number(off, "sparse offset"), label),
                    _nonnegative(number(length, "sparse size"), label)))
    return out, True
