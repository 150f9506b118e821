"""Blobs in a planned order, fetched a window ahead (restores that stream, e.g. as tar).

``BlobFetcher(plan=…)`` takes the blob ids in the order they will be asked for; ``get``
returns them in that order. Behind it, the ids of the next ~``window`` bytes are grouped
by pack and read with one ranged read per run of blobs less than ``GAP`` apart; each blob
is decoded — authenticated and re-hashed — before ``get`` hands it out; the next window
is fetched in a background thread while the caller writes this one. A blob that cannot
be read or fails verification is handed out as its IntegrityError (raised by ``get``),
so the caller can name the file it belongs to. Memory: about two windows of plaintext.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from common.errors import IntegrityError, NotFound, StorageError
from common.repository.core import ids
from common.repository.core.index import IndexEntry
from common.repository.core.pack import read_range
from common.repository.core.repository import Repository
from common.repository.restore.restorer import RestoreStats

GAP = 1 << 20  # blobs closer than this in a pack are read with one request
_HINT = "`volkeeper repair TARGET --read-data --dry-run` shows every damaged object"


class BlobFetcher:
    """Decoded blobs in the order they are asked for, fetched a window ahead."""

    def __init__(self, repo: Repository, plan: Iterator[bytes],
                 window: int, pool: ThreadPoolExecutor, stats: RestoreStats) -> None:
        self.repo = repo
        self.index = repo.index
        self.plan = plan
        self.window = window
        self.pool = pool
        self.stats = stats
        self.ready: deque[tuple[bytes, bytes | Exception]] = deque()
        self.next: Future[list[tuple[bytes, bytes | Exception]]] | None = None

    def get(self, blob_id: bytes) -> bytes:
        """The plaintext of the next blob of the plan (which must be ``blob_id``)."""
        if not self.ready:
            self._fill()
        got, data = self.ready.popleft()
        assert got == blob_id, "blob fetch order out of step"
        if isinstance(data, Exception):
            raise data
        return data

    def buffered(self) -> int:
        return len(self.ready)

    def ensure(self, n: int) -> None:
        """Have at least ``n`` blobs ready (fewer only when the plan ends)."""
        while len(self.ready) < n:
            before = len(self.ready)
            self._fill()
            if len(self.ready) == before:
                return

    def _fill(self) -> None:
        if self.next is None:
            self.next = self.pool.submit(self._fetch, self._batch())
        current, self.next = self.next, None
        self.ready.extend(current.result())
        batch = self._batch()
        if batch:
            self.next = self.pool.submit(self._fetch, batch)

    def _batch(self) -> list[tuple[bytes, IndexEntry | None]]:
        out: list[tuple[bytes, IndexEntry | None]] = []
        total = 0
        for blob_id in self.plan:
            entry = self.index.lookup(blob_id)
            out.append((blob_id, entry))
            total += entry.raw_length if entry is not None else 0
            if total >= self.window or len(out) >= 4096:
                break
        return out

    def _fetch(self, batch: list[tuple[bytes, IndexEntry | None]]
               ) -> list[tuple[bytes, bytes | Exception]]:
        done: dict[bytes, bytes | Exception] = {}
        by_pack: dict[bytes, dict[bytes, IndexEntry]] = {}
        for blob_id, entry in batch:
            if entry is None:
                done[blob_id] = IntegrityError(self.repo.unindexed(blob_id), _HINT)
            else:
                by_pack.setdefault(entry.pack_id, {})[blob_id] = entry
        for pack_id, entries in by_pack.items():
            for span in _spans(sorted(entries.values(), key=lambda e: e.offset), self.window):
                done.update(self._read_span(pack_id, span))
        return [(blob_id, done[blob_id]) for blob_id, _ in batch]

    def _read_span(self, pack_id: bytes, span: list[IndexEntry]
                   ) -> dict[bytes, bytes | Exception]:
        start = span[0].offset
        end = max(e.offset + e.length for e in span)
        try:
            raw = memoryview(read_range(self.repo.backend, ids.pack_key(pack_id), start,
                                        end - start))
        except (IntegrityError, NotFound, StorageError) as exc:
            err = IntegrityError(f"pack {pack_id.hex()} could not be read: {exc}", _HINT)
            return {e.blob_id: err for e in span}
        self.stats.packs_read += 1
        self.stats.bytes_read += end - start
        out: dict[bytes, bytes | Exception] = {}
        for e in span:
            try:
                out[e.blob_id] = self.repo.codec.decode(
                    e.blob_type, e.blob_id, raw[e.offset - start : e.offset - start + e.length],
                    e.raw_length)
                self.stats.blobs += 1
            except IntegrityError as exc:
                out[e.blob_id] = exc
        return out


def _spans(entries: list[IndexEntry], limit: int) -> Iterator[list[IndexEntry]]:
    """Runs of blobs (sorted by offset) close enough to read with one request."""
    span: list[IndexEntry] = []
    for e in entries:
        if span and (e.offset - (span[-1].offset + span[-1].length) > GAP
                     or e.offset + e.length - span[0].offset > limit):
            yield span
            span = []
        span.append(e)
    if span:
        yield span
