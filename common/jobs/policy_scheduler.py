"""The scheduler wired to the services: the due runs of a tick are
``policy_runs.run_policies`` (the same validation, 409 and history as ``volkeeper policy
run``; jobs requested by ``policy:NAME``, the audit entry by ``scheduler``), all the runs
due for one slot in one transaction, their tasks sent after it committed. A run that
finds a volume's previous backup still going skips that volume, and the skip is recorded
in the audit log. After a
run's backup succeeds, ``policy_followups`` copies it to the policy's other targets and
applies its retention; every minute ``policy_watch.RpoCheck`` reports each volume's
freshness to the notifications (overdue / recovered), and ``/health`` asks the lease.
A due verify or drill cadence is ``policy_checks.run_check`` (jobs requested by
``policy:NAME`` too).

Where it runs: inside every served API process (``api.main.app_from_env``: ``volkeeper
serve`` embedded, and each API replica of a fleet). The lease makes exactly one of them
act; the others stand by. A separate process would need its own dispatcher and health
check for no gain: the API already has both.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from datetime import datetime

from common.errors import VolkeeperError
from common.jobs.operations import OperationsService
from common.jobs.policies import PolicyService
from common.jobs.policy_checks import run_check
from common.jobs.policy_followups import FollowUps
from common.jobs.policy_runs import run_policies
from common.jobs.policy_state import InventoryView, inventory_stamp, inventory_view
from common.jobs.policy_watch import Both, RpoCheck, health_probe
from common.policies.scheduler import Scheduler

ACTOR = "scheduler"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for a burst of due runs: the many short-lived
    objects of 1,000 jobs set off collections of the whole heap, a third of the burst's
    CPU (and its lag); what they leave is collected after, as always."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def policy_scheduler(ops: OperationsService, *, holder: str | None = None,
                     ttl: float = 15.0) -> Scheduler:
    service = PolicyService(ops)
    cached: list[tuple[tuple[object, ...], InventoryView]] = []

    def view() -> InventoryView:
        """The inventory and claims, read again only when a host's inventory or a policy
        changed since (a burst of due runs pays one small query for them)."""
        with ops.db.session() as s:
            stamp = inventory_stamp(s)
            if not cached or cached[0][0] != stamp:
                cached[:] = [(stamp, inventory_view(s))]
        return cached[0][1]

    def run(name: str, slot: datetime) -> str:
        try:
            result = service.run(name, actor=ACTOR, view=view(), refuse_busy=False)
        except VolkeeperError as e:
            return f"error: {e.message}"
        return f"queued {len(result.jobs)}, skipped {len(result.skipped)}"

    def run_many(names: list[str], slot: datetime) -> dict[str, str]:
        with gc_paused():
            results = run_policies(ops, names, actor=ACTOR, view=view(), refuse_busy=False)
        return {n: f"error: {r.message}" if isinstance(r, VolkeeperError) else
                f"queued {len(r.jobs)}, skipped {len(r.skipped)}" for n, r in results.items()}

    def check(kind: str, name: str, slot: datetime) -> str:
        try:
            result = run_check(service, name, kind, actor=ACTOR, view=view())
        except VolkeeperError as e:
            return f"error: {e.message}"
        return f"queued {len(result.jobs)}, skipped {len(result.skipped)}"

    from common.health import set_scheduler_probe

    set_scheduler_probe(health_probe)
    rpo = RpoCheck(ops.db, ops.settings, every=ops.settings.rpo_check_seconds)
    return Scheduler(ops.db, run, holder=holder, ttl=ttl, check=check, run_many=run_many,
                     after=Both(FollowUps(service), rpo))
