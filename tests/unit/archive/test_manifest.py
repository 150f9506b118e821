"""Manifests are written and read back as streams, and damage to them is reported."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.archive import ManifestWriter, TarEntry, manifest_key, read_manifest
from common.archive.tarscan import Digest
from common.errors import IntegrityError


def _entries(digest: Digest = "blake3") -> list[TarEntry]:
    return [
        TarEntry(".", "dir", 0, 0o755, 0, 0, 1.5),
        TarEntry("./f\nx ü", "file", 3, 0o4755, 10, 20, 1_600_000_000.123456,
                 xattrs={"user.k": b"\x00\xff"}, **{digest: "ab" * 32}),  # type: ignore[arg-type]
        TarEntry("./bad-\udcff-utf8", "file", 0, 0o644, 0, 0, 0.0, sparse=True,
                 **{digest: "cd" * 32}),  # type: ignore[arg-type]
        TarEntry("./l", "symlink", 0, 0o777, 0, 0, 2.0, link="f\nx ü"),
        TarEntry("./null", "char", 0, 0o600, 0, 0, 2.0, devmajor=1, devminor=3),
    ]


def _write(digest: Digest = "blake3") -> str:
    sink = io.StringIO()
    writer = ManifestWriter(sink, {"volume": "v", "format": "tar.zst"}, digest=digest)
    for e in _entries(digest):
        writer.entry(e)
    writer.summary("ee" * 32, 1234)
    return sink.getvalue()


def test_a_manifest_reads_back_exactly_what_was_written() -> None:
    manifest = read_manifest(io.StringIO(_write()))
    assert manifest.header == {"kind": "volkeeper-manifest", "version": 2, "digest": "blake3",
                               "volume": "v", "format": "tar.zst"}
    assert manifest.digest == "blake3"
    assert list(manifest.entries()) == _entries()
    summary = manifest.summary
    assert (summary.entries, summary.files, summary.bytes) == (5, 2, 3)
    assert (summary.archive_sha256, summary.archive_size) == ("ee" * 32, 1234)


def test_a_version_1_manifest_with_sha256_digests_still_reads_back() -> None:
    text = _write("sha256")
    assert '"digest"' not in text and '"blake3"' not in text
    manifest = read_manifest(io.StringIO(text))
    assert manifest.header == {"kind": "volkeeper-manifest", "version": 1, "volume": "v",
                               "format": "tar.zst"}
    assert manifest.digest == "sha256"
    assert list(manifest.entries()) == _entries("sha256")
    summary = manifest.summary
    assert (summary.entries, summary.files, summary.bytes) == (5, 2, 3)
    assert (summary.archive_sha256, summary.archive_size) == ("ee" * 32, 1234)


def test_every_manifest_line_is_plain_json_with_the_documented_keys() -> None:
    import json

    lines = [json.loads(line) for line in _write().splitlines()]
    assert set(lines[2]) == {"path", "type", "size", "mode", "uid", "gid", "mtime", "blake3",
                             "link", "sparse", "xattrs"}
    assert lines[2]["xattrs"] == {"user.k": "AP8="}
    assert lines[-1]["kind"] == "summary"


def test_the_summary_is_available_without_iterating_first() -> None:
    assert read_manifest(io.StringIO(_write())).summary.archive_size == 1234


def test_a_truncated_manifest_is_an_integrity_error() -> None:
    text = "\n".join(_write().splitlines()[:-1])
    with pytest.raises(IntegrityError, match="no summary"):
        list(read_manifest(io.StringIO(text)).entries())


@pytest.mark.parametrize("text", ["", "{}\n", "not json\n", '{"kind":"volkeeper-manifest",'
                                  '"version":99}\n', '{"kind":"volkeeper-manifest",'
                                  '"version":2,"digest":"md5"}\n'])
def test_something_that_is_not_a_usable_manifest_is_refused(text: str) -> None:
    with pytest.raises(IntegrityError):
        read_manifest(io.StringIO(text))


def test_a_line_with_the_other_digest_than_its_header_names_is_damage() -> None:
    text = _write("blake3").replace('"blake3":"ab', '"sha256":"ab')
    with pytest.raises(IntegrityError, match="malformed"):
        list(read_manifest(io.StringIO(text)).entries())


def test_the_manifest_key_sits_beside_the_archive() -> None:
    assert manifest_key("a/b/x.tar.zst") == "a/b/x.tar.zst.manifest.jsonl"


@given(path=st.text(min_size=1), link=st.none() | st.text(), size=st.integers(0, 2**63),
       mode=st.integers(0, 0o7777), uid=st.integers(0, 2**32), mtime=st.floats(0, 2**33),
       sha=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
       kind=st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
       sparse=st.booleans(), digest=st.sampled_from(["blake3", "sha256"]))
def test_the_fast_manifest_line_is_exactly_the_json_line(
        path: str, link: str | None, size: int, mode: int, uid: int, mtime: float,
        sha: str | None, kind: str, sparse: bool, digest: Digest) -> None:
    import json

    from common.archive.manifest import entry_line, entry_to_dict
    from common.archive.tarscan import TarEntry

    e = TarEntry(path=path, type=kind, size=size, mode=mode, uid=uid, gid=uid // 2,
                 mtime=mtime, link=link, sparse=sparse, **{digest: sha})  # type: ignore[arg-type]
    assert entry_line(e, digest) == json.dumps(entry_to_dict(e, digest),
                                               separators=(",", ":")) + "\n"
