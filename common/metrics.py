"""Prometheus metrics, computed from the database at scrape time.

A custom collector (``CatalogCollector``) reads the catalog and the job history on every
scrape, so every process that serves ``/metrics`` reports the same fleet-wide figures —
no per-process counters to add up across API replicas and workers, and embedded mode
reports exactly what it has. Families (all names start ``volkeeper_``):

- ``volume_last_good_backup_timestamp_seconds{host,volume}``: when the newest good backup
  (a regular backup, not a safety snapshot, not found damaged) was taken;
  ``volume_last_good_backup_logical_bytes`` / ``…_stored_bytes`` its size (data, and what
  it added to its target), ``volume_last_good_backup_duration_seconds`` how long its job
  ran. Only for a volume that still exists: its host is known (not removed) and the
  volume is in its inventory — or was backed up after the host's last inventory (a new
  volume the inventory has not seen yet). The backups of a removed host or a deleted
  volume stay in the catalog, their series go (an alert on an old backup would fire for
  ever), as ``volume_overdue`` and ``volume_rpo_seconds`` go.
- ``jobs_total{kind,outcome}``: finished jobs (outcome succeeded | failed | cancelled);
  ``job_duration_seconds{kind,outcome}``: their run time (a summary: ``_sum``, ``_count``).
- ``queue_depth{host}``: queued jobs; ``jobs_running{host}``: running jobs.
- ``target_stored_bytes{target}`` and ``target_backups{target}``: the catalog's sum per
  target (repository backups count what each added).
- ``host_up{host}``: the host's worker sent a heartbeat within
  ``VOLKEEPER_HOST_OFFLINE_AFTER_SECONDS``.
- ``scheduler_up``: 1 while a policy scheduler holds its lease. The policies add
  ``volume_overdue``, ``volume_rpo_seconds`` and ``scheduler_lag_seconds`` as an ``extra``
  source (``common.jobs.policy_watch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Float, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from common.config import Settings
from common.db import Backup, Database, Job, JobState, Lease, catalog, hosts, leases
from common.db.clock import now as db_time
from common.db.models import FINISHED_STATES, Host, Volume

#: more metric families: ``source(session)`` yields them (e.g. the policies' RPO state)
Source = Callable[[Session], Iterable[Metric]]
_extra: list[Source] = []


def add_source(source: Source) -> None:
    """Register more families for every scrape (a package that knows more, e.g. the
    scheduler, registers its own)."""
    if source not in _extra:
        _extra.append(source)


class CatalogCollector(Collector):
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings

    def collect(self) -> Iterator[Metric]:
        with self.db.session() as s:
            yield from _volumes(s)
            yield from _jobs(s)
            yield from _queues(s)
            yield from _targets(s)
            yield from _hosts(s, self.settings)
            up = GaugeMetricFamily("volkeeper_scheduler_up",
                                   "1 while a policy scheduler holds its lease")
            up.add_metric([], 1 if leases.is_held(s.get(Lease, "scheduler"), db_time(s))
                          else 0)
            yield up
            for source in list(_extra):
                yield from source(s)


def registry(db: Database, settings: Settings) -> CollectorRegistry:
    """A registry with only the catalog collector (no process metrics of one replica)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(CatalogCollector(db, settings))
    return reg


