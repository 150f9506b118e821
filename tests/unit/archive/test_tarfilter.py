"""Excluded members filtered out of a tar stream (the Docker API path of archives)."""

from __future__ import annotations

import io
import tarfile

import pytest

from common.archive.excludes import Excludes
from common.archive.tarfilter import filter_tar
from common.errors import IntegrityError

LONG = "deep/" + "d" * 120 + "/file.txt"


def stream(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        def add(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE,
                link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE if data is None and kind == tarfile.REGTYPE else kind
            info.linkname = link
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)

        add(".")
        add("cache")
        add("cache/a.bin", b"a" * 1000)
        add("cache/sub")
        add("cache/sub/b", b"b" * 10)
        add("keep")
        add("keep/x.tmp", b"tmp")
        add("keep/y.txt", b"y" * 700)
        add("keep/link-to-tmp", kind=tarfile.LNKTYPE, link="keep/x.tmp")
        add("keep/link-to-y", kind=tarfile.LNKTYPE, link="keep/y.txt")
        add(LONG, b"long name content")
        add("deep/" + "e" * 120 + ".tmp", b"long excluded")
        add("sym", kind=tarfile.SYMTYPE, link="cache/a.bin")
    return buf.getvalue()


def members(data: bytes) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for m in t:
            f = t.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f is not None else None
    return out


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_excluded_members_directories_and_links_to_them_are_dropped(fmt: int) -> None:
    data = stream(fmt)  # long names: pax "path" records, or GNU "L" headers
    f = filter_tar(io.BytesIO(data), Excludes.of(["cache", "*.tmp"]))
    out = b"".join(iter(lambda: f.read(777), b""))
    kept = members(out)
    assert sorted(kept) == sorted([".", "keep", "keep/y.txt", "keep/link-to-y", LONG, "sym"])
    assert kept[LONG] == b"long name content" and kept["keep/y.txt"] == b"y" * 700
    assert sorted(f.left_out) == sorted(["cache", "keep/x.tmp",
                                         "deep/" + "e" * 120 + ".tmp"])
    original = members(data)
    for name, content in kept.items():
        assert original[name] == content


def test_without_a_match_the_stream_passes_byte_for_byte() -> None:
    data = stream(tarfile.PAX_FORMAT)
    f = filter_tar(io.BytesIO(data), Excludes.of(["nothing-like-this"]))
    assert f.read() == data and f.left_out == []


def test_a_stream_cut_inside_a_member_is_an_error() -> None:
    data = stream(tarfile.PAX_FORMAT)
    f = filter_tar(io.BytesIO(data[:2048 + 100]), Excludes.of(["*.tmp"]))
    with pytest.raises(IntegrityError, match="ended inside a member"):
        f.read()
