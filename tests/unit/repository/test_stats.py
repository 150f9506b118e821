"""Repository statistics against numbers computed independently from the source files and
the pack headers."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.core.ids import BlobType
from common.repository.core.pack import read_pack_header
from common.repository.maintenance.stats import repository_stats
from tests.unit.repository.test_backup import new_repo

SEAL_OVERHEAD = 1 + 12 + 16 + 1  # format byte, nonce, tag, compression byte


def files_of(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]


def test_stats_match_sizes_counted_from_the_files_and_pack_headers(tmp_path: Path) -> None:
    rnd = random.Random(7)
    shared, text = rnd.randbytes(5000), b"compressible line\n" * 700  # 12,600 bytes
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "sub").mkdir(parents=True)
    (two / "deep" / "er").mkdir(parents=True)
    (one / "a").write_bytes(shared)
    (one / "b").write_bytes(rnd.randbytes(3000))
    (one / "sub" / "c").write_bytes(text)
    (one / "empty").write_bytes(b"")
    (two / "a-again").write_bytes(shared)
    (two / "d").write_bytes(rnd.randbytes(7000))
    (two / "deep" / "er" / "c").write_bytes(text)
    (two / "link").symlink_to("d")

    repo = new_repo()  # chunks of at least 16 KiB: every file here is one chunk
    s1 = backup_directory(repo, one, host="h", volume="one")
    s2 = backup_directory(repo, two, host="h", volume="two")
    backup_directory(repo, one, host="h", volume="one", parent=s1)
    stats = repository_stats(repo)

    contents = files_of(one) * 2 + files_of(two)
    distinct = {hashlib.sha256(c).digest(): c for c in contents if c}
    assert stats.snapshots == 3
    assert stats.files == len(contents) == 11
    assert stats.logical_bytes == sum(map(len, contents)) == 2 * 20600 + 24600
    assert stats.data_blobs == len(distinct) == 4
    assert stats.unique_bytes == sum(map(len, distinct.values())) == 5000 + 3000 + 12600 + 7000

    wanted = {repo.codec.blob_id(c): c for c in distinct.values()}
    headers = [e for o in repo.backend.list(ids.PACKS_PREFIX)
               for e in read_pack_header(repo.backend, o.key, repo.cipher)]
    lengths = {e.blob_id: e.length for e in headers if e.blob_type == BlobType.DATA}
    assert stats.stored_bytes == sum(lengths[b] for b in wanted)
    for blob_id, content in wanted.items():  # random data is stored raw, text compressed
        if content == text:
            assert lengths[blob_id] < len(text) // 10
        else:
            assert lengths[blob_id] == len(content) + SEAL_OVERHEAD
    assert stats.tree_blobs == len({e.blob_id for e in headers if e.blob_type == BlobType.TREE})
    assert stats.tree_blobs == 5  # one, one/sub, two, two/deep, two/deep/er
    assert stats.packs == len(list(repo.backend.list(ids.PACKS_PREFIX)))
    assert stats.pack_bytes == sum(o.size for o in repo.backend.list(ids.PACKS_PREFIX))
    assert stats.dedup_ratio == stats.logical_bytes / stats.unique_bytes > 2
    assert stats.compression_ratio == stats.unique_bytes / stats.stored_bytes > 1
    assert stats.to_dict()["dedup_ratio"] == round(stats.dedup_ratio, 4)

    only_two = repository_stats(repo, [s2])
    two_files = files_of(two)
    assert (only_two.snapshots, only_two.files) == (1, 3)
    assert only_two.logical_bytes == only_two.unique_bytes == sum(map(len, two_files))
    assert only_two.dedup_ratio == 1.0
    assert only_two.pack_bytes == stats.pack_bytes  # pack totals are repository-wide


def test_stats_of_an_empty_repository_are_zero_with_neutral_ratios() -> None:
    stats = repository_stats(new_repo())
    assert (stats.snapshots, stats.logical_bytes, stats.stored_bytes, stats.packs) == (0, 0, 0, 0)
    assert stats.dedup_ratio == stats.compression_ratio == 1.0


def test_a_sparse_file_counts_its_size_but_stores_only_its_data(tmp_path: Path) -> None:
    vol = tmp_path / "v"
    vol.mkdir()
    with open(vol / "sparse", "wb") as f:
        f.write(b"x" * 4096)
        f.truncate(64 << 20)
    if os.stat(vol / "sparse").st_blocks * 512 >= 1 << 20:
        pytest.skip("this filesystem does not keep holes")
    repo = new_repo()
    backup_directory(repo, vol, host="h", volume="v")
    stats = repository_stats(repo)
    assert stats.logical_bytes == 64 << 20
    assert stats.unique_bytes == 4096
