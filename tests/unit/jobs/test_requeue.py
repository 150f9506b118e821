"""A queued job whose task message was lost (a Redis restart loses what waits in it) is
not lost: the fleet's sweep sends its task again once it has waited ``requeue_seconds``,
then at most once per ``requeue_seconds``; started and fresh jobs are left alone
(tests/integration/fleet/test_restarts.py restarts a real Redis)."""

from __future__ import annotations

import time
from pathlib import Path

from common.config import Settings
from common.db import Database, JobState, jobs
from common.db.migrate import upgrade
from common.jobs.sweep import Requeue
from tests.unit.api.test_api import RecordingDispatcher


def test_a_long_queued_job_is_sent_again_once_per_period_and_others_are_not(
        tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, requeue_seconds=0.5)
    db = Database(settings.effective_database_url)
    upgrade(db)
    with db.session() as s:
        waiting = jobs.create_job(s, kind="backup", host="h1", volume="v1").id
        running = jobs.create_job(s, kind="restore", host="h1", volume="v2").id
        quick = jobs.create_job(s, kind="validate", host="h2", volume="v3",
                                lock="validate/x").id
    with db.session() as s:
        assert jobs.start_job(s, running, "h1/1") is not None
    dispatcher = RecordingDispatcher()
    requeue = Requeue(db, dispatcher, settings)
    assert requeue() == []  # nothing has waited long enough yet
    time.sleep(0.7)
    with db.session() as s:
        fresh = jobs.create_job(s, kind="backup", host="h1", volume="v4").id
    sent = requeue()
    assert sorted(sent) == sorted([waiting, quick])  # not the fresh one, nor the running
    assert fresh not in sent
    assert ("volkeeper.backup", "h1", {"job_id": waiting}) in dispatcher.sent
    assert ("volkeeper.validate", "h2", {"job_id": quick}) in dispatcher.sent
    assert requeue() == []  # not again within the period
    time.sleep(0.6)
    assert waiting in requeue()  # still queued a period later: once more
    with db.session() as s:
        jobs.finish_job(s, waiting, JobState.failed, error="x")
    time.sleep(0.6)
    assert waiting not in requeue()
    dispatcher.fail = True  # the broker is still down: no error, tried at the next sweep
    time.sleep(0.6)
    assert requeue() == []
