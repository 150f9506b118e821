"""GNU tar's exclude list is an anonymous file: the names reach tar exactly (odd bytes
too) and nothing is left in the temporary directory, even while tar runs (a process
killed during its backup used to leave its ``tmp*.exclude`` behind)."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest

from common.archive import gnutar


def test_excluded_names_are_left_out_and_no_list_file_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    odd = os.fsdecode(b"caf\xe9")  # not UTF-8: a surrogate-escaped name
    for rel in ("keep/a", "cache/junk", "cache/more/x", "b c/d", f"{odd}/e", "top"):
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode("utf-8", "surrogateescape"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with gnutar.create_stream(src, exclude=["cache", "b c/d", odd, "top"]) as stream:
        assert [p.name for p in scratch.iterdir()] == []  # no named list beside tar
        data = stream.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert "./keep/a" in names and "./b c" in names
    for gone in ("./cache", "./cache/junk", "./b c/d", f"./{odd}", "./top"):
        assert gone not in names
