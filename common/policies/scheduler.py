"""The policy scheduler: starts each enabled policy's runs when they are due.

- **One active scheduler**: every tick first takes or renews the ``scheduler`` lease
  (``common.db.leases``, fenced by a token). Any number may run (API replicas, ``serve``);
  the others stand by and take over when the holder's lease expires (``ttl``).
- **No double run**: a run is claimed by moving the policy's ``last_run_at`` forward to
  the slot in one conditional UPDATE that also requires the lease token still held — two
  schedulers (or one resumed after a pause) cannot both claim a slot. The claim comes
  before the jobs are queued: a scheduler killed between the two loses that one run
  (at most once), it never doubles one.
- **Make-up after downtime**: a policy due since several slots runs once, for the newest
  (``Schedule.due_runs``). A policy that never ran counts from its creation.
- **On time**: the loop sleeps until the next run is due (at most ``max_sleep``), so a run
  starts within about a second of its time (plus its jitter); the cost of an idle tick is
  one lease UPDATE and one small query (the policies are re-read only when they changed).

- **Cadences**: a policy's ``verify_schedule`` and ``drill_schedule`` are scheduled the
  same way (same rules, own jitter), claimed on ``verify_last_run_at`` /
  ``drill_last_run_at``; they run ``check(kind, policy, slot)``.

What a run does is the caller's (``run(policy, slot)``: ``common.jobs.policy_scheduler``
queues the backups through the job services); this module knows only time and the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from common.db import Database, Policy, leases
from common.db.models import utcnow
from common.policies.schedule import Schedule, jitter_for, parse_schedule

log = logging.getLogger(__name__)
LEASE = "scheduler"
#: what a policy schedules: kind → (its schedule column, the column its claims move)
KINDS = {"backup": (Policy.schedule, Policy.last_run_at),
         "verify": (Policy.verify_schedule, Policy.verify_last_run_at),
         "drill": (Policy.drill_schedule, Policy.drill_last_run_at)}


def jitter_key(name: str, kind: str) -> str:
    """What a run's jitter is fixed by: the policy's name (backups), name:kind (the
    verify and drill cadences, so they do not all start with the backups)."""
    return name if kind == "backup" else f"{name}:{kind}"


@dataclass(frozen=True)
class Started:
    policy: str
    slot: datetime
    outcome: str
    kind: str = "backup"


@dataclass
class _Entry:
    id: str
    name: str
    kind: str
    schedule: Schedule
    jitter: int
    base: datetime  # last run's slot, or the policy's creation
    due_at: datetime  # when its next run is due (slot + jitter)


def due_slot(schedule: Schedule, name: str, jitter: int, base: datetime, now: datetime
             ) -> datetime | None:
    """The slot to run at ``now`` when the last run was for ``base``: the newest slot
    whose time plus jitter has come (one make-up for any number missed), or None."""
    for slot in schedule.due_runs(base, now):
        if slot + jitter_for(name, slot, jitter) <= now:
            return slot
        earlier = schedule.last_at_or_before(slot - timedelta(microseconds=1))
        if earlier > base and earlier + jitter_for(name, earlier, jitter) <= now:
            return earlier
    return None


def next_due(schedule: Schedule, name: str, jitter: int, base: datetime) -> datetime:
    """When the first run after ``base`` is due (its slot plus jitter)."""
    slot = schedule.next_after(base)
    return slot + jitter_for(name, slot, jitter)


class Scheduler:
    """Ticks in a thread (``start``/``stop``) or by hand (``tick(now)``, for tests)."""

    def __init__(self, db: Database, run: Callable[[str, datetime], str], *,
                 holder: str | None = None, ttl: float = 15.0, max_sleep: float = 1.0,
                 clock: Callable[[], datetime] = utcnow,
                 after: Callable[[str, int, datetime], object] | None = None,
                 check: Callable[[str, str, datetime], str] | None = None,
                 run_many: Callable[[list[str], datetime], dict[str, str]] | None = None
                 ) -> None:
        """``after(holder, token, now)``: more work of the active scheduler, done at the
        end of each of its ticks (the follow-ups of finished runs). ``check(kind, policy,
        slot)``: a due verify or drill run (without it those cadences are not scheduled).
        ``run_many(policies, slot)``: the backup runs of every policy due for one slot
        together (a burst: one transaction instead of one per run), policy → outcome;
        without it ``run`` is called for each."""
        self.db, self.run, self.clock, self.after = db, run, clock, after
        self.check, self.run_many = check, run_many
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.ttl, self.max_sleep = timedelta(seconds=ttl), max_sleep
        self.token: int | None = None
        self._seen: tuple[object, ...] | None = None
        self._entries: dict[str, _Entry] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="policy-scheduler",
                                        daemon=True)

    @property
    def active(self) -> bool:
        return self.token is not None

    # --- one tick ------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[Started]:
        """Take or renew the lease; start every run that is due. Returns what it started."""
        now = now or self.clock()
        token = leases.acquire(self.db, LEASE, self.holder, self.ttl, now)
        if token is None:
            if self.token is not None:
                log.info("scheduler %s lost the lease; standing by", self.holder)
            self.token = None
            return []
        if token != self.token:
            log.info("scheduler %s is active (lease token %d)", self.holder, token)
            self._seen = None  # another scheduler may have run policies meanwhile
        self.token = token
        self._load()
        due: dict[tuple[datetime, int], list[_Entry]] = {}
        order = list(KINDS)
        for e in list(self._entries.values()):
            if e.due_at > now:
                continue
            key = jitter_key(e.name, e.kind)
            slot = due_slot(e.schedule, key, e.jitter, e.base, now)
            if slot is None:  # its jitter has not passed yet (longer than the interval)
                e.due_at = max(next_due(e.schedule, key, e.jitter, e.base),
                               now + timedelta(seconds=self.max_sleep))
                continue
            due.setdefault((slot, order.index(e.kind)), []).append(e)
        started = []
        for (slot, _), entries in sorted(due.items(), key=lambda kv: kv[0]):
            kind = entries[0].kind
            claimed = self._claim(entries, slot, token, now)
            if len(claimed) < len(entries):
                self._seen = None  # someone else moved some: re-read
            mine = [e for e in entries if e.id in claimed]
            for e in mine:
                e.base = slot
                e.due_at = next_due(e.schedule, jitter_key(e.name, kind), e.jitter, slot)
            for e, outcome in zip(mine, self._start(kind, mine, slot), strict=True):
                started.append(Started(e.name, slot, outcome, kind))
        if self.after is not None:
            try:
                self.after(self.holder, token, now)
            except Exception:
                log.exception("the scheduler's follow-ups failed; retrying next tick")
        return started

    def _start(self, kind: str, entries: list[_Entry], slot: datetime) -> list[str]:
        """Start the claimed ``kind`` runs of ``entries`` for ``slot``; their outcomes."""
        if kind == "backup" and self.run_many is not None and entries:
            try:
                outcomes = self.run_many([e.name for e in entries], slot)
            except Exception as exc:
                log.exception("the backup runs of %d policies for %s failed", len(entries),
                              slot.isoformat())
                return [f"error: {exc}"] * len(entries)
            return [outcomes.get(e.name, "error: not started") for e in entries]
        out = []
        for e in entries:
            try:
                out.append(self.run(e.name, slot) if kind == "backup" or self.check is None
                           else self.check(kind, e.name, slot))
            except Exception as exc:
                log.exception("policy %s: the %s run for %s failed", e.name, kind,
                              slot.isoformat())
                out.append(f"error: {exc}")
        return out

    def sleep_for(self, now: datetime | None = None) -> float:
        """Seconds until the next run is due, at most ``max_sleep``."""
        now = now or self.clock()
        soonest = min((e.due_at for e in self._entries.values()), default=None)
        if soonest is None or not self.active:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, (soonest - now).total_seconds()))

    def _load(self) -> None:
        with self.db.session() as s:
            # our own claims move last_run_at in the plan already; another scheduler's
            # show as a new lease token (then everything is re-read)
            seen = tuple(s.execute(select(func.count(), func.max(Policy.updated_at))).one())
            if seen == self._seen:
                return
            rows = list(s.scalars(select(Policy).where(Policy.enabled)))
        entries = {}
        kinds = list(KINDS) if self.check is not None else ["backup"]
        for p in rows:
            for kind in kinds:
                schedule_col, last_col = KINDS[kind]
                expr = getattr(p, schedule_col.key)
                if not expr:
                    continue
                try:
                    schedule = parse_schedule(expr, p.tz)
                except ValueError as e:
                    log.error("policy %s has an unusable %s schedule (%s); not scheduled",
                              p.name, kind, e)
                    continue
                base = getattr(p, last_col.key) or p.created_at
                entries[f"{p.id}:{kind}"] = _Entry(
                    p.id, p.name, kind, schedule, p.jitter_seconds, base,
                    next_due(schedule, jitter_key(p.name, kind), p.jitter_seconds, base))
        self._entries, self._seen = entries, seen

    def _claim(self, entries: list[_Entry], slot: datetime, token: int, now: datetime
               ) -> set[str]:
        """The ids of ``entries`` (all of one kind) whose run for ``slot`` this scheduler
        claimed: one conditional UPDATE per 500 (a burst of due policies is one commit,
        not one each) on the kind's last-run column."""
        claimed: set[str] = set()
        last = KINDS[entries[0].kind][1]
        with self.db.session() as s:
            for k in range(0, len(entries), 500):
                ids = [e.id for e in entries[k:k + 500]]
                rows = s.execute(update(Policy).where(
                    Policy.id.in_(ids), Policy.enabled,
                    or_(last.is_(None), last < slot),
                    leases.held(LEASE, self.holder, token, now))
                    .values({last.key: slot}).returning(Policy.id))
                claimed.update(str(r[0]) for r in rows)
        return claimed

    # --- the thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.token is not None:
            try:
                leases.release(self.db, LEASE, self.holder)
            except Exception:
                log.warning("could not release the scheduler lease", exc_info=True)
            self.token = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
                self.token = None
            self._stop.wait(self.sleep_for())
