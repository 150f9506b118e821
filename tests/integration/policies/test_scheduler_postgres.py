"""Two schedulers started at once on the fleet's PostgreSQL catalog: ticking at the same
moments from their own threads, exactly one holds the lease and each slot of each policy
runs exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from common.db import Database, Policy
from common.db.migrate import upgrade
from common.policies.scheduler import Scheduler
from tests.fixtures.servers import PostgresServer

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 6, 10, 0, 30, tzinfo=UTC)


def test_two_schedulers_at_once_run_each_slot_once(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("scheduler_race"))
    upgrade(db)
    with db.session() as s:
        for k in range(20):
            s.add(Policy(name=f"p{k:02d}", selection={"volumes": ["v"]}, schedule="@hourly",
                         tz="Europe/Berlin", jitter_seconds=0, targets=["local"],
                         retention={}, created_at=T0, updated_at=T0))
    runs: list[tuple[str, str, datetime]] = []
    lock = threading.Lock()

    def recorder(who: str):  # type: ignore[no-untyped-def]
        def run(name: str, slot: datetime) -> str:
            with lock:
                runs.append((who, name, slot))
            return "ok"
        return run

    # separate engines: two processes' worth of connections
    dbs = [Database(db.url), Database(db.url)]
    scheds = [Scheduler(d, recorder(f"s{i}"), holder=f"s{i}") for i, d in enumerate(dbs)]
    for hour in range(1, 6):
        now = T0 + timedelta(hours=hour, seconds=-29)  # hh:00:01
        barrier = threading.Barrier(2)

        def tick(sched: Scheduler, at: datetime = now, b: threading.Barrier = barrier) -> None:
            b.wait()
            sched.tick(at)

        threads = [threading.Thread(target=tick, args=(s,)) for s in scheds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(s.active for s in scheds) == 1
        active = next(f"s{i}" for i, s in enumerate(scheds) if s.active)
        # (an hour apart the lease has expired: either may win it; only the winner runs)
        assert {who for who, _, slot in runs if slot.hour == now.hour} == {active}
    per_slot: dict[tuple[str, datetime], int] = {}
    for _, name, slot in runs:
        per_slot[(name, slot)] = per_slot.get((name, slot), 0) + 1
    assert len(per_slot) == 20 * 5 and set(per_slot.values()) == {1}
    for d in (*dbs, db):
        d.dispose()


def test_a_database_restart_between_ticks_neither_doubles_nor_loses_a_run(
        postgres_server: PostgresServer) -> None:
    """PostgreSQL stops after a slot ran; a tick while it is down runs nothing and fails;
    once it is back, the slot missed meanwhile is made up once and the slot that ran
    before the stop is not run again. (A clean stop: the test server runs with
    synchronous_commit=off, so a crash would lose commits a real server keeps.)"""
    db = Database(postgres_server.create_database("scheduler_crash"))
    upgrade(db)
    with db.session() as s:
        for k in range(5):
            s.add(Policy(name=f"p{k}", selection={"volumes": ["v"]}, schedule="@hourly",
                         tz="UTC", jitter_seconds=0, targets=["local"], retention={},
                         created_at=T0, updated_at=T0))
    runs: list[tuple[str, datetime]] = []
    sched = Scheduler(db, lambda name, slot: runs.append((name, slot)) or "ok", holder="s")
    at = T0 + timedelta(hours=1, seconds=-29)  # 11:00:01
    sched.tick(at)
    assert {slot.hour for _, slot in runs} == {11}
    try:
        postgres_server.stop()
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            sched.tick(at + timedelta(hours=1))  # 12:00:01, the database is gone
    finally:
        postgres_server.start()
    sched.tick(at + timedelta(hours=1, minutes=10))  # 12:10:01: back
    sched.tick(at + timedelta(hours=2))  # 13:00:01
    per_slot: dict[tuple[str, int], int] = {}
    for name, slot in runs:
        per_slot[(name, slot.hour)] = per_slot.get((name, slot.hour), 0) + 1
    assert set(per_slot) == {(f"p{k}", h) for k in range(5) for h in (11, 12, 13)}, per_slot
    assert set(per_slot.values()) == {1}, per_slot
    db.dispose()
