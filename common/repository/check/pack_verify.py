"""Verifying packs for a check: from their bytes, in threads or in worker processes.

A pack is *verified* from its bytes plus the 46-byte records the index expects in it:
its header opens (authentic, well-formed, every blob inside the pack's data), every
expected record is listed there exactly, and — for a full read — every blob the header
lists decodes: authenticated, decompressed, its length and keyed hash equal to the
header's. A *header check* does the first two from the pack's last bytes only.

``PackVerifier`` runs full reads for a check: the caller reads each pack's bytes (the
storage backend, which may not be picklable, stays in the calling process) and submits
them. Packs of small blobs (< ``SMALL_BLOBS`` on average) go to worker processes when
``processes`` > 0 — started with ``spawn`` (never ``fork``: the worker process may be
multi-threaded), given the key material once, handed the bytes through a spool file —
so the GIL no longer limits the per-blob work; the others, and all of them without
processes, go to two threads of this process. Tree blobs come back summarised
(subtrees, referenced ids) so the caller's tree walk need not read them again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

from common.errors import IntegrityError, NotFound, StorageError
from common.repository.core import ids
from common.repository.core.blob import BlobCodec
from common.repository.core.crypto import Cipher, Key, cipher_for
from common.repository.core.ids import BlobType
from common.repository.core.index import ENTRY
from common.repository.core.pack import header_records, read_header_records
from common.repository.core.tree import Tree
from common.storage.base import Backend

#: below this average blob size a pack is decoded in a worker process (per-blob Python
#: work dominates); above, in a thread (C code that releases the GIL dominates, and
#: sending the bytes to a process would cost more than it saves)
SMALL_BLOBS = 16 * 1024


@dataclass
class PackVerdict:
    """What verifying one pack found."""

    size: int = 0
    #: blobs the header lists (all decoded when the pack was read in full)
    blobs: int = 0
    #: why the pack could not be opened at all (missing, truncated, header damaged)
    error: str | None = None
    #: blobs the index places in this pack whose record the header does not hold
    unlisted: list[bytes] = field(default_factory=list)
    #: blobs that failed to decode, with why
    damaged: list[tuple[bytes, str]] = field(default_factory=list)
    #: every tree blob that decoded: (its subtrees, the blob ids its other nodes
    #: reference, concatenated), or why its listing does not parse
    trees: dict[bytes, tuple[list[bytes], bytes] | str] = field(default_factory=dict)
    #: the error was the storage's (unreachable, refused), not the pack's: not damage
    transient: bool = False


def _unlisted(records: bytes, expected: bytes) -> list[bytes]:
    n = ENTRY.size
    listed = {records[i : i + n] for i in range(0, len(records), n)}
    return [expected[i + 2 : i + 34] for i in range(0, len(expected), n)
            if expected[i : i + n] not in listed]


def verify_pack(codec: BlobCodec, cipher: Cipher, pack_id: bytes, data: bytes,
                expected: bytes) -> PackVerdict:
    """Verify a whole pack from its bytes (see the module docstring)."""
    try:
        records = header_records(cipher, pack_id, data, len(data))
    except IntegrityError as exc:
        return PackVerdict(len(data), error=str(exc))
    out = PackVerdict(len(data), len(records) // ENTRY.size, None, _unlisted(records, expected))
    view = memoryview(data)
    check = codec.verify
    for t, _, blob_id, offset, length, raw in ENTRY.iter_unpack(records):
        try:
            if t == BlobType.TREE:
                plain = codec.decode(BlobType.TREE, blob_id, view[offset : offset + length], raw)
                out.trees[blob_id] = _summary(blob_id, plain)
            else:
                check(BlobType.DATA, blob_id, view[offset : offset + length], raw)
        except IntegrityError as exc:
            out.damaged.append((blob_id, str(exc)))
    return out


def _summary(tree_id: bytes, plain: bytes) -> tuple[list[bytes], bytes] | str:
    """What a check needs of a tree: its subtrees and every other blob it references."""
    try:
        tree = Tree.decode(plain, f"tree {tree_id.hex()}")
    except IntegrityError as exc:
        return str(exc)
    subtrees: list[bytes] = []
    chunks: list[bytes] = []
    for node in tree.nodes:
        if node.type == "dir" and node.subtree is not None:
            subtrees.append(node.subtree)
        else:
            chunks.extend(node.content)
    return subtrees, b"".join(chunks)


def check_header(backend: Backend, cipher: Cipher, pack_id: bytes, expected: bytes
                 ) -> PackVerdict:
    """Open a pack's header (its last bytes only) and compare it with ``expected``."""
    try:
        records = read_header_records(backend, ids.pack_key(pack_id), cipher)
    except (IntegrityError, NotFound) as exc:
        return PackVerdict(error=str(exc))
    except StorageError as exc:
        return PackVerdict(error=str(exc), transient=True)
    return PackVerdict(0, len(records) // ENTRY.size, None, _unlisted(records, expected))


# --- worker processes ------------------------------------------------------------------
_worker: tuple[BlobCodec, Cipher] | None = None


def _init_worker(key: bytes, encrypted: bool) -> None:
    global _worker
    k = Key.from_bytes(key)
    _worker = (BlobCodec(k, encrypted), cipher_for(k, encrypted))


def _verify_in_worker(pack_id: bytes, path: str, expected: bytes) -> PackVerdict:
    assert _worker is not None, "worker not initialised"
    with open(path, "rb") as f:
        data = f.read()
    return verify_pack(_worker[0], _worker[1], pack_id, data, expected)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _ready() -> bool:
    return _worker is not None


class PackVerifier:
    """Full pack reads of one check, decoded in threads and, for packs of small blobs, in
    worker processes."""

    def __init__(self, codec: BlobCodec, cipher: Cipher, key: Key, encrypted: bool,
                 processes: int = 0) -> None:
        self.codec, self.cipher = codec, cipher
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="repo-check")
        self._processes: ProcessPoolExecutor | None = None
        self._spool: str | None = None
        if processes > 0:
            try:
                # the bytes go through a file (page cache), not a pipe: multiprocessing's
                # pipe reads cost ~4 ns/byte of system time in the receiving process
                self._spool = tempfile.mkdtemp(prefix="volkeeper-check-")
                self._processes = ProcessPoolExecutor(
                    processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(key.to_bytes(), encrypted))
                for _ in range(processes):  # start them now, beside the caller's work
                    self._processes.submit(_ready)
            except (OSError, RuntimeError, ValueError):
                self._processes = None  # none here (a daemonic worker, a sandbox): threads
                self._remove_spool()
        #: packs read but not yet verified, at most (each holds its bytes in memory)
        self.in_flight = 3 + processes if self._processes is not None else 3

    def submit(self, pack_id: bytes, data: bytes, expected: bytes, blobs: int
               ) -> Future[PackVerdict]:
        """Verify one pack's bytes (holding about ``blobs`` blobs); the future's result is
        its verdict."""
        if self._processes is not None and self._spool is not None \
                and len(data) < SMALL_BLOBS * max(blobs, 1):
            path = os.path.join(self._spool, pack_id.hex())
            with open(path, "wb") as f:
                f.write(data)
            try:
                future = self._processes.submit(_verify_in_worker, pack_id, path, expected)
            except BrokenExecutor:  # a worker died: the rest in threads
                self._processes = None
                _unlink(path)
            else:
                future.add_done_callback(lambda _: _unlink(path))
                return future
        return self._threads.submit(verify_pack, self.codec, self.cipher, pack_id, data,
                                    expected)

    def close(self) -> None:
        """Stop the workers (waits for what was submitted)."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
        self._remove_spool()

    def _remove_spool(self) -> None:
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def __enter__(self) -> PackVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
