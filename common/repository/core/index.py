"""Index entries, index files and the compact in-memory index.

An *index entry* says where a blob lives: (blob id, type, pack id, offset, length, raw
length, compression). An *index file* (``volkeeper/repo/index/<random id>``) lists the
entries of some packs, grouped by pack, plus the ids of index files it supersedes (prune
writes a replacement, then deletes those). Its plaintext is binary, zstd-compressed when
that helps, and sealed with ``aad = "VKI" v1 || index id``.

``Index`` holds every entry of a repository in about 49 bytes each, in 256 buckets by
the first id byte: per bucket a sorted ``array('Q')`` of the first 8 id bytes
(binary-searched in C by ``bisect``), a bytes string of the other 24 id bytes and one of
17-byte records (pack number, offset, length, raw length, type|compression); pack ids sit
once in a table. New entries wait (a small dict for ``add``, compact 49-byte rows for bulk
loads) and are merged bucket by bucket, so a merge's extra memory is one bucket.
"""

from __future__ import annotations

import bisect
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from operator import eq, itemgetter

import zstandard

from common.errors import IntegrityError
from common.repository.core import ids
from common.repository.core.crypto import Cipher
from common.repository.core.ids import BlobType

#: type u8, compression u8, blob id 32, offset u32, length u32, raw length u32
ENTRY = struct.Struct("<BB32sIII")
_REC = struct.Struct("<IIIIB")  # pack number, offset, length, raw length, type|comp<<4
_RS = _REC.size
_PACK_NO = struct.Struct("<I")
_PACK_NO_ROW = struct.Struct("<I13x")  # the pack number of each 17-byte record
_ROW = 32 + _RS  # a staged row: blob id || record
_BUCKETS = 256
_TYPES = frozenset(int(t) for t in BlobType)
_SWAP = sys.byteorder == "little"  # prefixes compare as big-endian numbers
_ID = itemgetter(slice(0, 32))
_HEAD = itemgetter(slice(0, 8))
_TAIL = itemgetter(slice(8, 32))
_RECORD = itemgetter(slice(32, None))
_FILE_HEAD = struct.Struct("<4sBIII")  # magic, version, n supersedes, n packs, n entries
_PACK_HEAD = struct.Struct("<32sI")  # pack id, n entries
_MAGIC = b"VKIX"
_AAD_KIND = b"VKI"
_HINT = "`volkeeper repair TARGET` re-indexes the packs from their headers"


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
                    index: Index, bad: dict[bytes, set[bytes] | None] | None = None,
                    quarantine: list[IndexEntry] | None = None) -> int:
    """Open an index file and add its entries to ``index`` in bulk (no ``IndexEntry``
    objects: what ``load_index`` uses). Returns the number of entries read. On damage
    (IntegrityError naming the file) nothing of the file is added.

    ``bad`` (pack id -> damaged blob ids, or None for the whole pack: damage marks) leaves
    those copies out of ``index``; they are appended to ``quarantine`` instead."""
    try:
        view = _open_index(cipher, index_id, data)
        groups = _split_packs(view)
    except (ValueError, struct.error, zstandard.ZstdError) as exc:
        raise IntegrityError(f"index file {index_id.hex()} is malformed: {exc}", _HINT) from None
    for pack_id, records in groups:
        if bad and pack_id in bad:
            kept = _quarantine(pack_id, records, bad[pack_id], quarantine)
            if kept:
                index.add_records(pack_id, kept)
            continue
        index.add_records(pack_id, records)
    return sum(len(r) // ENTRY.size for _, r in groups)


def _quarantine(pack_id: bytes, records: memoryview, damaged: set[bytes] | None,
                quarantine: list[IndexEntry] | None) -> bytes:
    """The records of ``pack_id`` whose copy is not damaged; the others go to
    ``quarantine`` (``damaged`` None: every record of the pack is damaged)."""
    keep = bytearray()
    for i in range(0, len(records), ENTRY.size):
        record = records[i : i + ENTRY.size]
        blob_id = bytes(record[2:34])
        if damaged is None or blob_id in damaged:
            if quarantine is not None:
                quarantine.append(unpack_entry(record, pack_id))
        else:
            keep += record
    return bytes(keep)


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
        unknown = set(records[:: ENTRY.size]) - _TYPES  # first byte of a record: its type
        if unknown:
            raise ValueError(f"unknown blob type {min(unknown)}")
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
    """Every blob's location, in ~49 bytes per entry. Not thread-safe: guard writers.

    Entries live in 256 buckets by the first id byte, each three sorted columns; merges
    rebuild one bucket at a time, so merging never holds more than one bucket twice.
    """

    def __init__(self, flush_every: int = 16384) -> None:
        self._prefix = [array("Q") for _ in range(_BUCKETS)]
        self._rest: list[bytes] = [b""] * _BUCKETS
        self._recs: list[bytes] = [b""] * _BUCKETS
        self._merged = 0
        self._pending: dict[bytes, bytes] = {}  # add(): visible at once, checked for dups
        self._staged = [bytearray() for _ in range(_BUCKETS)]  # add_records(): 49-byte rows
        self._n_staged = 0
        self._packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._flush_every = flush_every

    def copy(self) -> Index:
        """An independent copy (the columns are immutable bytes, shared; the arrays and
        lists copied): for a cache of loaded indexes that hands out copies."""
        self.flush()
        out = Index(self._flush_every)
        out._prefix = [array("Q", p) for p in self._prefix]
        out._rest, out._recs = list(self._rest), list(self._recs)
        out._merged = self._merged
        out._packs, out._pack_no = list(self._packs), dict(self._pack_no)
        return out

    def __len__(self) -> int:
        """Entries indexed (a duplicate added in bulk counts until the next flush)."""
        return self._merged + len(self._pending) + self._n_staged

    def __contains__(self, blob_id: bytes) -> bool:
        if self._n_staged:
            self.flush()
        return blob_id in self._pending or self._find(blob_id) >= 0

    def missing(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """Those of ``blob_ids`` not indexed (one call for many: cheaper than ``in``)."""
        if self._n_staged:
            self.flush()
        pending, find = self._pending, self._find
        return {b for b in blob_ids if b not in pending and find(b) < 0}

    def _number(self, pack_id: bytes) -> int:
        no = self._pack_no.get(pack_id)
        if no is None:
            no = self._pack_no[pack_id] = len(self._packs)
            self._packs.append(pack_id)
        return no

    def add(self, entry: IndexEntry) -> bool:
        """Record an entry; False (and no change) if the blob is already indexed."""
        if entry.blob_id in self:
            return False
        tc = int(entry.blob_type) | entry.compression << 4
        rec = _REC.pack(self._number(entry.pack_id), entry.offset, entry.length,
                        entry.raw_length, tc)
        self._pending[entry.blob_id] = rec
        if len(self._pending) >= self._flush_every:
            self.flush()
        return True

    def add_records(self, pack_id: bytes, records: bytes | memoryview) -> None:
        """Bulk add of one pack's 46-byte entry records (as in index files). A blob already
        indexed keeps its first location (duplicates are dropped when merging). The rows
        wait, 49 bytes each, until they are at least half as many as the merged entries
        (so a bulk load merges O(log n) times and never holds more than ~1.5x)."""
        no = self._number(pack_id)
        staged = self._staged
        rec = _REC.pack
        for t, comp, blob_id, offset, length, raw in ENTRY.iter_unpack(records):
            staged[blob_id[0]] += blob_id + rec(no, offset, length, raw, t | comp << 4)
        self._n_staged += len(records) // ENTRY.size
        if self._n_staged >= max(self._flush_every, self._merged // 2):
            self.flush()

    def add_all(self, entries: Iterable[IndexEntry]) -> int:
        """Add many entries; returns how many were new."""
        return sum(self.add(e) for e in entries)

    def _rec(self, blob_id: bytes) -> bytes | None:
        """The 17-byte record of ``blob_id``, or None."""
        rec = self._pending.get(blob_id)
        if rec is None:
            if self._n_staged:
                self.flush()
            i = self._find(blob_id)
            if i < 0:
                return None
            rec = self._recs[blob_id[0]][i * _RS : i * _RS + _RS]
        return rec

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        """The entry of ``blob_id``, or None."""
        rec = self._rec(blob_id)
        return None if rec is None else self._entry(blob_id, rec)

    def pack_of(self, blob_id: bytes) -> bytes | None:
        """The id of the pack holding ``blob_id`` (cheaper than ``lookup``), or None."""
        rec = self._rec(blob_id)
        return None if rec is None else self._packs[_PACK_NO.unpack_from(rec)[0]]

    def packs(self) -> set[bytes]:
        """Ids of every pack holding at least one indexed blob."""
        return set(self._packs)

    def __iter__(self) -> Iterator[IndexEntry]:
        if self._n_staged:
            self.flush()
        for b in range(_BUCKETS):
            heads, rest, recs = _heads(self._prefix[b]), self._rest[b], self._recs[b]
            for i in range(len(self._prefix[b])):
                blob_id = heads[i * 8 : i * 8 + 8] + rest[i * 24 : i * 24 + 24]
                yield self._entry(blob_id, recs[i * _RS : (i + 1) * _RS])
        for blob_id, rec in list(self._pending.items()):
            yield self._entry(blob_id, rec)

    def pack_records(self) -> dict[bytes, bytes]:
        """Per pack, the 46-byte records (as in index files and pack headers) of every blob
        this index places in it: what a check compares with the pack's header."""
        self.flush()
        counts: dict[int, int] = {}
        for recs in self._recs:
            for (no,) in _PACK_NO_ROW.iter_unpack(recs):
                counts[no] = counts.get(no, 0) + 1
        out = {no: bytearray(n * ENTRY.size) for no, n in counts.items()}
        fill = dict.fromkeys(counts, 0)
        pack_into = ENTRY.pack_into
        for b in range(_BUCKETS):
            heads, rest = _heads(self._prefix[b]), self._rest[b]
            for i, (no, offset, length, raw, tc) in enumerate(_REC.iter_unpack(self._recs[b])):
                pack_into(out[no], fill[no], tc & 15, tc >> 4,
                          heads[i * 8 : i * 8 + 8] + rest[i * 24 : i * 24 + 24],
                          offset, length, raw)
                fill[no] += ENTRY.size
        return {self._packs[no]: bytes(buf) for no, buf in out.items()}

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
        """Position of ``blob_id`` in its bucket's columns, or -1."""
        prefix = self._prefix[blob_id[0]]
        head = int.from_bytes(blob_id[:8], "big")
        i = bisect.bisect_left(prefix, head)
        n = len(prefix)
        if i < n and prefix[i] == head:
            rest, tail = self._rest[blob_id[0]], blob_id[8:]
            while i < n and prefix[i] == head:
                if rest.startswith(tail, i * 24):
                    return i
                i += 1
        return -1

    def flush(self) -> None:
        """Merge pending and staged entries into the sorted columns, bucket by bucket (done
        automatically in batches). Rows of one bucket: merged first, then pending, then
        staged in the order added, so the first location of a blob wins."""
        if not self._pending and not self._n_staged:
            return
        new: list[list[bytes]] = [[] for _ in range(_BUCKETS)]
        for blob_id, rec in self._pending.items():
            new[blob_id[0]].append(blob_id + rec)
        self._pending = {}
        for b in range(_BUCKETS):
            rows = new[b]
            if self._staged[b]:
                staged = bytes(self._staged[b])
                self._staged[b] = bytearray()
                rows.extend([staged[i : i + _ROW] for i in range(0, len(staged), _ROW)])
            if rows:
                new[b] = []
                self._merge_bucket(b, rows)
        self._n_staged = 0

    def _merge_bucket(self, b: int, rows: list[bytes]) -> None:
        """Merge 49-byte rows (id || record, in the order added) into bucket ``b``."""
        prefix, rest, recs = self._prefix[b], self._rest[b], self._recs[b]
        n_old = len(prefix)
        if len(rows) * 4 >= n_old:  # comparable sizes: sort everything in C
            if n_old:
                heads = _heads(prefix)
                rows = [heads[i * 8 : i * 8 + 8] + rest[i * 24 : i * 24 + 24]
                        + recs[i * _RS : i * _RS + _RS] for i in range(n_old)] + rows
            rows.sort(key=_ID)  # stable: the first one added comes first
            ids = list(map(_ID, rows))
            if any(map(eq, ids, islice(ids, 1, None))):
                rows = [rows[0]] + [r for i, r in enumerate(rows[1:]) if ids[i + 1] != ids[i]]
            new_prefix = array("Q")
            new_prefix.frombytes(b"".join(map(_HEAD, rows)))
            if _SWAP:
                new_prefix.byteswap()
            self._prefix[b] = new_prefix
            self._rest[b] = b"".join(map(_TAIL, rows))
            self._recs[b] = b"".join(map(_RECORD, rows))
        else:  # a few rows into many: copy the runs between the insertion points
            rows.sort(key=_ID)
            new_p = array("Q")
            rest_parts: list[bytes | memoryview] = []
            rec_parts: list[bytes | memoryview] = []
            old_r, old_c = memoryview(rest), memoryview(recs)
            prev = 0
            last = b""
            for row in rows:
                blob_id = row[:32]
                if blob_id == last:
                    continue  # the same blob twice among the new rows: the first one wins
                last = blob_id
                head, tail = int.from_bytes(row[:8], "big"), row[8:32]
                pos = bisect.bisect_left(prefix, head, prev)
                while pos < n_old and prefix[pos] == head and rest[pos * 24 : pos * 24 + 24] < tail:
                    pos += 1  # ids sharing their first 8 bytes stay sorted
                if pos < n_old and prefix[pos] == head and rest.startswith(tail, pos * 24):
                    continue  # already indexed: the first one wins
                new_p.extend(prefix[prev:pos])
                rest_parts.append(old_r[prev * 24 : pos * 24])
                rec_parts.append(old_c[prev * _RS : pos * _RS])
                new_p.append(head)
                rest_parts.append(tail)
                rec_parts.append(row[32:])
                prev = pos
            new_p.extend(prefix[prev:])
            rest_parts.append(old_r[prev * 24 :])
            rec_parts.append(old_c[prev * _RS :])
            self._prefix[b] = new_p
            self._rest[b] = b"".join(rest_parts)
            self._recs[b] = b"".join(rec_parts)
        self._merged += len(self._prefix[b]) - n_old


def _heads(prefix: array[int]) -> bytes:
    """The first 8 id bytes of every entry of a prefix column, concatenated."""
    if not _SWAP:
        return prefix.tobytes()
    swapped = array("Q", prefix)
    swapped.byteswap()
    return swapped.tobytes()
