"""What the restorer collects while it walks: the next batch, and large files in parts.

A *batch* (``_Batch`` here, a ``batch.Batch`` once its blobs are read) holds at most
``BATCH_FILES`` entries and ``BATCH_BYTES`` of data; each blob it needs gets a number,
once. A file with more data than a batch is a ``_Large``: written in parts by several
batches, given its metadata when the last part is written.
"""

from __future__ import annotations

from common.repository.core.index import Index, IndexEntry
from common.repository.core.tree import Node
from common.repository.restore.batch import FileRecord, Meta
from common.repository.system.sparse import data_ranges

#: a file's planned writes of one chunk: [(file offset, start in chunk, length)]
Writes = list[tuple[int, int, int]]


def meta_of(node: Node, extra: object = None) -> Meta:
    """The metadata of a batch record for ``node`` (``extra``: symlink target or device)."""
    return (node.mode, node.uid, node.gid, node.mtime_ns,
            tuple(node.xattrs.items()) if node.xattrs else (), extra)


class Pending:
    """Entries being collected for the next batch."""

    def __init__(self) -> None:
        self.files: list[FileRecord] = []
        self.blob_no: dict[bytes, int] = {}
        self.entries: list[IndexEntry] = []
        self.nbytes = 0
        self.done_bytes = 0  # progress when the batch is written
        self.done_files = 0
        self.parts: list[str] = []  # large files with a part in this batch
        #: (temporary name, final name) of entries a sync restore renames once written
        self.renames: list[tuple[str, str]] = []

    def blob(self, entry: IndexEntry) -> int:
        no = self.blob_no.get(entry.blob_id)
        if no is None:
            no = self.blob_no[entry.blob_id] = len(self.entries)
            self.entries.append(entry)
            self.nbytes += entry.raw_length
        return no


class Large:
    """A large file being written in parts: parts not yet written (plus a guard while
    they are being handed out) and its metadata."""

    __slots__ = ("meta", "outstanding", "size")

    def __init__(self, meta: Meta, size: int) -> None:
        self.meta = meta
        self.size = size
        self.outstanding = 1


def chunk_writes(index: Index, node: Node) -> tuple[list[tuple[IndexEntry, Writes]],
                                                   bytes | None]:
    """Each chunk of the file ``node`` with where its bytes go (its data ranges: holes are
    skipped), and the id of the first chunk the index lacks (then the list stops there)."""
    ranges = data_ranges(node.holes, node.size)
    ri, pos = 0, ranges[0][0] if ranges else 0
    planned: list[tuple[IndexEntry, Writes]] = []
    for chunk_id in node.content:
        entry = index.lookup(chunk_id)
        if entry is None:
            return planned, chunk_id
        writes: Writes = []
        start = 0
        while start < entry.raw_length and ri < len(ranges):
            end = ranges[ri][1]
            n = min(entry.raw_length - start, end - pos)
            writes.append((pos, start, n))
            start += n
            pos += n
            if pos >= end:
                ri += 1
                pos = ranges[ri][0] if ri < len(ranges) else pos
        planned.append((entry, writes))
    return planned, None
