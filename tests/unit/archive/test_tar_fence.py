"""Crafted tar streams on which the policy scanner and the extractor (GNU tar, Go's
archive/tar) would disagree are refused, naming the member, before their bytes reach the
extractor."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from common.archive import ExtractPolicy, TarAmbiguityError, extract_archive
from common.archive.reader import CheckedSink
from common.archive.tarscan import MAX_META, TarEntry, TarFormatError, TarScanner
from common.errors import Refused
from common.progress import NullTracker
from tests.tarcraft import (
    END,
    GNU,
    V7,
    header,
    hiding,
    long_name,
    member,
    padded,
    pax,
    record,
)

DEVICE = member("dev-null-twin", b"3", devmajor=1, devminor=3)
FIFO = member("hidden-fifo", b"6")


def scan(data: bytes, step: int = 700) -> list[TarEntry]:
    out: list[TarEntry] = []
    scanner = TarScanner(out.append)
    for i in range(0, len(data), step):
        scanner.feed(data[i : i + step])
    scanner.close()
    return out


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def gnu_extract(data: bytes, dest: Path) -> subprocess.CompletedProcess[bytes]:
    dest.mkdir()
    return subprocess.run(["tar", "-x", "-f", "-", "-C", str(dest)], input=data,
                          capture_output=True, check=False)


@pytest.mark.parametrize("kind", [b"5", b"2", b"1", b"6", b"3", b"4"])
def test_a_non_file_member_with_data_is_refused_naming_it(kind: bytes) -> None:
    data = member("ok", data=b"fine") + hiding(kind, DEVICE, link="ok") + END
    with pytest.raises(TarAmbiguityError, match=r"'cover' is a \w+ with 512 bytes of data"):
        scan(data)


def test_gnu_tar_really_extracts_what_a_directory_member_hides(tmp_path: Path) -> None:
    data = member("ok", data=b"fine") + hiding(b"5", FIFO) + END
    assert gnu_extract(data, tmp_path / "x").returncode == 0
    assert (tmp_path / "x" / "hidden-fifo").exists()  # the premise of the tests above


def test_a_device_hidden_in_a_directory_is_refused_before_it_reaches_the_extractor() -> None:
    data = member("ok", data=b"fine") + hiding(b"5", DEVICE, name="innocent-dir") + END
    sink = Sink()
    with pytest.raises(Refused, match=r"'innocent-dir' is a dir with 512 bytes") as err:
        extract_archive(io.BytesIO(data), "tar", sink, NullTracker(), name="evil.tar",
                        policy=ExtractPolicy())
    assert "evil.tar" in err.value.message and "tar -tvf" in str(err.value.hint)
    assert b"dev-null-twin" not in sink.data
    checked = CheckedSink(io.BytesIO(), ExtractPolicy(), "snapshot x")  # the Docker path
    with pytest.raises(TarAmbiguityError, match="innocent-dir"):
        checked.write(data)


@pytest.mark.parametrize("kind", [b"5", b"2", b"6"])
def test_a_pax_size_override_on_a_non_file_member_is_refused(kind: bytes) -> None:
    data = (pax(record("size", "512")) + header("cover", kind, link="ok")
            + padded(DEVICE) + END)
    with pytest.raises(TarAmbiguityError, match="'cover' is a"):
        scan(data)


def test_a_pax_size_override_on_a_regular_file_is_honoured_as_gnu_tar_does() -> None:
    data = pax(record("size", "5")) + header("f", b"0", 0) + padded(b"hello") + END
    (entry,) = scan(data)
    assert (entry.path, entry.size) == ("f", 5)


def test_a_huge_long_name_header_is_refused_before_its_data_is_buffered() -> None:
    scanner = TarScanner(lambda _e: None)
    with pytest.raises(TarAmbiguityError, match=f"{64 << 20} bytes.*at most {MAX_META}"):
        scanner.feed(header("././@LongLink", b"L", 64 << 20, magic=GNU))
    scanner = TarScanner(lambda _e: None)
    with pytest.raises(TarAmbiguityError, match="pax header of"):
        scanner.feed(header("PaxHeaders/x", b"x", MAX_META + 1))


@pytest.mark.parametrize("prelude", [
    long_name("a") + long_name("b"),
    long_name("a", b"K") + long_name("b", b"K"),
    pax(record("comment", "a")) + pax(record("comment", "b")),
    long_name("long") + pax(record("path", "other")),
    long_name("t", b"K") + pax(record("linkpath", "u")),
    long_name("a") + pax(record("comment", "x"), typeflag=b"g"),
    long_name(""),
    pax(record("path", "")),
    pax(record("path", "a\0b")),
    pax(record("path", "evil"), typeflag=b"g"),
    pax(record("size", "+5")),
    pax(record("uid", " 5")),
    pax(b"+14 path=abcd\n"),
    pax(b"13  path=abc\n"),
    pax(b"12 path=abc"),
    pax(record("GNU.sparse.name", "x")),
    pax(record("GNU.dumpdir", "x")),
    pax(record("atime", "+5")),
    pax(record("uname", "a\0b")),
], ids=["two-L", "two-K", "two-x", "L-and-path", "K-and-linkpath", "L-before-g", "empty-L",
        "empty-path", "nul-in-path", "global-path", "signed-size", "spaced-uid",
        "signed-length", "two-spaces", "no-newline", "sparse-name-alone", "dumpdir",
        "signed-atime", "nul-in-uname"])
def test_metadata_the_extractors_read_differently_is_refused(prelude: bytes) -> None:
    data = prelude + header("f", b"2", link="t") + END
    with pytest.raises(TarAmbiguityError):
        scan(data)


@pytest.mark.parametrize("field", [
    b"\x0000000001000",  # GNU tar skips a leading NUL: 512, not 0
    b"1000\0garbage",  # GNU tar: 512, Go: an error
    b"\x81" + bytes(10) + b"\x01",  # base-256 needs 0x80 or 0xff first
    b"+AAAAAAAAAA\0",  # obsolete base-64
    b"0o1000\0\0\0\0\0\0",
    b"1_000\0\0\0\0\0\0\0",
    b"     \0\0\0\0\0\0\0",
], ids=["leading-nul", "garbage", "base256-0x81", "base64", "0o", "underscore", "blank"])
def test_size_fields_in_unusual_spellings_are_refused(field: bytes) -> None:
    data = header("f", b"0", size_field=field) + padded(DEVICE) + END
    with pytest.raises(TarFormatError, match="size field"):
        scan(data)


def test_base256_sizes_are_read_like_gnu_tar() -> None:
    field = b"\x80" + bytes(9) + (700).to_bytes(2, "big")
    (entry,) = scan(header("f", b"0", size_field=field) + padded(bytes(700)) + END)
    assert entry.size == 700


@pytest.mark.parametrize("flag", [b"V", b"M", b"N", b"D", b"X", b"Q", b"A"])
def test_exotic_member_types_are_refused_by_name(flag: bytes) -> None:
    with pytest.raises(TarAmbiguityError, match=f"'odd' has type {flag!r}"):
        scan(member("odd", flag, b"abc") + END)


def test_members_after_a_zero_block_are_refused_not_silently_dropped() -> None:
    data = member("a", data=b"x") + bytes(512) + DEVICE + END
    with pytest.raises(TarAmbiguityError, match="after its end-of-archive block"):
        scan(data)
    scan(member("a", data=b"x") + END + bytes(8192))  # record padding is fine


@pytest.mark.parametrize("name, flag", [("d/", b"0"), ("d/", b"7")])
def test_a_regular_file_type_named_like_a_directory_is_refused(name: str, flag: bytes) -> None:
    with pytest.raises(TarAmbiguityError, match="ends in '/'"):
        scan(member(name, flag, b"data") + END)
    (entry,) = scan(member("d/", b"\0") + END)  # old-style directory: both agree
    assert entry.type == "dir"


def test_a_checksum_failure_is_refused() -> None:
    block = bytearray(member("f", data=b"x"))
    block[0] = ord("g")
    with pytest.raises(TarFormatError, match="checksum"):
        scan(bytes(block) + END)


def test_unknown_magic_and_star_headers_are_refused() -> None:
    with pytest.raises(TarAmbiguityError, match="magic"):
        scan(member("f", magic=b"ustar\x0001") + END)
    with pytest.raises(TarAmbiguityError, match="star"):
        scan(member("f", patch={508: b"tar\0"}) + END)
    (entry,) = scan(member("f", magic=V7) + END)
    assert entry.type == "file"


def _old_sparse(entries: list[tuple[int, int]], realsize: int, extended: int) -> bytes:
    patch = {483: b"%011o\0" % realsize, 482: bytes([extended])}
    for i, (off, length) in enumerate(entries):
        patch[386 + 24 * i] = b"%011o\0" % off
        patch[386 + 24 * i + 12] = b"%011o\0" % length
    stored = sum(n for _, n in entries)
    return header("sp", b"S", stored, magic=GNU, patch=patch) + padded(b"z" * stored)


def test_old_gnu_sparse_maps_are_checked_like_both_extractors_read_them() -> None:
    (entry,) = scan(_old_sparse([(0, 10), (4096, 10)], 4106, 0) + END)
    assert entry.sparse and entry.size == 4106
    with pytest.raises(TarAmbiguityError, match="malformed"):  # GNU tar: no extension
        scan(_old_sparse([(0, 10)], 10, 1) + DEVICE + END)
    with pytest.raises(TarAmbiguityError, match="covers 4106 bytes"):  # short of realsize
        scan(_old_sparse([(0, 10), (4096, 10)], 9000, 0) + END)
    with pytest.raises(TarAmbiguityError, match="out of order"):
        scan(_old_sparse([(4096, 10), (0, 10)], 4106, 0) + END)
