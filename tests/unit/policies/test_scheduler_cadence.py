"""The verify and drill cadences of a policy, scheduled beside its backups with a clock in
hand: each runs at its own slots once (claimed on its own column), a missed one is made
up once after downtime, two schedulers never run one twice, and without a cadence (or
without ``check``) nothing but backups is scheduled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.db import Database, Policy
from common.db.migrate import upgrade
from common.policies.scheduler import Scheduler
from tests.unit.policies.test_scheduler import T0, Runs, clock


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(d)
    yield d
    d.dispose()


def add(db: Database, name: str, *, verify: str | None = "@daily",
        drill: str | None = "@weekly", jitter: int = 0) -> None:
    with db.session() as s:
        s.add(Policy(name=name, selection={"volumes": ["v"]}, schedule="@hourly", tz="UTC",
                     jitter_seconds=jitter, targets=["local"], retention={},
                     verify_subset_percent=5.0, verify_schedule=verify, drill_schedule=drill,
                     created_at=T0, updated_at=T0))


class Checks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, datetime]] = []

    def __call__(self, kind: str, name: str, slot: datetime) -> str:
        self.calls.append((kind, name, slot))
        return "queued 1, skipped 0"


def sched(db: Database, holder: str, runs: Runs, checks: Checks | None) -> Scheduler:
    return Scheduler(db, runs, holder=holder, ttl=15, check=checks)


def last_runs(db: Database) -> tuple[datetime | None, datetime | None, datetime | None]:
    with db.session() as s:
        p = s.query(Policy).one()
        return p.last_run_at, p.verify_last_run_at, p.drill_last_run_at


def day(d: int, s: float = 0) -> datetime:
    return datetime(2026, 12, d, tzinfo=UTC) + timedelta(seconds=s)


def test_verify_and_drill_run_at_their_own_slots_once(db: Database) -> None:
    add(db, "p")  # created Sunday 6 Dec; @daily verify, @weekly drill (Sundays 00:00)
    runs, checks = Runs(), Checks()
    s = sched(db, "a", runs, checks)
    assert {x.kind for x in s.tick(day(6, 86399.9))} == {"backup"}  # 23:00 only
    assert checks.calls == []
    runs.calls.clear()
    started = s.tick(day(7, 0.5))
    assert sorted((x.kind, x.slot) for x in started) == [("backup", day(7)),
                                                         ("verify", day(7))]
    assert checks.calls == [("verify", "p", day(7))]
    assert s.tick(day(7, 2)) == [] and len(checks.calls) == 1
    assert last_runs(db) == (day(7), day(7), None)
    # the next Sunday: backup, verify and drill, each once
    s.tick(day(12, 86399))
    checks.calls.clear()
    started = s.tick(day(13, 1))
    assert sorted(x.kind for x in started) == ["backup", "drill", "verify"]
    assert sorted(c[0] for c in checks.calls) == ["drill", "verify"]
    assert s.tick(day(13, 5)) == []
    assert last_runs(db) == (day(13), day(13), day(13))


def test_after_downtime_each_cadence_is_made_up_once(db: Database) -> None:
    add(db, "p")
    runs, checks = Runs(), Checks()
    s = sched(db, "a", runs, checks)
    s.tick(day(7, 1))
    checks.calls.clear()
    # down from Monday 7 until Wednesday 23 (16 verify slots, two drill slots missed)
    restarted = sched(db, "a", Runs(), checks)
    restarted.tick(day(23, 3600 * 5))
    assert sorted(checks.calls) == [("drill", "p", day(20)), ("verify", "p", day(23))]
    assert restarted.tick(day(23, 3600 * 6)) and len(checks.calls) == 2  # backup only


def test_two_schedulers_never_run_a_cadence_twice(db: Database) -> None:
    add(db, "p", drill=None)
    checks = Checks()
    a, b = sched(db, "a", Runs(), checks), sched(db, "b", Runs(), checks)
    assert a.tick(day(7, 1)) and b.tick(day(7, 1)) == []
    assert checks.calls == [("verify", "p", day(7))]
    # a is paused past its lease: b takes over and does not repeat 7 Dec
    assert b.tick(day(7, 20)) == [] and b.active
    assert a.tick(day(7, 25)) == [] and not a.active
    # a's stale claim on the verify column is refused by the fence
    entry = next(e for e in a._entries.values() if e.kind == "verify")
    assert a._claim([entry], day(8), 1, day(8, 1)) == set()
    assert [x.kind for x in b.tick(day(8, 1))] == ["backup", "verify"]
    assert checks.calls == [("verify", "p", day(7)), ("verify", "p", day(8))]
    assert last_runs(db)[1] == day(8) and last_runs(db)[2] is None


def test_a_cadence_has_its_own_jitter_within_its_bound(db: Database) -> None:
    add(db, "p", drill=None, jitter=600)
    checks = Checks()
    s = sched(db, "a", Runs(), checks)
    times = [day(7, k) for k in range(0, 601, 5)]
    first = next(t for t in times if any(x.kind == "verify" for x in s.tick(t)))
    assert day(7) <= first <= day(7, 600)
    assert checks.calls == [("verify", "p", day(7))]


def test_without_a_cadence_or_a_check_only_backups_run(db: Database) -> None:
    add(db, "p", verify=None, drill=None)
    checks = Checks()
    s = sched(db, "a", Runs(), checks)
    assert [x.kind for x in s.tick(day(7, 1))] == ["backup"] and checks.calls == []
    with db.session() as sess:
        p = sess.query(Policy).one()
        p.verify_schedule, p.updated_at = "@daily", clock(11, day=7)
    plain = sched(db, "a", Runs(), None)  # a scheduler given no check: backups only
    assert [x.kind for x in plain.tick(day(8, 1))] == ["backup"]
    assert last_runs(db)[1] is None


def test_the_lag_metric_counts_a_late_verify_or_drill(db: Database) -> None:
    from common.jobs.policy_watch import scheduler_lag

    add(db, "p")
    with db.session() as s:
        s.query(Policy).update({"last_run_at": day(7, 3600 * 12)})  # backups on time
        assert scheduler_lag(s, day(7, 3600 * 12 + 10)) == 12 * 3600 + 10  # verify: 00:00
    sched(db, "a", Runs(), Checks()).tick(day(7, 3600 * 12 + 10))
    with db.session() as s:
        assert scheduler_lag(s, day(7, 3600 * 12 + 20)) == 0.0
