"""The incremental tar parser agrees with Python's tarfile and with GNU tar's sparse files."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.archive.tarscan import TarEntry, TarFormatError, TarScanner

NAME_CHARS = st.sampled_from(list("abcXYZ019 -_.ßü日本\n\t'\""))
names = st.text(NAME_CHARS, min_size=1, max_size=30).filter(lambda n: n not in (".", ".."))


@st.composite
def members(draw: st.DrawFn) -> list[tuple[str, str, bytes, dict[str, int | float]]]:
    count = draw(st.integers(1, 12))
    out: list[tuple[str, str, bytes, dict[str, int | float]]] = []
    used: set[str] = set()
    for i in range(count):
        depth = draw(st.integers(0, 6))
        parts = [draw(names) for _ in range(depth)] + [f"{draw(names)}-{i}"]
        path = "/".join(parts)
        if path in used:
            continue
        used.add(path)
        kind = draw(st.sampled_from(["file", "file", "dir", "symlink", "hardlink", "fifo"]))
        if kind == "hardlink" and not any(k == "file" for _, k, _, _ in out):
            kind = "file"
        data = draw(st.binary(max_size=3000)) if kind == "file" else b""
        meta: dict[str, int | float] = {
            "mode": draw(st.integers(0, 0o7777)),
            "uid": draw(st.sampled_from([0, 1000, 65534, 2**21 + 5])),
            "gid": draw(st.sampled_from([0, 1000, 2**21 + 7])),
            "mtime": draw(st.sampled_from([0, 1_600_000_000, 1_600_000_000.25])),
        }
        out.append((path, kind, data, meta))
    return out


def _build(spec: list[tuple[str, str, bytes, dict[str, int | float]]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        files = [p for p, k, _, _ in spec if k == "file"]
        for path, kind, data, meta in spec:
            info = tarfile.TarInfo(path)
            info.mode = int(meta["mode"])
            info.uid, info.gid = int(meta["uid"]), int(meta["gid"])
            info.mtime = meta["mtime"]
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE,
                         "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind == "symlink":
                info.linkname = "target/" + path[-40:]
            if kind == "hardlink":
                info.linkname = files[0]
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()


def _scan(data: bytes, chunk_sizes: list[int]) -> list[TarEntry]:
    out: list[TarEntry] = []
    scanner = TarScanner(out.append)
    pos = 0
    i = 0
    while pos < len(data):
        step = chunk_sizes[i % len(chunk_sizes)]
        scanner.feed(data[pos : pos + step])
        pos += step
        i += 1
    scanner.close()
    return out


KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
         tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.FIFOTYPE: "fifo"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=members(), fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
       chunks=st.lists(st.integers(1, 5000), min_size=1, max_size=5))
def test_the_scanner_sees_what_tarfile_sees(
    spec: list[tuple[str, str, bytes, dict[str, int | float]]], fmt: int, chunks: list[int],
) -> None:
    data = _build(spec, fmt)
    entries = _scan(data, chunks)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        expected = tf.getmembers()
        contents = {m.name: tf.extractfile(m).read() for m in expected  # type: ignore[union-attr]
                    if m.isreg()}
    assert [e.path for e in entries] == [m.name for m in expected]
    for entry, member in zip(entries, expected, strict=True):
        assert entry.type == KINDS[member.type]
        assert (entry.mode, entry.uid, entry.gid) == (member.mode, member.uid, member.gid)
        assert entry.mtime == pytest.approx(member.mtime)
        if entry.type == "file":
            assert entry.size == member.size
            assert entry.sha256 == hashlib.sha256(contents[member.name]).hexdigest()
        else:
            assert entry.sha256 is None
        if entry.type in ("symlink", "hardlink"):
            assert entry.link == member.linkname


@pytest.mark.parametrize("flavour", [
    ["--format=gnu"],
    ["--format=posix", "--sparse-version=0.0"],
    ["--format=posix", "--sparse-version=0.1"],
    ["--format=posix", "--sparse-version=1.0"],
])
def test_sparse_files_of_every_gnu_flavour_hash_to_their_expanded_content(
    flavour: list[str], tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.truncate(20 << 20)
        for offset in (4096, 3 << 20, 7 << 20, (20 << 20) - 10):
            f.seek(offset)
            f.write(os.urandom(10))
    expected = hashlib.sha256((src / "sparse").read_bytes()).hexdigest()
    tar = subprocess.run(["tar", "-c", "--sparse", *flavour, "-C", str(src), "."],
                         check=True, capture_output=True).stdout
    entries = _scan(tar, [777, 65536])
    (entry,) = [e for e in entries if e.path == "./sparse"]
    assert entry.sparse and entry.size == 20 << 20
    assert entry.sha256 == expected


def test_xattrs_written_by_bsdtar_style_libarchive_records_are_decoded() -> None:
    info = tarfile.TarInfo("f")
    info.size = 1
    info.pax_headers = {"LIBARCHIVE.xattr.user.n%3Dx": "aGk="}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(b"z"))
    (entry,) = _scan(buf.getvalue(), [1 << 20])
    assert entry.xattrs == {"user.n=x": b"hi"}


def test_garbage_is_rejected_as_a_malformed_archive() -> None:
    with pytest.raises(TarFormatError):
        _scan(os.urandom(4096), [512])


def test_a_stream_cut_mid_member_is_reported_as_truncated() -> None:
    data = _build([("f", "file", b"x" * 2000, {"mode": 0o644, "uid": 0, "gid": 0,
                                              "mtime": 0})], tarfile.PAX_FORMAT)
    scanner = TarScanner(lambda _e: None)
    scanner.feed(data[:1500])
    with pytest.raises(TarFormatError, match="end-of-archive"):
        scanner.close()
