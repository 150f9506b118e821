"""A target whose repository the catalog knows must not get a new one when it is missing
(not mounted, wiped): the backup fails naming the cause; forgetting its backups then
works (nothing to delete), after which a backup creates a repository as on first use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.db import catalog
from common.db.migrate import upgrade
from common.engine import stored
from common.engine.expected import is_expected, repository_expected
from common.engine.records import StoredBackup
from common.engine.repo import open_repo
from common.errors import NotFound, StorageError
from common.jobs.context import JobContext
from common.repository import ids
from common.storage.memory import MemoryBackend


def _settings(home: Path) -> Settings:
    return Settings(home=home, repository_kdf_n=2**14,  # type: ignore[arg-type]
                    repository_password=SecretStr("correct horse battery"))


def _repo_backup() -> StoredBackup:
    sid = "ab" * 32
    return StoredBackup(id="b1", key=ids.snapshot_key(bytes.fromhex(sid)), manifest_key="",
                        format="repo", checksum="", logical_bytes=1, file_count=1,
                        volume="v", host="h", snapshot_id=sid)


def test_a_missing_repository_the_catalog_knows_is_not_created_anew(tmp_path: Path) -> None:
    backend = MemoryBackend("t")
    settings = _settings(tmp_path)
    with repository_expected(backend.display):
        with pytest.raises(StorageError, match="missing, yet the catalog lists backups"):
            open_repo(backend, settings, create=True)
        assert list(backend.list(ids.PREFIX)) == []  # nothing written
        # forgetting a backup of it: nothing to delete, not an error
        assert stored.forget(backend, _repo_backup(), settings)["deleted_objects"] == []
    assert not is_expected(backend.display)
    open_repo(backend, settings, create=True)  # first use: created
    with repository_expected(backend.display):
        open_repo(backend, settings, create=True)  # exists: opened


def test_forget_still_fails_on_a_repository_without_its_config(tmp_path: Path) -> None:
    backend = MemoryBackend("t")
    settings = _settings(tmp_path)
    open_repo(backend, settings, create=True)
    backend.delete(ids.CONFIG_KEY)  # damaged, not absent: keep the catalog entry
    with pytest.raises(NotFound):
        stored.forget(backend, _repo_backup(), settings)


def test_open_target_expects_the_repository_the_catalog_lists(tmp_path: Path) -> None:
    ctx = JobContext(Settings(home=tmp_path, host_name="h",  # type: ignore[arg-type]
                              allowed_target_roots=str(tmp_path)))
    upgrade(ctx.db)
    (tmp_path / "t").mkdir()
    with ctx.db.session() as s:
        catalog.add_target(s, "t", f"file://{tmp_path / 't'}", {}, {})
    with ctx.open_target("t") as backend:
        assert not is_expected(backend.display)
    with ctx.db.session() as s:
        catalog.add_backup(s, id="b1", job_id="j", host="h", volume="v", target="t",
                           format="tar.zst", key="k", manifest_key="k.m", checksum="c",
                           stored_bytes=1, logical_bytes=1, file_count=1,
                           created_at=datetime.now(UTC))
    with ctx.open_target("t") as backend:
        assert not is_expected(backend.display)  # archives only: no repository yet
    with ctx.db.session() as s:
        catalog.add_backup(s, id="b2", job_id="j2", host="h", volume="v", target="t",
                           format="repo", key="s", manifest_key="", checksum="",
                           stored_bytes=1, logical_bytes=1, file_count=1, snapshot_id="ab",
                           created_at=datetime.now(UTC))
    with ctx.open_target("t") as backend:
        assert is_expected(backend.display)
