"""Large files chunked on helper threads beside the walk (``backup.large``): the same chunks
as the walk's own chunker, the same snapshot, and nothing left open after a failure."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from common.repository.backup import large
from common.repository.backup.archiver import BackupOptions, backup_directory, iter_nodes
from common.repository.backup.large import chunk_views
from common.repository.core.chunker import Chunker, ChunkerParams
from common.repository.core.snapshot import list_snapshots
from tests.unit.repository.test_backup import new_repo

TINY = ChunkerParams(64, 256, 1024)


def _cut_both(tmp_path: Path, data: bytes, window: int) -> tuple[list[bytes], list[bytes]]:
    path = tmp_path / "f"
    path.write_bytes(data)
    chunker = Chunker(TINY, seed=12345)
    with open(path, "rb", buffering=0) as f:
        serial = list(chunker.chunk_stream(f))
    fd = os.open(path, os.O_RDONLY)
    try:
        views = [bytes(v) for v in chunk_views(chunker, fd, window)]
    finally:
        os.close(fd)
    return serial, views


@pytest.mark.parametrize("window", [0, 1, 1025, 1100, 2048, 2049, 3000, 8192])
def test_chunk_views_cut_exactly_where_the_stream_chunker_cuts(tmp_path: Path,
                                                               window: int) -> None:
    rnd = random.Random(window)
    for size in (0, 1, 64, 65, 255, 1024, 2047, 2048, 2049, 4096, 6143, 6144, 50_000):
        for data in (rnd.randbytes(size), bytes(size),  # random; zeros: max-size chunks
                     b"".join(b"row %d text\n" % i for i in range(size // 8))[:size]):
            serial, views = _cut_both(tmp_path, data, window)
            assert views == serial, (size, window)
            assert b"".join(views) == data


def _volume(root: Path) -> Path:
    rnd = random.Random(3)
    (root / "db").mkdir(parents=True)
    for i in range(6):  # larger than the chunker's minimum: chunked by the threads
        (root / "db" / f"table{i}").write_bytes(rnd.randbytes(300_000 + 70_000 * i))
    (root / "db" / "same-as-0").write_bytes((root / "db" / "table0").read_bytes())
    (root / "logs" / "old").mkdir(parents=True)
    (root / "logs" / "old" / "app.log").write_bytes(
        b"".join(b"line %d\n" % i for i in range(80_000)))
    with open(root / "logs" / "sparse.img", "wb") as f:  # sparse: also the threads' job
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(rnd.randbytes(200_000))
    for i in range(30):
        (root / "logs" / f"s{i}.txt").write_bytes(rnd.randbytes(rnd.randint(0, 5000)))
    return root


def test_chunking_threads_give_the_same_snapshot_as_the_walk(tmp_path: Path) -> None:
    src = _volume(tmp_path / "v")
    repo = new_repo()  # two full backups (no parent): each reads and chunks every file
    serial = backup_directory(repo, src, host="h", volume="v",
                              options=BackupOptions(chunkers=0))
    threaded = backup_directory(repo, src, host="h", volume="v",
                                options=BackupOptions(chunkers=2))
    assert threaded.tree == serial.tree
    assert (threaded.stats.files, threaded.stats.bytes, threaded.stats.bytes_read,
            threaded.stats.files_read) == (serial.stats.files, serial.stats.bytes,
                                           serial.stats.bytes_read, serial.stats.files_read)
    nodes = dict(iter_nodes(repo, threaded.tree))
    assert nodes["db/same-as-0"].content == nodes["db/table0"].content
    assert nodes["logs/sparse.img"].holes and nodes["logs/sparse.img"].size == 4 << 20
    index = repo.load_index().index
    assert all(c in index for n in nodes.values() for c in n.content)
    # a change in one large file: the next backup reuses every other file and chunk
    with open(src / "db" / "table3", "r+b") as f:
        f.seek(400_000)  # past the first chunk (at most 256 KiB)
        f.write(b"x" * 1000)
    again = backup_directory(repo, src, host="h", volume="v", parent=threaded,
                             options=BackupOptions(chunkers=2))
    assert again.stats.files_read == 1 and again.tree != threaded.tree
    changed = dict(iter_nodes(repo, again.tree))["db/table3"]
    assert changed.content[0] == nodes["db/table3"].content[0]  # before the change
    assert changed.content != nodes["db/table3"].content


def test_a_failing_large_file_fails_the_backup_and_leaves_nothing_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _volume(tmp_path / "v")
    repo = new_repo()
    real = large.chunk_fd

    def broken(*args: Any) -> large.Chunked:
        if args[5].st_size > 600_000:  # the stat of the file
            raise OSError(5, "Input/output error")
        return real(*args)

    monkeypatch.setattr(large, "chunk_fd", broken)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="Input/output"):
        backup_directory(repo, src, host="h", volume="v")
    assert set(os.listdir("/proc/self/fd")) <= before
    assert list_snapshots(repo) == []
    monkeypatch.undo()
    snap = backup_directory(repo, src, host="h", volume="v")
    assert [s.id for s in list_snapshots(repo)] == [snap.id]


def _ids(chunker: Chunker, data: bytes) -> list[tuple[bytes, int]]:
    return [(blob_id(c), len(c)) for c in chunker.chunk_bytes(data)]


def blob_id(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def _changes(rnd: random.Random, data: bytes) -> list[bytes]:
    """Versions of ``data``: regions rewritten, bytes inserted or removed, grown, cut."""
    n = len(data)
    at = rnd.randrange(n)
    out = [data, rnd.randbytes(n), data + rnd.randbytes(700), data + b"x", data[:-1],
           data[: n // 2], data[:at] + rnd.randbytes(3) + data[at + 3:],
           data[:at] + b"ins" + data[at:], data[:at] + data[at + 40:],
           rnd.randbytes(50) + data, data[40:], b"", data[:100]]
    for _ in range(3):  # a few regions rewritten, like the benchmark's mutation
        b = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(n)
            b[i:i + 300] = rnd.randbytes(len(b[i:i + 300]))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_resync_cuts_exactly_where_the_stream_chunker_cuts(tmp_path: Path, seed: int) -> None:
    """Cutting guided by the parent's chunks gives the chunks of a full cut, whatever
    changed (and a stale or wrong layout only costs cutting)."""
    rnd = random.Random(seed)
    chunker = Chunker(TINY, seed=12345)
    size = rnd.choice([1500, 5000, 20_000, 60_000])
    kind = seed % 3
    base = (rnd.randbytes(size) if kind == 0 else bytes(size) if kind == 1 else
            b"".join(b"row %d text\n" % rnd.randrange(99) for _ in range(size // 8))[:size])
    path = tmp_path / "f"
    for new in _changes(rnd, base):
        path.write_bytes(new)
        with open(path, "rb") as f:
            expected = [blob_id(c) for c in chunker.chunk_stream(f)]
        for old in (_ids(chunker, base), _ids(chunker, new), [(b"\0" * 32, 300)] * 9):
            fd = os.open(path, os.O_RDONLY)
            stored: list[bytes] = []
            try:
                out = large.chunk_resync(chunker, blob_id, lambda _b: False,
                                         lambda _t, d, _i, s=stored: s.append(d), fd, old)
            finally:
                os.close(fd)
            assert out.content == expected, (seed, len(new))
            assert out.size == out.read == len(new)
            assert b"".join(stored) == new  # every chunk handed over (none known)