def render(db: Database, settings: Settings) -> tuple[bytes, str]:
    """The text exposition of one scrape and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry(db, settings)), CONTENT_TYPE_LATEST


def _seconds(session: Session, start: Any, end: Any) -> Any:
    """SQL: seconds between two timestamp columns, on PostgreSQL and SQLite."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def _volumes(s: Session) -> Iterator[Metric]:
    good = and_(Backup.kind == "backup",
                func.coalesce(Backup.verify_status, "") != "damaged")
    newest = (select(Backup.host, Backup.volume, func.max(Backup.created_at).label("at"))
              .where(good).group_by(Backup.host, Backup.volume).subquery())
    rows = s.execute(
        select(Backup.host, Backup.volume, Backup.created_at, Backup.logical_bytes,
               Backup.stored_bytes, cast(_seconds(s, Job.started_at, Job.finished_at), Float))
        .join(newest, and_(Backup.host == newest.c.host, Backup.volume == newest.c.volume,
                           Backup.created_at == newest.c.at))
        .join(Host, Host.name == Backup.host)  # a removed host's volumes: no series
        .outerjoin(Volume, and_(Volume.host == Backup.host, Volume.name == Backup.volume))
        .outerjoin(Job, Job.id == Backup.job_id)
        .where(good, or_(Volume.name.is_not(None), Host.inventory_at.is_(None),
                         Backup.created_at > Host.inventory_at)))
    labels = ["host", "volume"]
    at = GaugeMetricFamily("volkeeper_volume_last_good_backup_timestamp_seconds",
                           "When the newest good backup of the volume was taken (Unix time)",
                           labels=labels)
    logical = GaugeMetricFamily("volkeeper_volume_last_good_backup_logical_bytes",
                                "Data in the newest good backup", labels=labels)
    stored = GaugeMetricFamily("volkeeper_volume_last_good_backup_stored_bytes",
                               "What the newest good backup stored (compressed, new data)",
                               labels=labels)
    took = GaugeMetricFamily("volkeeper_volume_last_good_backup_duration_seconds",
                             "Run time of the job that made the newest good backup",
                             labels=labels)
    seen: set[tuple[str, str]] = set()
    for host, volume, created, lbytes, sbytes, seconds in rows:
        if (host, volume) in seen:  # two backups in the same instant: one is enough
            continue
        seen.add((host, volume))
        at.add_metric([host, volume], created.timestamp())
        logical.add_metric([host, volume], float(lbytes or 0))
        stored.add_metric([host, volume], float(sbytes or 0))
        if seconds is not None:
            took.add_metric([host, volume], max(float(seconds), 0.0))
    yield from (at, logical, stored, took)


def _jobs(s: Session) -> Iterator[Metric]:
    rows = s.execute(
        select(Job.kind, Job.state, func.count(),
               func.sum(cast(_seconds(s, Job.started_at, Job.finished_at), Float)))
        .where(Job.state.in_(FINISHED_STATES))
        .group_by(Job.kind, Job.state))
    total = CounterMetricFamily("volkeeper_jobs", "Finished jobs by kind and outcome",
                                labels=["kind", "outcome"])
    took = SummaryMetricFamily("volkeeper_job_duration_seconds",
                               "Run time of finished jobs by kind and outcome",
                               labels=["kind", "outcome"])
    for kind, state, count, seconds in rows:
        outcome = str(JobState(state))
        total.add_metric([kind, outcome], count)
        took.add_metric([kind, outcome], count_value=count,
                        sum_value=max(float(seconds or 0.0), 0.0))
    yield from (total, took)


def _queues(s: Session) -> Iterator[Metric]:
    depth = GaugeMetricFamily("volkeeper_queue_depth", "Queued jobs per host",
                              labels=["host"])
    running = GaugeMetricFamily("volkeeper_jobs_running", "Running jobs per host",
                                labels=["host"])
    counts = {(h, JobState(st)): n for h, st, n in s.execute(
        select(Job.host, Job.state, func.count())
        .where(Job.state.in_((JobState.queued, JobState.running)))
        .group_by(Job.host, Job.state))}
    for h in sorted({h.name for h in hosts.list_hosts(s)} | {h for h, _ in counts}):
        depth.add_metric([h], counts.get((h, JobState.queued), 0))
        running.add_metric([h], counts.get((h, JobState.running), 0))
    yield from (depth, running)


def _targets(s: Session) -> Iterator[Metric]:
    stored = GaugeMetricFamily("volkeeper_target_stored_bytes",
                               "Stored bytes of the backups the catalog knows on the target",
                               labels=["target"])
    count = GaugeMetricFamily("volkeeper_target_backups",
                              "Backups the catalog knows on the target", labels=["target"])
    usage = catalog.target_usage(s)
    for t in catalog.list_targets(s):
        n, nbytes = usage.get(t.name, (0, 0))
        stored.add_metric([t.name], float(nbytes))
        count.add_metric([t.name], float(n))
    yield from (stored, count)


def _hosts(s: Session, settings: Settings) -> Iterator[Metric]:
    up = GaugeMetricFamily("volkeeper_host_up", "1 while the host's worker sends heartbeats",
                           labels=["host"])
    after = timedelta(seconds=settings.host_offline_after_seconds)
    now = db_time(s)
    for h in hosts.list_hosts(s):
        up.add_metric([h.name], 1.0 if hosts.is_online(h, after, now) else 0.0)
    yield up
