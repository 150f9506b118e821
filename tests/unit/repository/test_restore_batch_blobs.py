"""One restore batch decodes each blob when first written and drops it after its last
write: a blob shared by files (and used twice in one file) is written everywhere, an
uncompressed blob is written from its decrypted body, a damaged blob names exactly the
files that needed it, and a blob no file uses is still verified."""

from __future__ import annotations

import os
from pathlib import Path

from common.repository.core.blob import BlobCodec
from common.repository.core.crypto import Key
from common.repository.core.ids import BlobType
from common.repository.restore.batch import WHOLE, BatchWriter, BlobRecord, FileRecord


def _meta(mtime_ns: int = 1_600_000_000_000_000_000) -> tuple[int, int, int, int, tuple[()], None]:
    return (0o640, os.geteuid(), os.getegid(), mtime_ns, (), None)


def test_a_batch_writes_shared_uncompressed_and_damaged_blobs_and_verifies_unused_ones(
        tmp_path: Path) -> None:
    codec = BlobCodec(Key.new(), True, 3)
    shared = b"shared text " * 4000  # compresses
    noise = os.urandom(50_000)  # does not: stored uncompressed, written from a view
    bad = b"will be damaged " * 100
    unused = b"no file uses this blob"
    blobs = [codec.encode(BlobType.DATA, data) for data in (shared, noise, bad, unused)]
    span = bytearray()
    recs: list[BlobRecord] = []
    for blob in blobs:
        recs.append((0, len(span), len(blob.data), int(BlobType.DATA), blob.blob_id,
                     blob.raw_length))
        span += blob.data
    span[recs[2][1] + 20] ^= 0xFF  # flip a byte inside the third blob
    n_shared, n_noise = len(shared), len(noise)
    files: list[FileRecord] = [
        (WHOLE, "one", _meta(), n_shared + n_noise, False,
         [(0, 0, 0, n_shared), (1, n_shared, 0, n_noise)]),
        (WHOLE, "twice", _meta(), 2 * n_shared, False,
         [(0, 0, 0, n_shared), (0, n_shared, 0, n_shared)]),
        (WHOLE, "part-of-noise", _meta(), 100, False, [(1, 0, 10, 100)]),
        (WHOLE, "broken", _meta(), len(bad), False, [(2, 0, 0, len(bad))]),
    ]
    writer = BatchWriter(codec, str(tmp_path), (os.geteuid(), os.getegid()), None)

    damaged, broken, warnings, decoded = writer.run(([bytes(span)], recs, files))

    assert (tmp_path / "one").read_bytes() == shared + noise
    assert (tmp_path / "twice").read_bytes() == shared + shared
    assert (tmp_path / "part-of-noise").read_bytes() == noise[10:110]
    assert [blob_id for blob_id, _why in damaged] == [blobs[2].blob_id]
    assert [(rel, size) for rel, _why, size in broken] == [("broken", len(bad))]
    assert warnings == []
    assert decoded == 3  # shared, noise and the unused one: each decoded once
    assert (tmp_path / "one").stat().st_mtime_ns == 1_600_000_000_000_000_000
    assert (tmp_path / "one").stat().st_mode & 0o777 == 0o640
