"""Evacuating a host: every volume of it migrated to another host, at most
``concurrency`` at a time, with one report for the whole move. Each volume is an
ordinary migration (``migrations``) carrying the evacuation's id in ``batch``; the
coordinator starts a batch's queued migrations only while fewer than its concurrency
run (``migration_flow``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from common.audit import audited
from common.db import hosts
from common.db.migration_rows import FINAL_STATES, Migration
from common.db.paging import page_limit
from common.errors import InvalidInput, NotFound
from common.jobs import migration_views
from common.jobs.migrations import MigrationService
from common.units import size

#: volumes of volkeeper's own (scratch drills, probes) are never evacuated
OWN_PREFIX = "volkeeper-"


class EvacuationService:
    def __init__(self, migrations: MigrationService,
                 wake: Callable[[], None] | None = None) -> None:
        self.migrations = migrations
        self.db = migrations.db
        self.wake = wake

    @audited(lambda a: "evacuation.dry_run" if a.get("dry_run") else "evacuation",
             lambda a: str(a["host"]))
    def evacuate(self, *, host: str, to_host: str, concurrency: int = 2,
                 via: str | None = None, cutover: str = "stop", dry_run: bool = False,
                 recreate_containers: bool = False, requested_by: str | None = None
                 ) -> dict[str, Any]:
        """Validate a migration of every volume of ``host`` to ``to_host`` (same names);
        a dry run returns each one's checks; otherwise they are queued as one batch. With
        ``recreate_containers`` each migration recreates the containers it stopped on
        ``to_host`` (``migration_plan``: ``finish.capture``, ``finish.recreate``)."""
        if not 1 <= concurrency <= 32:
            raise InvalidInput(f"invalid concurrency {concurrency}",
                               "give how many volumes move at once, 1 to 32")
        with self.db.session() as s:
            hosts.get_host(s, host)
            names = sorted(v.name for v in hosts.list_volumes(s, host)
                           if not v.name.startswith(OWN_PREFIX))
        if not names:
            raise InvalidInput(f"host {host!r} has no volumes to evacuate",
                               "volkeeper volumes --host HOST lists them")
        checked = [self.migrations.check({"volume": n, "host": host, "to_host": to_host,
                                          "via": via, "cutover": cutover,
                                          "recreate_containers": recreate_containers})
                   for n in names]
        if dry_run:
            return {"dry_run": True, "ok": all(c.ok for c in checked),
                    "volumes": [{"volume": c.body.volume, "ok": c.ok, "checks": c.checks,
                                 "plan": c.plan} for c in checked]}
        bad = [c for c in checked if not c.ok]
        if bad:
            raise InvalidInput(
                "evacuation refused: " + "; ".join(
                    f"{c.body.volume}: {next(x['detail'] for x in c.checks if not x['ok'])}"
                    for c in bad),
                "fix what the checks name (see them all with --dry-run)")
        batch = uuid.uuid4().hex[:16]
        for c in checked:
            self.migrations.record(c, requested_by, batch=batch, extra={
                "concurrency": concurrency, "recreate_containers": recreate_containers})
        if self.wake is not None:
            self.wake()
        return self.get(batch)

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """Evacuations, newest first: each as ``get`` gives it, but with the number of its
        migrations (``volumes``) instead of their views."""
        with self.db.session() as s:
            batches = list(s.execute(
                select(Migration.batch, func.min(Migration.created_at).label("first"))
                .where(Migration.batch.is_not(None)).group_by(Migration.batch)
                .order_by(func.min(Migration.created_at).desc()).limit(page_limit(limit))))
        out = []
        for batch, _first in batches:
            e = self.get(str(batch))
            out.append({**{k: v for k, v in e.items() if k != "migrations"},
                        "volumes": len(e["migrations"])})
        return out

    def get(self, batch: str) -> dict[str, Any]:
        """The evacuation: its migrations and their totals."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Migration).where(Migration.batch == batch)
                                  .order_by(Migration.source_volume)))
            if not rows:
                raise NotFound("evacuation", batch, "the id `volkeeper evacuate` printed")
            views = [migration_views.view(s, m) for m in rows]
        states = [v["state"] for v in views]
        downtimes = [v["downtime_seconds"] for v in views if v["downtime_seconds"]]
        ends = [v["finished_at"] for v in views if v["finished_at"]]
        return {
            "id": batch, "host": rows[0].source_host, "to_host": rows[0].dest_host,
            "state": ("running" if any(x not in FINAL_STATES for x in states) else
                      "succeeded" if all(x == "succeeded" for x in states) else "failed"),
            "counts": {x: states.count(x) for x in sorted(set(states))},
            "bytes": sum(p["bytes"] for v in views for p in v["phases"]),
            "downtime_max_seconds": max(downtimes) if downtimes else None,
            "created_at": views[0]["created_at"],
            "finished_at": max(ends) if ends and len(ends) == len(views) else None,
            "migrations": views}


def markdown(e: dict[str, Any]) -> str:
    """One report for the whole evacuation."""
    lines = [f"# Evacuation {e['id']}: {e['state']}", "",
             f"- from `{e['host']}` to `{e['to_host']}`: {len(e['migrations'])} volumes, "
             + ", ".join(f"{n} {k}" for k, n in e["counts"].items()),
             f"- moved: {size(e['bytes'])} ({e['bytes']} bytes), longest downtime: "
             + ("-" if e["downtime_max_seconds"] is None
                else f"{e['downtime_max_seconds']:.2f} s"),
             "", "| volume | migration | state | downtime | verify | containers recreated "
             "| reason |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in e["migrations"]:
        down = "-" if m["downtime_seconds"] is None else f"{m['downtime_seconds']:.2f} s"
        made = ", ".join(c.get("name", "?") for c in
                         (m.get("report") or {}).get("containers_recreated") or []) or "-"
        lines.append(f"| {m['source']['volume']} | `{m['id']}` | {m['state']} | {down} | "
                     f"{m['verify_outcome'] or '-'} | {made} | {m['reason'] or ''} |")
    left = [s for m in e["migrations"] for s in m.get("next_steps") or []
            if " was not recreated: " in s]
    lines += ["", *(f"- {s}" for s in left)] if left else []
    return "\n".join(lines) + "\n"
