"""Two label changes of one backup at once both count: ``PATCH /backups/{id}`` with
``add_tags`` from two clients kept only the later request's tags (each read the row, then
wrote its own sum: six parallel PATCHes left two tags)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.db import catalog
from tests.unit.api.test_api import Env, _make
from tests.unit.jobs.test_operations import _backup


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def test_a_label_change_waits_for_one_in_flight_and_keeps_its_tags(env: Env) -> None:
    assert_label_changes_add_up(env)


def assert_label_changes_add_up(env: Env, headers: dict[str, str] | None = None) -> None:
    """What every database must do (shared with the PostgreSQL integration test)."""
    backup_id = _backup(env)  # an archive: its tags live in the catalog only

    def other() -> None:
        with env.db.session() as s:
            catalog.label_backup(s, backup_id, add=["b"])

    with env.db.session() as s:
        catalog.label_backup(s, backup_id, add=["a"], pinned=True)  # not committed yet
        late = threading.Thread(target=other)
        late.start()
        time.sleep(0.5)  # it has read the row (before the fix) and waits to write
    late.join(10)
    assert not late.is_alive()
    got = env.client.get(f"/api/v1/backups/{backup_id}", headers=headers).json()
    assert (got["tags"], got["pinned"]) == (["a", "b"], True)


def test_parallel_patches_keep_every_tag(env: Env) -> None:
    backup_id = _backup(env)
    codes: list[int] = []

    def patch(tag: str) -> None:
        r = env.client.patch(f"/api/v1/backups/{backup_id}", json={"add_tags": [tag]})
        codes.append(r.status_code)

    threads = [threading.Thread(target=patch, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert codes == [200] * 6
    got = env.client.get(f"/api/v1/backups/{backup_id}").json()
    assert got["tags"] == [f"t{i}" for i in range(6)]
