"""Differential test: random and mutated tar streams, parsed by the policy scanner and read
by GNU tar, must yield the same members — whenever the scanner accepts a stream, GNU tar
accepts it too and lists exactly the scanner's members (name, type, size, link target,
owner), and ``tar -x`` creates exactly them; a stream GNU tar rejects is rejected by the
scanner."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from common.archive.tarfields import check_header
from common.archive.tarscan import TarEntry, TarFormatError, TarScanner
from tests.tarcraft import (
    BLOCK,
    END,
    GNU,
    USTAR,
    V7,
    header,
    long_name,
    padded,
    pax,
    record,
    set_checksum,
)

LIST = ["tar", "--list", "--verbose", "--numeric-owner", "--full-time",
        "--quoting-style=escape", "--file=-"]
LINE = re.compile(r"(.)\S{9} (\d+)/(\d+) +(\d+|\d+,\d+) (\S+) (\S+) (.*)")
TYPE_CHAR = {"file": "-C", "dir": "d", "symlink": "l", "hardlink": "h", "char": "c",
             "block": "b", "fifo": "p"}
_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
            0x5C: "\\\\"}

NAME = st.text(st.sampled_from(list("abc/.\n\\ -é")), min_size=1, max_size=12)
LONG = st.text(st.sampled_from(list("ab/")), min_size=90, max_size=260)
FLAGS = [b"0", b"0", b"5", b"2", b"1", b"6", b"3", b"4", b"\0", b"7", b"S", b"V", b"M",
         b"N", b"D", b"X", b"Q", b"x", b"g", b"L", b"K"]
BENIGN_KEYS = ["comment", "uid", "gid", "mtime", "atime", "SCHILY.xattr.user.a", "hdrcharset"]
PAX_KEYS = [*BENIGN_KEYS, "path", "linkpath", "size", "GNU.sparse.name", "GNU.sparse.major",
            "ctime", "uname"]


def escape(name: str) -> str:
    """GNU tar's ``--quoting-style=escape`` in the C locale."""
    return "".join(_ESCAPES.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}")
                   for b in name.encode("utf-8", "surrogateescape"))


def safer(link: str) -> str:
    """GNU tar's ``safer_name_suffix`` on a hard-link target: leading ``/`` and anything
    up to a ``..`` component dropped (it lists and extracts the target that way)."""
    parts = link.split("/")
    if ".." in parts:
        parts = parts[len(parts) - parts[::-1].index("..") :]
    rest = "/".join(parts).lstrip("/")
    return rest or "."


def scan(data: bytes, step: int) -> list[TarEntry] | None:
    out: list[TarEntry] = []
    scanner = TarScanner(out.append)
    try:
        for i in range(0, len(data), step):
            scanner.feed(data[i : i + step])
        scanner.close()
    except TarFormatError:
        return None
    return out


def gnu_list(data: bytes) -> tuple[int, list[str], str]:
    proc = subprocess.run(LIST, input=data, capture_output=True, check=False,
                          env={**os.environ, "LC_ALL": "C"})
    return proc.returncode, proc.stdout.decode("latin-1").splitlines(), \
        proc.stderr.decode("latin-1")


def assert_same(entry: TarEntry, line: str) -> None:
    m = LINE.fullmatch(line)
    assert m is not None, line
    kind, uid, gid, size, _date, _time, tail = m.groups()
    assert kind in TYPE_CHAR[entry.type], (entry, line)  # C: a contiguous file
    assert (int(uid), int(gid)) == (entry.uid, entry.gid), (entry, line)
    want_size = f"{entry.devmajor},{entry.devminor}" if entry.type in ("char", "block") \
        else str(entry.size)
    assert size == want_size, (entry, line)
    name = re.escape(escape(entry.path)) + "/*"
    if entry.type == "symlink":
        name += re.escape(" -> " + escape(entry.link or ""))
    elif entry.type == "hardlink":
        name += re.escape(" link to " + escape(safer(entry.link or "")))
    assert re.fullmatch(name, tail), (entry, line)


# --- random streams ------------------------------------------------------------------

@st.composite
def size_fields(draw: st.DrawFn, size: int) -> bytes:
    """The size field of a header meant to hold ``size``, sometimes spelt oddly."""
    how = draw(st.sampled_from(["plain"] * 6 + ["spaces", "nul-first", "base256", "bad256",
                                                "garbage", "sign", "other"]))
    other = draw(st.sampled_from([0, 1, 511, 512, 513, 1024, 5000]))
    return {
        "plain": b"%011o\0" % size,
        "spaces": (b"%o" % size).rjust(10) + b" \0",
        "nul-first": b"\0" + b"%011o" % size,
        "base256": b"\x80" + size.to_bytes(11, "big"),
        "bad256": b"\x81" + size.to_bytes(11, "big"),
        "garbage": b"%o\0zz" % size + bytes(12),
        "sign": b"+%010o\0" % size,
        "other": b"%011o\0" % other,
    }[how][:12].ljust(12, b"\0")


