"""The audit gaps of issue 11's review: a rollback is one entry (not also the replace it
queues), and a host's inventory refresh and a restore's dry run are audited too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common.db import JobState, catalog, jobs
from common.db.models import utcnow
from common.errors import Unavailable
from tests.unit.api.test_api import Env, _make


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def entries(env: Env, action: str = "") -> list[tuple[str, str, str]]:
    got = env.client.get("/api/v1/audit", params={"action": action, "limit": 100}).json()
    return [(e["action"], e["object"], e["outcome"].split(":")[0]) for e in reversed(got)]


def test_a_rollback_is_audited_once_as_a_rollback(env: Env) -> None:
    with env.db.session() as s:
        safety = catalog.add_backup(s, host="h1", volume="data", target="local",
                                    format="tar.zst", key="k", manifest_key="k.m",
                                    checksum="0" * 64, kind="safety",
                                    expires_at=utcnow() + timedelta(hours=1))
        replaced = jobs.create_job(s, kind="restore", host="h1", volume="data",
                                   params={"mode": "replace"})
        jobs.finish_job(s, replaced.id, JobState.succeeded,
                        result={"safety_backup_id": safety.id, "replace_state": "done"})
    r = env.client.post(f"/api/v1/restores/{replaced.id}/rollback")
    assert r.status_code == 202, r.text
    assert r.json()["params"]["mode"] == "replace"
    assert entries(env, "restore") == [("restore.rollback", replaced.id, "queued")]


def test_an_inventory_refresh_is_audited_and_so_is_its_refusal(env: Env) -> None:
    assert env.client.post("/api/v1/hosts/h1/refresh").status_code == 202
    assert env.client.post("/api/v1/hosts/nowhere/refresh").status_code == 404
    assert entries(env, "host.") == [("host.refresh", "h1", "ok"),
                                     ("host.refresh", "nowhere", "error")]
    assert ("volkeeper.inventory", "h1", {}) in env.dispatcher.sent


def test_a_restore_dry_run_is_audited(env: Env) -> None:
    with env.db.session() as s:
        backup_id = catalog.add_backup(s, host="h1", volume="data", target="local",
                                       format="tar", key="k", manifest_key="k.m",
                                       checksum="0" * 64).id
    assert env.client.post("/api/v1/restores/validate",
                           json={"backup_id": "nope"}).status_code == 404
    service: Any = env.client.app.state.volkeeper.service  # type: ignore[attr-defined]
    with pytest.raises(Unavailable):  # nothing runs the job here: the wait times out
        service.validate_restore(backup_id=backup_id, into="copy", timeout=0.1,
                                 requested_by="ops")
    assert entries(env, "restore.validate") == [("restore.validate", "nope", "error"),
                                                ("restore.validate", backup_id, "error")]
