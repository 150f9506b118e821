"""The restore policy of archives: device nodes refused, and a size budget from the catalog
that stops a tampered archive before its excess bytes reach the extracting tar."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from common.archive import ExtractPolicy, extract_archive, reader
from common.errors import Refused
from common.progress import NullTracker
from tests.unit.archive.test_helpers import backup, build_tree


class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def _tar(members: list[tuple[str, bytes | None, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return zstandard.ZstdCompressor().compress(buf.getvalue())


def test_content_beyond_the_catalog_size_is_refused_before_it_reaches_tar() -> None:
    raw = _tar([("small", os.urandom(1 << 20), tarfile.REGTYPE),
                ("huge", bytes(64 << 20), tarfile.REGTYPE)])  # compresses to almost nothing
    sink = CountingSink()
    with pytest.raises(Refused, match=r"'huge'.*1048576 bytes"):
        extract_archive(io.BytesIO(raw), "tar.zst", sink, NullTracker(),
                        policy=ExtractPolicy(content_bytes=1 << 20, files=1))
    assert sink.bytes < 3 << 20  # the huge member's data never went to the sink


def test_metadata_beyond_the_slack_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "META_SLACK", 256 * 1024)
    raw = _tar([(f"d{i}", None, tarfile.DIRTYPE) for i in range(3000)])
    sink = CountingSink()
    with pytest.raises(Refused, match="tar stream exceeds"):
        extract_archive(io.BytesIO(raw), "tar.zst", sink, NullTracker(),
                        policy=ExtractPolicy(content_bytes=0, files=0))
    assert sink.bytes <= 256 * 1024


def test_a_genuine_archive_fits_its_catalog_size_exactly(tmp_path: Path) -> None:
    build_tree(tmp_path / "src")
    stored = backup(tmp_path / "src", "tar.zst")
    sink = CountingSink()
    stats = extract_archive(io.BytesIO(stored.data), "tar.zst", sink, NullTracker(),
                            policy=ExtractPolicy(allow_devices=True,
                                                 content_bytes=stored.stats.file_bytes,
                                                 files=stored.stats.files))
    assert stats.tar_bytes == sink.bytes > 0  # sparse: less tar than logical content
    with pytest.raises(Refused, match="more than the"):  # one byte less is too little
        extract_archive(io.BytesIO(stored.data), "tar.zst", CountingSink(), NullTracker(),
                        policy=ExtractPolicy(allow_devices=True,
                                             content_bytes=stored.stats.file_bytes - 1,
                                             files=stored.stats.files))
    with pytest.raises(Refused, match="device node"):  # the tree holds /dev/null's twin
        extract_archive(io.BytesIO(stored.data), "tar.zst", CountingSink(), NullTracker(),
                        policy=ExtractPolicy(content_bytes=stored.stats.file_bytes,
                                             files=stored.stats.files))


def test_a_checked_sink_refuses_a_device_node_before_passing_it_on() -> None:
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(
        _tar([("ok.txt", b"fine", tarfile.REGTYPE), ("pipe", None, tarfile.FIFOTYPE),
              ("zero", None, tarfile.CHRTYPE)]))
    out = io.BytesIO()
    sink = reader.CheckedSink(out, ExtractPolicy(), "snapshot x")
    with pytest.raises(Refused, match=r"'zero'.*char device node"):
        for i in range(0, len(raw), 512):
            sink.write(raw[i : i + 512])
    assert b"zero" not in out.getvalue() and b"pipe" in out.getvalue()
    allowed = io.BytesIO()
    reader.CheckedSink(allowed, ExtractPolicy(allow_devices=True), "x").write(raw)
    assert allowed.getvalue() == raw