def odd(draw: st.DrawFn, one_in: int) -> bool:
    """True once in ``one_in`` draws: where a stream turns hostile or damaged."""
    return draw(st.integers(0, one_in - 1)) == 0


@st.composite
def pax_payload(draw: st.DrawFn, keys: list[str], hostile: bool) -> bytes:
    out = b""
    for key in keys:
        value = draw(NAME) if key in ("path", "linkpath", "comment") else \
            draw(st.sampled_from(["0", "86400", "1700000000"] if "time" in key  # one width
                                 else ["0", "5", "1000"]))
        if key.startswith("SCHILY.xattr"):
            value = draw(NAME)
        if hostile and odd(draw, 2):
            value = draw(st.sampled_from(["+5", " 7", "", "4294967296", "512", "a\0b"]))
        rec = record(key, value)
        if hostile and odd(draw, 3):  # malformed: wrong length, blanks, no newline
            rec = draw(st.sampled_from([b"9" + rec, b" " + rec, rec[:-1],
                                        rec.replace(b" ", b"  ", 1), b"+" + rec]))
        out += rec
    return out


@st.composite
def tar_streams(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        hostile = odd(draw, 8)
        flag = draw(st.sampled_from(FLAGS if hostile and odd(draw, 3) else FLAGS[:10]))
        name = draw(st.one_of(NAME, NAME, NAME, LONG))
        if flag == b"\0" and draw(st.booleans()):
            name += "/"
        elif not hostile:
            name = name.rstrip("/") or "n"
        keys = draw(st.lists(st.sampled_from(PAX_KEYS if hostile else BENIGN_KEYS),
                             max_size=3, unique=True))
        if len(name.encode()) > 100 and not odd(draw, 4):
            if draw(st.booleans()):
                parts.append(long_name(name))
            else:
                keys = ["path", *keys]
        if keys:
            exact = "path" in keys and not hostile
            payload = draw(pax_payload([k for k in keys if k != "path"] if exact else keys,
                                       hostile))
            parts.append(pax(record("path", name) + payload if exact else payload))
        for meta in draw(st.lists(st.sampled_from([b"x", b"L", b"K", b"g"]), max_size=2)) \
                if hostile else []:
            payload = draw(pax_payload(draw(st.lists(st.sampled_from(PAX_KEYS), max_size=2)),
                                       hostile))
            parts.append(pax(payload, typeflag=meta) if meta in (b"x", b"g")
                         else long_name(draw(st.one_of(NAME, LONG, st.just(""))), meta))
        data = draw(st.binary(max_size=1200)) if flag in (b"0", b"7", b"\0") else b""
        if hostile and odd(draw, 2):  # data where none belongs: maybe a whole member
            data = header(draw(NAME), draw(st.sampled_from(FLAGS)), link="x") \
                if draw(st.booleans()) else draw(st.binary(min_size=1, max_size=700))
        magic = draw(st.sampled_from([USTAR, USTAR, GNU, V7] +
                                     ([b"ustar\x0001"] if hostile else [])))
        block = bytearray(header(name.encode()[:100], flag, link=draw(NAME).encode(),
                                 magic=magic, uid=draw(st.sampled_from([0, 1000])),
                                 devmajor=draw(st.integers(0, 9)), checksum=False))
        if len(name.encode()) > 100 and magic == USTAR and odd(draw, 3):
            block[345:500] = name.encode()[100:255].ljust(155, b"\0")
        block[124:136] = draw(size_fields(len(data))) if hostile else b"%011o\0" % len(data)
        if hostile and odd(draw, 3):
            block[draw(st.sampled_from([0, 1, 99, 100, 107, 108, 116, 124, 135, 140, 156,
                                        157, 263, 329, 345, 482]))] = \
                draw(st.sampled_from([0, 0x20, 0x80, 0xFF, *b"0178+a/"]))
        if not (hostile and odd(draw, 8)):
            set_checksum(block)
        parts.append(bytes(block) + padded(data))
    parts.append(draw(st.sampled_from([END] * 6 + [bytes(BLOCK), END + bytes(9216), b"",
                                       bytes(BLOCK) + header("late", b"0") + END])))
    return b"".join(parts)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=tar_streams(), step=st.sampled_from([1 << 20, 512, 333]))
def test_the_scanner_and_gnu_tar_list_the_same_members(data: bytes, step: int) -> None:
    entries = scan(data, step)
    rc, lines, err = gnu_list(data)
    if rc != 0:
        assert entries is None, f"GNU tar refused ({err}) what the scanner accepted"
    if entries is None:
        return
    assert len(lines) == len(entries), (entries, lines, err)
    for entry, line in zip(entries, lines, strict=True):
        assert_same(entry, line)


