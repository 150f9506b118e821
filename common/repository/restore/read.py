"""Reading the blobs one restore batch needs: one ranged read per run of close blobs.

The entries of a batch are grouped by pack and sorted by offset; blobs less than ``GAP``
apart (and spans up to ``limit`` bytes) are read with one ``Backend.read_range`` (on S3
only those bytes are transferred); with an executor the runs of a batch are read
concurrently (on S3 every request waits a round trip). A run that cannot be read marks its
blobs damaged (span number -1 in the blob records: the batch writer skips them and names
the files).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

from common.errors import IntegrityError, NotFound, StorageError
from common.repository.core import ids
from common.repository.core.index import IndexEntry
from common.repository.core.pack import read_range
from common.repository.core.repository import Repository
from common.repository.restore.batch import BlobRecord

GAP = 1 << 20  # needed blobs closer than this in a pack are read with one request


class _Counts(Protocol):
    packs_read: int
    bytes_read: int


def read_blobs(repo: Repository, entries: list[IndexEntry], stats: _Counts,
               damaged: dict[bytes, str], limit: int, readers: Executor | None = None
               ) -> tuple[list[bytes], list[BlobRecord]]:
    """The stored bytes (spans) holding ``entries`` and one record per entry (in the
    same order) saying where in which span it is; unreadable ones go to ``damaged``.
    ``readers``: reads the runs concurrently (the result is the same)."""
    recs: list[BlobRecord] = [(-1, 0, 0, 0, b"", 0)] * len(entries)
    spans: list[bytes] = []
    runs: list[tuple[bytes, list[int]]] = []
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
                runs.append((pack_id, run))
                run = []
            if i >= 0:
                run.append(i)

    def fetch(item: tuple[bytes, list[int]]) -> bytes | Exception:
        pack_id, run = item
        start, end = entries[run[0]].offset, max(_end(entries[i]) for i in run)
        try:
            return read_range(repo.backend, ids.pack_key(pack_id), start, end - start)
        except (IntegrityError, NotFound, StorageError) as exc:
            return exc

    got = readers.map(fetch, runs) if readers is not None and len(runs) > 1 else map(fetch, runs)
    for (pack_id, run), data in zip(runs, got, strict=True):
        _take(pack_id, entries, run, data, recs, spans, stats, damaged)
    return spans, recs


def _take(pack_id: bytes, entries: list[IndexEntry], run: list[int], data: bytes | Exception,
          recs: list[BlobRecord], spans: list[bytes], stats: _Counts,
          damaged: dict[bytes, str]) -> None:
    if isinstance(data, Exception):
        why = f"pack {pack_id.hex()} could not be read: {data}"
        for i in run:
            e = entries[i]
            damaged.setdefault(e.blob_id, why)
            recs[i] = (-1, 0, 0, int(e.blob_type), e.blob_id, e.raw_length)
        return
    start = entries[run[0]].offset
    stats.packs_read += 1
    stats.bytes_read += len(data)
    span_no = len(spans)
    spans.append(data)
    for i in run:
        e = entries[i]
        recs[i] = (span_no, e.offset - start, e.length, int(e.blob_type), e.blob_id,
                   e.raw_length)


def _end(e: IndexEntry) -> int:
    return e.offset + e.length
