"""One directory level of a stored backup (common.engine.browse, the restore wizard's
tree): an archive from its manifest, a repository snapshot from its trees — directories
first, subdirectories that only deeper members reveal, a missing path NotFound, a file or
``..`` refused; the root itself (``.`` as backups write it) is
not one of its own entries."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from common.archive.manifest import ManifestWriter
from common.archive.tarmember import TarEntry
from common.engine import stored
from common.engine.records import StoredBackup
from common.errors import InvalidInput, NotFound
from common.storage.local import LocalBackend
from tests.unit.engine.test_stored_operations import KEY, _settings

MEMBERS = [("./", "dir", 0), ("./top.txt", "file", 3), ("./a/b/c.txt", "file", 5),
           ("./a/link", "symlink", 0), ("./a", "dir", 0)]


def _archive(backend: LocalBackend, root: str = "./") -> StoredBackup:
    text = io.StringIO()
    writer = ManifestWriter(text, {"volume": "v"})
    for path, kind, size in [(root, "dir", 0), *MEMBERS[1:]]:
        writer.entry(TarEntry(path=path, type=kind, size=size, mode=0o644, uid=0, gid=0,
                              mtime=1700000000.0, link="top.txt" if kind == "symlink" else None))
    writer.summary("0" * 64, 1)
    backend.put_bytes(KEY + ".manifest.jsonl", text.getvalue().encode())
    return StoredBackup(id="b1", key=KEY, manifest_key=KEY + ".manifest.jsonl", format="tar",
                        checksum="0" * 64, logical_bytes=8, file_count=2, volume="v", host="h")


def _repo(tmp_path: Path, backend: LocalBackend) -> StoredBackup:
    from common.engine.repo import open_repo
    from common.repository import ids
    from common.repository.backup.archiver import backup_directory

    vol = tmp_path / "vol"
    (vol / "a" / "b").mkdir(parents=True)
    (vol / "top.txt").write_text("top")
    (vol / "a" / "b" / "c.txt").write_text("hello")
    (vol / "a" / "link").symlink_to("../top.txt")
    snap = backup_directory(open_repo(backend, _settings(tmp_path), create=True), vol,
                            host="h", volume="v")
    return StoredBackup(id="b2", key=ids.snapshot_key(snap.id), manifest_key="",
                        format="repo", checksum="", logical_bytes=8, file_count=2,
                        volume="v", host="h", snapshot_id=snap.id.hex())


@pytest.mark.parametrize("kind", ["archive", "repo"])
def test_a_backup_is_listed_one_directory_at_a_time(tmp_path: Path, kind: str) -> None:
    backend = LocalBackend(tmp_path / "t")
    b = _archive(backend) if kind == "archive" else _repo(tmp_path, backend)
    settings = _settings(tmp_path)

    def names(path: str) -> list[tuple[str, str]]:
        out = stored.list_dir(backend, b, settings, path)
        assert out["path"] == path.strip("/") and out["more"] == 0
        return [(e["name"], e["type"]) for e in out["entries"]]

    assert names("") == [("a", "dir"), ("top.txt", "file")]
    assert names("/a/") == [("b", "dir"), ("link", "symlink")]
    assert names("a/b") == [("c.txt", "file")]
    assert stored.list_dir(backend, b, settings, "a/b")["entries"][0]["size"] == 5
    with pytest.raises(NotFound, match="'nope'"):
        stored.list_dir(backend, b, settings, "nope")
    with pytest.raises(InvalidInput, match="not a directory"):
        stored.list_dir(backend, b, settings, "top.txt")
    with pytest.raises(InvalidInput, match=r"'\.\.'"):
        stored.list_dir(backend, b, settings, "a/../..")


@pytest.mark.parametrize("root", ["./", ".", ""])
def test_an_archives_root_member_is_not_listed_as_an_entry(tmp_path: Path, root: str) -> None:
    backend = LocalBackend(tmp_path / "t")
    b = _archive(backend, root)
    names = [e["name"] for e in stored.list_dir(backend, b, _settings(tmp_path), "")["entries"]]
    assert names == ["a", "top.txt"]  # "." was listed: the wizard offered "./", refused