# --- extraction -----------------------------------------------------------------------

@st.composite
def flat_streams(draw: st.DrawFn) -> bytes:
    """Extractable streams of unique flat names; non-file members sometimes carry data
    (possibly a whole member): what ``tar -x`` creates must be what the scanner saw."""
    parts: list[bytes] = []
    files: list[str] = []
    for i in range(draw(st.integers(1, 5))):
        name = f"m{i}"
        flag = draw(st.sampled_from([b"0", b"5", b"2", b"6", b"1", b"\0"]))
        if flag == b"1" and not files:
            flag = b"0"
        data = draw(st.binary(max_size=600)) if flag in (b"0", b"\0") else b""
        if flag not in (b"0", b"\0") and draw(st.booleans()):
            data = header(f"h{i}", draw(st.sampled_from([b"0", b"5", b"6"])))
        if flag == b"0":
            files.append(name)
        link = files[0] if flag == b"1" else "target"
        parts.append(header(name, flag, len(data), link=link) + padded(data))
    return b"".join(parts) + END


def walk(root: Path) -> dict[str, str]:
    out = {}
    for path in root.rglob("*"):
        kind = "dir" if path.is_dir() and not path.is_symlink() else \
            "symlink" if path.is_symlink() else "fifo" if path.is_fifo() else "file"
        out[str(path.relative_to(root))] = kind
    return out


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=flat_streams())
def test_what_gnu_tar_extracts_is_what_the_scanner_saw(data: bytes) -> None:
    entries = scan(data, 1 << 20)
    assume(entries is not None)
    assert entries is not None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["tar", "-x", "-f", "-", "-C", tmp], input=data,
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr
        seen = {e.path: "file" if e.type == "hardlink" else e.type for e in entries}
        assert walk(Path(tmp)) == seen


def test_the_generators_reach_both_outcomes() -> None:
    """Guard against a generator that only ever produces refused (or accepted) streams."""
    good = header("f", b"0", 3) + padded(b"abc") + END
    assert scan(good, 512) is not None and gnu_list(good)[0] == 0
    hidden = header("d", b"5", BLOCK) + header("h", b"6") + END
    assert scan(hidden, 512) is None
    with tarfile.open(fileobj=__import__("io").BytesIO(good)) as t:
        assert t.getnames() == ["f"]


# --- sparse members --------------------------------------------------------------------

SPARSE_FLAVOURS = [["--format=gnu"], ["--format=posix", "--sparse-version=0.0"],
                   ["--format=posix", "--sparse-version=0.1"],
                   ["--format=posix", "--sparse-version=1.0"]]


def _sparse_archives() -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "s", "wb") as f:
            f.truncate(40_000)
            for offset in (4096, 20_000, 39_990):
                f.seek(offset)
                f.write(b"0123456789")
        return [subprocess.run(["tar", "-c", "--sparse", *flavour, "-b1", "-C", tmp, "s"],
                               check=True, capture_output=True).stdout
                for flavour in SPARSE_FLAVOURS]


SPARSE = _sparse_archives()


def _looks_like_header(block: bytes) -> bool:
    try:
        check_header(block)
    except TarFormatError:
        return False
    return True


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, len(SPARSE) - 1),
       edits=st.lists(st.tuples(st.integers(0, 4 * BLOCK - 1),
                                st.sampled_from(b"0123456789\n,\0 ")), max_size=3))
def test_sparse_members_are_read_as_gnu_tar_extracts_them(
        which: int, edits: list[tuple[int, int]]) -> None:
    """GNU-made sparse archives with digits of their maps and sizes changed: whatever the
    scanner accepts, GNU tar lists alike and extracts to the content the scanner hashed."""
    data = bytearray(SPARSE[which])
    headers = [at for at in range(0, 4 * BLOCK, BLOCK)
               if _looks_like_header(bytes(data[at : at + BLOCK]))]
    for at, byte in edits:
        data[at] = byte
    for at in headers:
        block = bytearray(data[at : at + BLOCK])
        set_checksum(block)
        data[at : at + BLOCK] = block
    raw = bytes(data)
    entries = scan(raw, 333)
    rc, lines, err = gnu_list(raw)
    if rc != 0:
        assert entries is None, f"GNU tar refused ({err}) what the scanner accepted"
    if entries is None:
        return
    assert len(lines) == len(entries), (entries, lines, err)
    for entry, line in zip(entries, lines, strict=True):
        assert_same(entry, line)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["tar", "-x", "-f", "-", "-C", tmp], input=raw,
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr
        for entry in entries:
            content = (Path(tmp) / entry.path).read_bytes()
            assert (len(content), hashlib.sha256(content).hexdigest()) == \
                (entry.size, entry.sha256), entry
