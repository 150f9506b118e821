"""Fencing of running jobs on PostgreSQL and in the fleet: the database's clock judges
heartbeats and hosts (the cases of tests/unit/jobs/test_fencing.py, on PostgreSQL), and a
redelivered Celery message for a running job — to its own worker process or to another
one — neither fails nor re-runs it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from common.db import Database, catalog
from common.db.migrate import upgrade
from common.jobs.names import TASK_BACKUP, TASK_VALIDATE, queue_for
from tests.fixtures.fleet import Fleet
from tests.fixtures.util import wait_for
from tests.integration.fleet.test_faults import big_volume, slow_host_b, wait_running
from tests.integration.fleet.test_fleet import submit
from tests.unit.jobs import test_fencing as cases

pytestmark = pytest.mark.integration

__all__ = ["slow_host_b"]  # a fixture this module uses


@pytest.fixture
def pg(postgres_server: Any) -> Iterator[Database]:
    db = Database(postgres_server.create_database(f"fence_{uuid.uuid4().hex[:8]}"))
    upgrade(db)
    yield db
    db.dispose()


@pytest.mark.parametrize(("worker_off", "sweeper_off"), [(-10, 0), (0, 10)],
                         ids=["worker-behind", "sweeper-ahead"])
def test_on_postgres_a_skewed_clock_neither_fails_a_live_job_nor_shows_its_host_offline(
        pg: Database, monkeypatch: pytest.MonkeyPatch, worker_off: float,
        sweeper_off: float) -> None:
    cases.check_a_skewed_clock_neither_fails_a_live_job_nor_shows_its_host_offline(
        pg, monkeypatch, worker_off, sweeper_off)


def test_on_postgres_times_are_the_databases_and_a_dead_heartbeat_is_still_judged_stale(
        pg: Database) -> None:
    cases.check_times_are_the_databases_and_a_dead_heartbeat_is_still_judged_stale(pg)


def test_on_postgres_only_the_owning_worker_heartbeats_and_finishes_a_running_job(
        pg: Database) -> None:
    cases.check_only_the_owning_worker_heartbeats_and_finishes_a_running_job(pg)


def test_a_redelivered_message_for_a_running_job_neither_fails_nor_reruns_it(
        fleet: Fleet, slow_host_b: None) -> None:
    big_volume(fleet, "redelivered")
    job = submit(fleet, "/backups", {"volume": "redelivered", "host": "host-b",
                                     "target": "s3", "format": "tar.zst"})
    wait_running(fleet, job["id"])
    app = Celery("redeliver", broker=fleet.env["VOLKEEPER_REDIS_URL"])
    # the same message again: to the worker that runs it, and to the host's other process
    # (its quick lane, another pid on the same machine)
    for queue in (queue_for("host-b", TASK_BACKUP), queue_for("host-b", TASK_VALIDATE)):
        app.send_task(TASK_BACKUP, kwargs={"job_id": job["id"]}, queue=queue)
    log = fleet.root / "worker-host-b.log"

    def dropped_twice() -> bool:
        text = log.read_text(errors="replace")
        return (f"job {job['id']} already runs in this process; duplicate message dropped"
                in text and f"job {job['id']} is not runnable any more" in text)

    def state() -> str:
        with fleet.http as c:
            return str(c.get(f"/jobs/{job['id']}").json()["state"])

    wait_for(lambda: dropped_twice() or state() != "running", 60,
             "both duplicates to be dropped", interval=0.3)
    assert state() == "running"  # before the fix: failed by the duplicate
    assert dropped_twice()
    done = fleet.wait_job(job["id"], timeout=120)
    assert done["state"] == "succeeded", done["error"]
    with Database(fleet.env["VOLKEEPER_DATABASE_URL"]).session() as s:
        rows = [b for b in catalog.list_backups(s) if b.volume == "redelivered"]
    assert [b.id for b in rows] == [done["backup_id"]]
