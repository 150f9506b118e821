"""GET /evacuations lists the evacuations newest first with their totals (the console's
evacuations page reads it); a migration outside any evacuation is not one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from common.db.migration_rows import Migration
from common.db.models import utcnow
from tests.unit.api.test_api import Env, _make


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def _row(mid: str, volume: str, batch: str | None, state: str, minutes_ago: int) -> Migration:
    at = utcnow() - timedelta(minutes=minutes_ago)
    return Migration(id=mid, state=state, source_host="h1", source_volume=volume,
                     dest_host="h2", dest_volume=volume, driver="local", driver_opts={},
                     via="local", cutover="stop", remove_source=False, steps={}, phases=[],
                     batch=batch, report={}, created_at=at, finished_at=at,
                     downtime_seconds=1.5 if state == "succeeded" else None,
                     reason=None if state == "succeeded" else "the copy failed")


def test_evacuations_are_listed_newest_first_with_their_totals(env: Env) -> None:
    with env.db.session() as s:
        s.add_all([_row("m1", "a", "old", "succeeded", 60), _row("m2", "b", "old", "failed", 59),
                   _row("m3", "c", "new", "succeeded", 5), _row("m4", "d", None, "succeeded", 1)])
    r = env.client.get("/api/v1/evacuations")
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [e["id"] for e in rows] == ["new", "old"]
    old = rows[1]
    assert old["volumes"] == 2 and old["state"] == "failed"
    assert old["counts"] == {"failed": 1, "succeeded": 1}
    assert (old["host"], old["to_host"]) == ("h1", "h2") and "migrations" not in old
    one = env.client.get("/api/v1/evacuations/old").json()
    assert [m["id"] for m in one["migrations"]] == ["m1", "m2"]
    bad = env.client.get("/api/v1/evacuations", params={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.json()["error"]["message"]
