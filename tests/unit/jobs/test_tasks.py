"""The worker side of forget, against SQLite and a local target: a backup pinned after its
forget was queued is not deleted; otherwise the objects go first, then the catalog row."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Settings
from common.db import catalog, jobs
from common.db.migrate import upgrade
from common.errors import Conflict
from common.jobs import stored_jobs
from common.jobs.context import JobContext
from common.progress import NullTracker

KEY = "volkeeper/archives/h1/data/20260101T000000Z-j.tar"


def test_forget_rechecks_the_pin_on_the_worker_and_deletes_objects_before_the_row(
        tmp_path: Path) -> None:
    ctx = JobContext(Settings(home=tmp_path, host_name="h1"))
    upgrade(ctx.db)
    root = tmp_path / "backups"
    with ctx.db.session() as s:
        catalog.ensure_target(s, "local", root.as_uri())
        bid = catalog.add_backup(s, host="h1", volume="data", target="local", format="tar",
                                 key=KEY, manifest_key=KEY + ".m", checksum="0" * 64).id
        job = jobs.create_job(s, kind="forget", host="h1", volume="data", target="local",
                              backup_id=bid, lock=f"forget/{bid}")
    for k in (KEY, KEY + ".m"):
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_bytes(b"x")
    with ctx.db.session() as s:
        catalog.label_backup(s, bid, pinned=True)  # pinned while the forget was queued
    with pytest.raises(Conflict, match="pinned"):
        stored_jobs.forget(ctx, job, NullTracker())
    assert (root / KEY).is_file() and (root / (KEY + ".m")).is_file()

    with ctx.db.session() as s:
        catalog.label_backup(s, bid, pinned=False)
    result, _ = stored_jobs.forget(ctx, job, NullTracker())
    assert result["deleted_objects"] == [KEY, KEY + ".m"]
    assert not (root / KEY).exists() and not (root / (KEY + ".m")).exists()
    with ctx.db.session() as s:
        assert catalog.list_backups(s) == []
    ctx.db.dispose()
