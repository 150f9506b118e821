"""Reading the blobs one restore batch needs: one ranged read per run of close blobs.

The entries of a batch are grouped by pack and sorted by offset; blobs less than ``GAP``
apart (and spans up to ``limit`` bytes) are read with one ``Backend.read_range`` (on S3
only those bytes are transferred). A run that cannot be read marks its blobs damaged
(span number -1 in the blob records: the batch writer skips them and names the files).
"""

from __future__ import annotations

from typing import Protocol

from common.errors import IntegrityError, NotFound, StorageError
from common.repository import ids
from common.repository.config import Repository
from common.repository.index import IndexEntry
from common.repository.pack import read_range
from common.repository.restore_batch import BlobRecord

GAP = 1 << 20  # needed blobs closer than this in a pack are read with one request


class _Counts(Protocol):
    packs_read: int
    bytes_read: int


def read_blobs(repo: Repository, entries: list[IndexEntry], stats: _Counts,
               damaged: dict[bytes, str], limit: int) -> tuple[list[bytes], list[BlobRecord]]:
    """The stored bytes (spans) holding ``entries`` and one record per entry (in the
    same order) saying where in which span it is; unreadable ones go to ``damaged``."""
    recs: list[BlobRecord] = [(-1, 0, 0, 0, b"", 0)] * len(entries)
    spans: list[bytes] = []
    by_pack: dict[bytes, list[int]] = {}
    for i, e in enumerate(entries):
        by_pack.setdefault(e.pack_id, []).append(i)
    for pack_id, nos in by_pack.items():
        nos.sort(key=lambda i: entries[i].offset)
        run: list[int] = []
        for i in [*nos, -1]:
            nxt = entries[i] if i >= 0 else None
            if run and (nxt is None or nxt.offset - _end(entries[run[-1]]) > GAP
                        or _end(nxt) - entries[run[0]].offset > limit):
                _read_run(repo, pack_id, entries, run, recs, spans, stats, damaged)
                run = []
            if i >= 0:
                run.append(i)
    return spans, recs


def _read_run(repo: Repository, pack_id: bytes, entries: list[IndexEntry], run: list[int],
              recs: list[BlobRecord], spans: list[bytes], stats: _Counts,
              damaged: dict[bytes, str]) -> None:
    start, end = entries[run[0]].offset, max(_end(entries[i]) for i in run)
    try:
        data = read_range(repo.backend, ids.pack_key(pack_id), start, end - start)
    except (IntegrityError, NotFound, StorageError) as exc:
        why = f"pack {pack_id.hex()} could not be read: {exc}"
        for i in run:
            e = entries[i]
            damaged.setdefault(e.blob_id, why)
            recs[i] = (-1, 0, 0, int(e.blob_type), e.blob_id, e.raw_length)
        return
    stats.packs_read += 1
    stats.bytes_read += end - start
    span_no = len(spans)
    spans.append(data)
    for i in run:
        e = entries[i]
        recs[i] = (span_no, e.offset - start, e.length, int(e.blob_type), e.blob_id,
                   e.raw_length)


def _end(e: IndexEntry) -> int:
    return e.offset + e.length
