"""GNU tar writes its stream in 1 MiB records (fewer, larger pipe writes), and the stored
archive is still the one a default ``tar -c`` makes: the zero padding of the big record
beyond tar's usual 10 KiB record is left out, nothing else."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import BinaryIO

import pytest

from common.archive import gnutar, write_archive
from common.archive.tarscan import TarAmbiguityError
from common.errors import IntegrityError
from common.progress import NullTracker
from common.storage.memory import MemoryBackend

TAR_RECORD = 10240


def _tree(root: Path, files: int = 30) -> None:
    (root / "d").mkdir()
    for i in range(files):
        (root / "d" / f"f{i}").write_bytes(bytes([65 + i % 26]) * (i * 997))


def _stored_tar(stream: BinaryIO) -> tuple[bytes, int]:
    backend = MemoryBackend()
    writer = backend.open_writer("a.tar")
    stats = write_archive(stream, writer, "tar", NullTracker())
    writer.commit()
    return backend.get_bytes("a.tar"), stats.tar_bytes


def test_tar_writes_one_mib_records_and_the_archive_keeps_the_default_layout(
        tmp_path: Path) -> None:
    _tree(tmp_path)
    with gnutar.create_stream(tmp_path) as stream:
        raw = stream.read()
    assert len(raw) % gnutar.RECORD == 0
    with gnutar.create_stream(tmp_path) as stream:
        data, tar_bytes = _stored_tar(stream)
    assert tar_bytes == len(data) and len(data) % TAR_RECORD == 0
    assert len(data) < len(raw)
    # the same stream (sparse-free tree: no pid in member names), only shorter padding
    assert raw[: len(data)] == data and raw[len(data):] == bytes(len(raw) - len(data))
    # as long as plain `tar -c` of the same tree
    plain = subprocess.run(["tar", "-c", "--format=posix", "-C", str(tmp_path), "."],
                           capture_output=True, check=True).stdout
    assert len(data) == len(plain)
    listed = subprocess.run(["tar", "-t"], input=data, capture_output=True, check=True)
    assert len(listed.stdout.splitlines()) == 32  # ".", "d", 30 files


def test_a_stream_without_record_padding_is_stored_whole() -> None:
    """Go's archive/tar (Docker's archive API) ends with the two zero blocks only."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("./x")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    padded = buf.getvalue()
    assert len(padded) == TAR_RECORD
    end = -(-len(padded.rstrip(b"\0")) // 512) * 512  # after the member's data block
    unpadded = padded[: end + 1024]  # and the two zero blocks
    data, _ = _stored_tar(io.BytesIO(unpadded))
    assert data == unpadded


def test_non_zero_bytes_after_the_end_marker_are_still_refused(tmp_path: Path) -> None:
    _tree(tmp_path, files=3)
    with gnutar.create_stream(tmp_path) as stream:
        raw = bytearray(stream.read())
    raw[-100] = 1  # in the big record's padding, beyond the 10 KiB a default tar pads to
    with pytest.raises(IntegrityError) as info:
        _stored_tar(io.BytesIO(bytes(raw)))
    assert isinstance(info.value.__cause__, TarAmbiguityError)
