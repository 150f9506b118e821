"""Index entries, index files and the compact in-memory index.

An *index entry* says where a blob lives: (blob id, type, pack id, offset, length, raw
length, compression). An *index file* (``volkeeper/repo/index/<random id>``) lists the
entries of some packs, grouped by pack, plus the ids of index files it supersedes (prune
writes a replacement, then deletes those). Its plaintext is binary, zstd-compressed when
that helps, and sealed with ``aad = "VKI" v1 || index id``.

``Index`` holds every entry of a repository in about 49 bytes each: a sorted
``array('Q')`` of the first 8 id bytes (binary-searched in C by ``bisect``), a bytes string of
the other 24 id bytes and one of 17-byte records (pack number, offset, length,
raw length, type|compression); pack ids sit once in a table. New entries wait in a small
dict and are merged in sorted batches.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zstandard

from common.errors import IntegrityError
from common.repository import ids
from common.repository.crypto import Cipher
from common.repository.ids import BlobType

#: type u8, compression u8, blob id 32, offset u32, length u32, raw length u32
ENTRY = struct.Struct("<BB32sIII")
_REC = struct.Struct("<IIIIB")  # pack number, offset, length, raw length, type|comp<<4
_FILE_HEAD = struct.Struct("<4sBIII")  # magic, version, n supersedes, n packs, n entries
_PACK_HEAD = struct.Struct("<32sI")  # pack id, n entries
_MAGIC = b"VKIX"
_AAD_KIND = b"VKI"
_HINT = "run a repository check; `repair index` can rebuild index files from pack headers"


@dataclass(frozen=True)
class IndexEntry:
    """Where one blob is stored."""

    blob_id: bytes
    blob_type: BlobType
    pack_id: bytes
    offset: int
    length: int
    raw_length: int
    compression: int = 0


@dataclass
class IndexFile:
    """The decoded content of one index file."""

    entries: list[IndexEntry] = field(default_factory=list)
    supersedes: list[bytes] = field(default_factory=list)


def pack_entry(e: IndexEntry) -> bytes:
    """The 46-byte record of an entry, as used in index files and pack headers."""
    return ENTRY.pack(int(e.blob_type), e.compression, e.blob_id, e.offset, e.length, e.raw_length)


def unpack_entry(record: bytes | memoryview, pack_id: bytes) -> IndexEntry:
    """Inverse of ``pack_entry``; ValueError on an unknown blob type."""
    t, comp, blob_id, offset, length, raw = ENTRY.unpack(record)
    return IndexEntry(bytes(blob_id), BlobType(t), pack_id, offset, length, raw, comp)


def encode_index(cipher: Cipher, index_id: bytes, index: IndexFile) -> bytes:
    """Serialise, compress and seal an index file."""
    by_pack: dict[bytes, list[IndexEntry]] = {}
    for e in index.entries:
        by_pack.setdefault(e.pack_id, []).append(e)
    parts = [_FILE_HEAD.pack(_MAGIC, 1, len(index.supersedes), len(by_pack), len(index.entries))]
    parts.extend(index.supersedes)
    for pack_id, entries in by_pack.items():
        parts.append(_PACK_HEAD.pack(pack_id, len(entries)))
        parts.extend(pack_entry(e) for e in entries)
    plain = b"".join(parts)
    packed = zstandard.ZstdCompressor(level=3).compress(plain)
    body = b"\x01" + packed if len(packed) < len(plain) else b"\x00" + plain
    return cipher.seal(body, ids.aad(_AAD_KIND, index_id))


def _open_index(cipher: Cipher, index_id: bytes, data: bytes | memoryview) -> memoryview:
    """The plaintext of an index file (authenticated, decompressed)."""
    body = cipher.open_(data, ids.aad(_AAD_KIND, index_id), f"index file {index_id.hex()}")
    if body[:1] == b"\x01":
        return memoryview(zstandard.ZstdDecompressor().decompress(body[1:]))
    if body[:1] == b"\x00":
        return memoryview(body)[1:]
    raise ValueError("unknown compression")


def decode_index(cipher: Cipher, index_id: bytes, data: bytes | memoryview) -> IndexFile:
    """Open and parse an index file; IntegrityError naming it on any damage."""
    try:
        return _parse_index(_open_index(cipher, index_id, data))
    except (ValueError, struct.error, zstandard.ZstdError) as exc:
        raise IntegrityError(f"index file {index_id.hex()} is malformed: {exc}", _HINT) from None


def load_index_file(cipher: Cipher, index_id: bytes, data: bytes | memoryview,
                    index: Index) -> int:
    """Open an index file and add its entries to ``index`` in bulk (no ``IndexEntry``
    objects: what ``load_index`` uses). Returns the number of entries read. On damage
    (IntegrityError naming the file) nothing of the file is added."""
    try:
        view = _open_index(cipher, index_id, data)
        groups = _split_packs(view)
    except (ValueError, struct.error, zstandard.ZstdError) as exc:
        raise IntegrityError(f"index file {index_id.hex()} is malformed: {exc}", _HINT) from None
    for pack_id, records in groups:
        index.add_records(pack_id, records)
    return sum(len(r) // ENTRY.size for _, r in groups)


def _split_packs(view: memoryview) -> list[tuple[bytes, memoryview]]:
    """(pack id, its entry records) of an index file's plaintext, structure validated."""
    magic, version, n_sup, n_packs, n_entries = _FILE_HEAD.unpack_from(view, 0)
    if magic != _MAGIC or version != 1:
        raise ValueError(f"bad magic/version {bytes(magic)!r}/{version}")
    pos = _FILE_HEAD.size + 32 * n_sup
    out = []
    total = 0
    for _ in range(n_packs):
        pack_id, count = _PACK_HEAD.unpack_from(view, pos)
        pos += _PACK_HEAD.size
        records = view[pos : pos + count * ENTRY.size]
        if len(records) != count * ENTRY.size:
            raise ValueError("truncated")
        for t in records[:: ENTRY.size]:  # first byte of every record: the blob type
            BlobType(t)
        out.append((bytes(pack_id), records))
        pos += count * ENTRY.size
        total += count
    if pos != len(view) or total != n_entries:
        raise ValueError("length does not match the entry count")
    return out


