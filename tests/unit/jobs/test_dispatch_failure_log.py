"""A job that cannot be queued fails, and its error goes to the caller (the embedded CLI
prints it as `error: …`); the warning logged for it is marked as the job's outcome, so
the one-shot CLI's log handler does not print the same message a second time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import Database, JobState, jobs
from common.db.migrate import upgrade
from common.errors import Unavailable
from common.jobs import runner
from common.jobs.service import JobService


class _Refusing:
    def send(self, task: str, host: str, body: dict[str, Any], **_: Any) -> None:
        raise Unavailable("embedded mode has one host, 'laptop'; 'vm' is not it")


def test_a_job_that_cannot_be_queued_is_logged_as_its_outcome(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(home=tmp_path)
    db = Database(settings.effective_database_url)
    upgrade(db, quiet=True)
    with db.session() as s:
        job = jobs.create_job(s, kind="backup", host="vm", volume="data")
    service = JobService(db, _Refusing(), settings)  # type: ignore[arg-type]
    with caplog.at_level("WARNING"), pytest.raises(Unavailable, match="one host"):
        service._dispatch(job, "volkeeper.backup")
    logged = [r for r in caplog.records if "could not queue job" in r.getMessage()]
    assert len(logged) == 1 and getattr(logged[0], runner.OUTCOME, False)
    with db.session() as s:
        assert jobs.get_job(s, job.id).state == JobState.failed
    db.dispose()


def test_embedded_names_this_host_for_a_job_of_another(tmp_path: Path) -> None:
    """A backup made under another host name (VOLKEEPER_HOST_NAME changed, or a copied
    home) restores by naming this host: the hint says so, not only "use the fleet"."""
    from common.jobs.context import JobContext
    from common.jobs.inprocess import InProcessDispatcher

    ctx = JobContext(Settings(home=tmp_path, host_name="laptop"))
    dispatcher = InProcessDispatcher(ctx)
    try:
        with pytest.raises(Unavailable) as e:
            dispatcher.send("volkeeper.restore", "vm", {"job_id": "j"})
        assert "--host laptop" in (e.value.hint or "")
    finally:
        dispatcher.pool.shutdown()
        dispatcher.quick_pool.shutdown()
