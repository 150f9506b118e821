"""The damage drill on a small scale (``benchmarks/damage_drill.py`` runs 100 flips and 20
truncations): every single-byte flip or truncation of a stored object is found by verify
(repositories with read-data), the object is named (and the files, where file data is
damaged), and no restore of damaged data succeeds with different bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from benchmarks.damage_drill import make_tree, run_drill, table
from common.archive import ManifestWriter, gnutar, write_archive
from common.archive.manifest import manifest_key
from common.config import Settings
from common.engine.records import StoredBackup
from common.engine.verify import verify_backup
from common.progress import NullTracker
from common.storage.local import LocalBackend


@pytest.mark.parametrize("seed", [7, 8])
def test_every_flip_and_truncation_is_found_named_and_no_restore_of_it_succeeds_silently(
    seed: int, tmp_path: Path,
) -> None:
    results = run_drill(seed, flips=10, truncations=3, workdir=tmp_path)
    counts = results.count()
    assert counts["trials"] == 13
    assert [t.line() for t in results.failures] == [], table(results)
    assert counts["found"] == counts["named"] == 13 and counts["corrupt"] == 0
    # a restore succeeds only where the damaged object is not read by it (a manifest, a
    # pack header: restores read blobs where the index says) — and then bytes are equal
    assert counts["refused"] + counts["intact"] == 13


def test_every_byte_of_a_manifest_header_and_summary_is_covered(tmp_path: Path) -> None:
    """The manifest's summary holds a sha256 of its other lines: a flipped byte the JSON
    would still parse (a header value, a key name) is found, and blamed on the manifest."""
    src = tmp_path / "src"
    make_tree(src, 3)
    backend = LocalBackend(tmp_path / "target")
    key = "volkeeper/archives/h/v/20260101T000000Z-j.tar.zst"
    sink = io.StringIO()
    meta = {"volume": "v", "host": "h", "created_at": "2026-01-01T00:00:00+00:00",
            "format": "tar.zst", "archive_key": key, "driver": "local", "job_id": "j"}
    with backend.open_writer(key) as writer, gnutar.create_stream(src) as stream:
        stats = write_archive(stream, writer, "tar.zst", NullTracker(),
                              manifest=ManifestWriter(sink, meta))
        writer.commit()
    text = sink.getvalue().encode()
    mkey = manifest_key(key)
    backup = StoredBackup(id="b", key=key, manifest_key=mkey, format="tar.zst",
                          checksum=stats.archive_sha256, logical_bytes=stats.file_bytes,
                          file_count=stats.files, volume="v", host="h")
    settings = Settings(home=tmp_path)
    header_end = text.index(b"\n") + 1
    summary_start = text.rindex(b"\n", 0, len(text) - 1) + 1
    missed = []
    for at in [*range(header_end), *range(summary_start, len(text))]:
        damaged = bytearray(text)
        damaged[at] ^= 0x01
        backend.put_bytes(mkey, bytes(damaged))
        out = verify_backup(backend, backup, NullTracker(), settings)
        if out.ok or out.damaged_objects != [mkey]:
            missed.append((at, chr(text[at]), out.damaged_objects))
    assert missed == []
    backend.put_bytes(mkey, text)
    assert verify_backup(backend, backup, NullTracker(), settings).ok