def _parse_index(view: memoryview) -> IndexFile:
    magic, version, n_sup, n_packs, n_entries = _FILE_HEAD.unpack_from(view, 0)
    if magic != _MAGIC or version != 1:
        raise ValueError(f"bad magic/version {bytes(magic)!r}/{version}")
    pos = _FILE_HEAD.size
    out = IndexFile()
    for _ in range(n_sup):
        out.supersedes.append(bytes(view[pos : pos + 32]))
        pos += 32
    for _ in range(n_packs):
        pack_id, count = _PACK_HEAD.unpack_from(view, pos)
        pack_id = bytes(pack_id)
        pos += _PACK_HEAD.size
        for _ in range(count):
            out.entries.append(unpack_entry(view[pos : pos + ENTRY.size], pack_id))
            pos += ENTRY.size
    if pos != len(view) or len(out.entries) != n_entries:
        raise ValueError("length does not match the entry count")
    return out


class Index:
    """Every blob's location, in ~49 bytes per entry. Not thread-safe: guard writers."""

    def __init__(self, flush_every: int = 16384) -> None:
        self._prefix = array("Q")
        self._rest = b""
        self._recs = b""
        self._pending: dict[bytes, bytes] = {}
        self._packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._flush_every = flush_every

    def __len__(self) -> int:
        """Entries indexed (a duplicate added in bulk counts until the next flush)."""
        return len(self._prefix) + len(self._pending)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._pending or self._find(blob_id) >= 0

    def add(self, entry: IndexEntry) -> bool:
        """Record an entry; False (and no change) if the blob is already indexed."""
        if entry.blob_id in self:
            return False
        no = self._pack_no.get(entry.pack_id)
        if no is None:
            no = self._pack_no[entry.pack_id] = len(self._packs)
            self._packs.append(entry.pack_id)
        tc = int(entry.blob_type) | entry.compression << 4
        rec = _REC.pack(no, entry.offset, entry.length, entry.raw_length, tc)
        self._pending[entry.blob_id] = rec
        if len(self._pending) >= self._flush_every:
            self.flush()
        return True

    def add_records(self, pack_id: bytes, records: bytes | memoryview) -> None:
        """Bulk add of one pack's 46-byte entry records (as in index files). A blob already
        indexed keeps its first location (duplicates are dropped when merging)."""
        no = self._pack_no.get(pack_id)
        if no is None:
            no = self._pack_no[pack_id] = len(self._packs)
            self._packs.append(pack_id)
        pending = self._pending
        rec = _REC.pack
        for t, comp, blob_id, offset, length, raw in ENTRY.iter_unpack(records):
            if blob_id not in pending:
                pending[blob_id] = rec(no, offset, length, raw, t | comp << 4)
        if len(pending) >= self._flush_every:
            self.flush()

    def add_all(self, entries: Iterable[IndexEntry]) -> int:
        """Add many entries; returns how many were new."""
        return sum(self.add(e) for e in entries)

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        """The entry of ``blob_id``, or None."""
        rec = self._pending.get(blob_id)
        if rec is None:
            i = self._find(blob_id)
            if i < 0:
                return None
            rec = self._recs[i * _REC.size : (i + 1) * _REC.size]
        return self._entry(blob_id, rec)

    def packs(self) -> set[bytes]:
        """Ids of every pack holding at least one indexed blob."""
        return set(self._packs)

    def __iter__(self) -> Iterator[IndexEntry]:
        for i in range(len(self._prefix)):
            blob_id = self._prefix[i].to_bytes(8, "big") + self._rest[i * 24 : i * 24 + 24]
            yield self._entry(blob_id, self._recs[i * _REC.size : (i + 1) * _REC.size])
        for blob_id, rec in list(self._pending.items()):
            yield self._entry(blob_id, rec)

    @classmethod
    def merge(cls, files: Iterable[IndexFile]) -> Index:
        """One Index over several index files (the first location of a blob wins)."""
        index = cls()
        for f in files:
            index.add_all(f.entries)
        index.flush()
        return index

    def _entry(self, blob_id: bytes, rec: bytes) -> IndexEntry:
        no, offset, length, raw, tc = _REC.unpack(rec)
        return IndexEntry(blob_id, BlobType(tc & 15), self._packs[no], offset, length, raw, tc >> 4)

    def _find(self, blob_id: bytes) -> int:
        head = int.from_bytes(blob_id[:8], "big")
        tail = blob_id[8:]
        i = bisect.bisect_left(self._prefix, head)
        while i < len(self._prefix) and self._prefix[i] == head:
            if self._rest[i * 24 : i * 24 + 24] == tail:
                return i
            i += 1
        return -1

    def flush(self) -> None:
        """Merge pending entries into the sorted arrays (done automatically in batches)."""
        if not self._pending:
            return
        if len(self._pending) * 4 >= len(self._prefix):
            self._rebuild()
            return
        items = sorted(self._pending.items())
        old_p, old_r, old_c = self._prefix, memoryview(self._rest), memoryview(self._recs)
        new_p = array("Q")
        rest_parts: list[bytes | memoryview] = []
        rec_parts: list[bytes | memoryview] = []
        rs, cs = 24, _REC.size
        prev = 0
        n_old = len(old_p)
        for blob_id, rec in items:
            head = int.from_bytes(blob_id[:8], "big")
            pos = bisect.bisect_left(old_p, head, prev)
            j = pos
            while j < n_old and old_p[j] == head:  # already indexed: the first one wins
                if old_r[j * rs : j * rs + rs] == blob_id[8:]:
                    break
                j += 1
            else:
                j = -1
            if j >= 0:
                continue
            new_p.extend(old_p[prev:pos])
            rest_parts.append(old_r[prev * rs : pos * rs])
            rec_parts.append(old_c[prev * cs : pos * cs])
            new_p.append(head)
            rest_parts.append(blob_id[8:])
            rec_parts.append(rec)
            prev = pos
        new_p.extend(old_p[prev:])
        rest_parts.append(old_r[prev * rs :])
        rec_parts.append(old_c[prev * cs :])
        self._prefix = new_p
        self._rest = b"".join(rest_parts)
        self._recs = b"".join(rec_parts)
        self._pending = {}

    def _rebuild(self) -> None:
        """Sort everything afresh (C-level sort of 49-byte records); used for bulk loads."""
        rs, cs = 24, _REC.size
        p, r, c = self._prefix, self._rest, self._recs
        records = [
            p[i].to_bytes(8, "big") + r[i * rs : i * rs + rs] + c[i * cs : i * cs + cs]
            for i in range(len(p))
        ]
        records.extend(k + v for k, v in self._pending.items())
        self._pending = {}
        records.sort(key=lambda x: x[:32])  # stable: an already indexed blob comes first
        records = [x for i, x in enumerate(records)
                   if i == 0 or x[:32] != records[i - 1][:32]]
        self._prefix = array("Q", [int.from_bytes(x[:8], "big") for x in records])
        self._rest = b"".join([x[8:32] for x in records])
        self._recs = b"".join([x[32:] for x in records])
