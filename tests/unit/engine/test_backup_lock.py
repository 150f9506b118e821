"""A backup writes its snapshot only while its repository lock still holds."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.engine import repo as engine_repo
from common.errors import Conflict
from common.progress import NullTracker
from common.repository.backup import archiver
from common.repository.core import ids
from common.storage.memory import MemoryBackend


def test_a_backup_whose_lock_was_removed_midway_writes_no_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume = tmp_path / "vol"
    (volume / "d").mkdir(parents=True)
    (volume / "d" / "f").write_bytes(b"data")
    backend = MemoryBackend("t")
    settings = Settings(home=tmp_path, repository_kdf_n=2**14,  # type: ignore[call-arg]
                        repository_password=SecretStr("a passphrase long enough"))
    monkeypatch.setattr(engine_repo, "_volume_dir", lambda *a: volume)
    real_list = archiver._Walker._list

    def removing_list(self: archiver._Walker, *args: Any) -> Any:
        for info in list(backend.list(ids.LOCKS_PREFIX)):  # e.g. taken for stale, removed
            backend.delete(info.key)
        return real_list(self, *args)

    monkeypatch.setattr(archiver._Walker, "_list", removing_list)
    docker: Any = SimpleNamespace(volume=lambda name: SimpleNamespace(size_bytes=None))
    with pytest.raises(Conflict, match=r"lock \w+ on .* was lost"):
        engine_repo.backup_volume(docker, backend, host="h", volume="v", job_id="1",
                                  tracker=NullTracker(), settings=settings)
    assert list(backend.list(ids.SNAPSHOTS_PREFIX)) == []
    monkeypatch.setattr(archiver._Walker, "_list", real_list)
    out = engine_repo.backup_volume(docker, backend, host="h", volume="v", job_id="2",
                                    tracker=NullTracker(), settings=settings)
    assert out.file_count == 1  # with its lock in place the same backup commits
