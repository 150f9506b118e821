"""A restore's dry-run checks show sizes as the rest of the CLI does (``1.5 GiB``), not
raw byte counts (``28020772864 bytes free, 6 needed``); the numbers themselves stay in
the validation's fields (``free_bytes``, ``restore_bytes``) for scripts."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from common.engine import validate
from common.engine.formats import archive_objects
from common.engine.records import StoredBackup
from common.units import size
from tests.unit.archive.test_helpers import backup

Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize(("n", "shown"), [(None, "-"), (0, "0 B"), (1023, "1023 B"),
                                          (1536, "1.5 KiB"), (28020772864, "26.1 GiB"),
                                          (3 << 40, "3.0 TiB")])
def test_sizes_are_human(n: int | None, shown: str) -> None:
    assert size(n) == shown


def _space(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int,
           need: int) -> validate.Validation:
    monkeypatch.setattr(validate, "_space_probe", lambda *a: tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(0, 0, free))
    v = validate.Validation(backup_id="b", host="h", volume="v", restore_bytes=need)
    validate._check_space(v, Any, "v", Any)  # type: ignore[arg-type]
    return v


def test_the_free_space_check_shows_human_sizes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    v = _space(monkeypatch, tmp_path, 28020772864, 6)
    assert v.checks[-1].detail == "26.1 GiB free, 6 B needed"
    assert (v.free_bytes, v.restore_bytes) == (28020772864, 6)
    short = _space(monkeypatch, tmp_path, 1 << 20, 3 << 30)
    assert not short.ok
    assert short.checks[-1].detail.startswith(f"1.0 MiB free at {tmp_path}, the restore "
                                              "needs 3.0 GiB — ")


def test_the_stored_objects_show_their_sizes_human(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.txt").write_text("x" * 5000)
    stored = backup(tmp_path / "v", "tar")
    row = StoredBackup(id="b", key=stored.key, manifest_key=stored.key + ".manifest.jsonl",
                       format="tar", checksum=stored.stats.archive_sha256,
                       logical_bytes=5000, file_count=1, volume="v", host="h")
    stored.backend.put_bytes(row.manifest_key, stored.manifest_text.encode())
    details = {c.name: c.detail for c in archive_objects.check_stored(stored.backend, row,
                                                                      None)}
    assert details["archive present"].endswith(f"({size(len(stored.data))})")
    assert " bytes" not in details["archive present"] + details["manifest present"]
