"""Migrations: validate a request (the dry run's checks, on the hosts that own each
side), record a ``migrations`` row, and let the coordinator (``migration_flow``) drive
it; list, show, cancel and roll back. Used by the API routes and the embedded CLI."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from common.audit import audited
from common.db import Job, catalog, jobs
from common.db.kinds import known_kind
from common.db.migration_rows import FINAL_STATES, MIGRATION_STATES, Migration
from common.db.models import utcnow
from common.db.paging import page_limit
from common.engine.records import space_check
from common.errors import Conflict, InvalidInput, NotFound, VolkeeperError
from common.jobs import migration_views
from common.jobs.backup_checks import missing_target
from common.jobs.migration_inputs import MigrationIn
from common.jobs.names import TASK_MIGRATION_CHECK
from common.jobs.operations import OperationsService
from common.jobs.release import cancel_job

CHECK_TIMEOUT = 15.0
#: how often the validation looks whether a side's check job is done
CHECK_POLL = 0.02


def get_migration(session: Session, mid: str) -> Migration:
    m = session.get(Migration, mid)
    if m is None:
        raise NotFound("migration", mid, "list migrations with `volkeeper migrations` or "
                       "GET /api/v1/migrations")
    return m


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


def _with_need(dest: dict[str, Any], need: int | None) -> dict[str, Any]:
    """The destination's checks with its free space (measured by its worker) compared
    with ``need``, the source's size (``records.space_check``)."""
    free = dest.get("free_bytes")
    if free is None or need is None:
        return dest
    c = space_check(int(free), str(dest.get("free_at") or ""), need)
    return dest | {"checks": [_check(c.name, c.ok, c.detail) if x["name"] == "free space"
                              else x for x in dest.get("checks", [])]}


@dataclass
class Checked:
    """A validated migration request and what its checks found."""

    body: MigrationIn
    host: str
    to_volume: str
    via: str
    checks: list[dict[str, Any]]
    source: dict[str, Any]
    plan: str

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


class MigrationService:
    """What the fronts do with migrations. ``wake`` nudges the coordinator (if any)."""

    def __init__(self, ops: OperationsService, wake: Callable[[], None] | None = None) -> None:
        self.ops = ops
        self.db = ops.db
        self.settings = ops.settings
        self.wake = wake

    # --- submit ------------------------------------------------------------------------
    @audited(lambda a: "migration.dry_run" if a["request"].get("dry_run") else "migration",
             lambda a: f"{a['request'].get('host') or ''}/{a['request']['volume']}")
    def submit(self, *, request: dict[str, Any], requested_by: str | None = None
               ) -> dict[str, Any]:
        """Validate; a dry run returns ``{dry_run, ok, checks, plan}``; otherwise the new
        migration's view (InvalidInput naming the failed checks when one fails)."""
        c = self.check(request)
        if c.body.dry_run:
            return {"dry_run": True, "ok": c.ok, "checks": c.checks, "plan": c.plan}
        if not c.ok:
            bad = [x for x in c.checks if not x["ok"]]
            raise InvalidInput("migration refused: " + "; ".join(x["detail"] for x in bad),
                               "fix what the checks name (see them all with --dry-run)")
        view = self.record(c, requested_by, extra={
            "recreate_containers": c.body.recreate_containers})
        if self.wake is not None:
            self.wake()
        return view

    def check(self, request: dict[str, Any]) -> Checked:
        """The validation of a request: every check, on both hosts."""
        body = MigrationIn.model_validate(request)
        host = body.host or self.settings.host_name
        to_volume = body.to_volume or body.volume
        via = body.via or self._default_via()
        checks, source = self._validate(body, host, to_volume, via)
        return Checked(body, host, to_volume, via, checks, source,
                       migration_views.plan(body, host, to_volume, via,
                                            source.get("running")))

    def record(self, c: Checked, requested_by: str | None, batch: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the ``migrations`` row of a validated request (queued); its view."""
        body = c.body
        with self.db.session() as s:
            m = Migration(
                id=uuid.uuid4().hex[:16], state="queued", requested_by=requested_by,
                source_host=c.host, source_volume=body.volume, dest_host=body.to_host,
                dest_volume=c.to_volume, driver=body.driver, driver_opts=body.driver_opts,
                via=c.via, cutover=body.cutover, remove_source=body.remove_source,
                steps={}, phases=[], batch=batch,
                report={"checks": c.checks, "plan": c.plan,
                        "source_bytes": c.source.get("bytes"),
                        "source_containers": c.source.get("containers") or [],
                        "validated_at": utcnow().isoformat(), **(extra or {})})
            s.add(m)
            s.flush()
            return migration_views.view(s, m)

    def _default_via(self) -> str:
        default = self.settings.default_target
        with self.db.session() as s:
            names = [t.name for t in catalog.list_targets(s)]
            if default not in names and not self.settings.creates_default_target:
                raise missing_target(s, default, default)  # a typo: not another target
        if default in names:
            return default
        if not names:
            raise NotFound("target", "(any)", "register a target first: volkeeper targets "
                           "add NAME URL; a migration carries the data through it (--via)")
        return sorted(names)[0]

    def _validate(self, body: MigrationIn, host: str, to_volume: str, via: str
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        checks = [self._host_check("source host", host),
                  self._host_check("destination host", body.to_host)]
        if host == body.to_host and body.volume == to_volume:
            checks.append(_check("destination", False, "the destination is the source: "
                                 "name another host (--to-host) or volume (--to-volume)"))
        with self.db.session() as s:
            try:
                catalog.get_target(s, via)
                checks.append(_check("via target", True, f"target {via!r} is registered"))
            except NotFound:
                checks.append(_check("via target", False, f"target {via!r} is not "
                                     "registered — volkeeper targets list shows them"))
            checks.append(self._busy_check(s, host, body.volume, body.to_host, to_volume))
        if not all(c["ok"] for c in checks):
            return checks, {}
        # both sides at once; the destination measures its free space, compared here with
        # the source's size — unless it must also find the source's images (sequential)
        dest_params = {"side": "destination", "driver": body.driver,
                       "driver_opts": body.driver_opts}
        sequential = body.recreate_containers and body.to_host != host
        started = self._start_check(host, body.volume, via, {"side": "source"})
        dest_job = None if sequential else self._start_check(body.to_host, to_volume, via,
                                                             dest_params)
        source = self._wait_check(*started)
        checks += source.get("checks", [])
        if body.remove_source and source.get("containers"):
            names = ", ".join(c["name"] for c in source["containers"])
            checks.append(_check("remove source", False, f"containers {names} use the "
                                 "source, so it cannot be removed — remove them first, or "
                                 "migrate without --remove-source"))
        checks += _recreate_checks(body, host)
        if dest_job is None:
            images = sorted({str(c.get("image")) for c in source.get("containers") or []
                             if c.get("image") and c.get("state") == "running"})
            dest = self._wait_check(*self._start_check(body.to_host, to_volume, via, {
                **dest_params, "need_bytes": source.get("bytes"), "images": images}))
        else:
            dest = _with_need(self._wait_check(*dest_job), source.get("bytes"))
        # on one host both sides check the target alike: its line once
        checks += [c for c in dest.get("checks", []) if c not in checks]
        return checks, source

    def _host_check(self, what: str, name: str) -> dict[str, Any]:
        try:
            self.ops._check_host_online(name)
        except VolkeeperError as e:
            return _check(what, False, f"{e.message} — {e.hint}" if e.hint else e.message)
        return _check(what, True, f"host {name!r} is online")

    def _busy_check(self, s: Session, host: str, volume: str, to_host: str,
                    to_volume: str) -> dict[str, Any]:
        q = select(Migration).where(
            Migration.state.in_(("queued", "running")),
            or_((Migration.source_host == host) & (Migration.source_volume == volume),
                (Migration.dest_host == to_host) & (Migration.dest_volume == to_volume)))
        other = s.scalars(q).first()
        if other is not None:
            return _check("no other migration", False, f"migration {other.id} of "
                          f"{other.source_host}/{other.source_volume} is still {other.state}"
                          f" — wait for it (volkeeper migration {other.id} --follow)")
        return _check("no other migration", True, "no other migration uses these volumes")

    def _start_check(self, host: str, volume: str, via: str, params: dict[str, Any]
                     ) -> tuple[Job, str, str, float]:
        """Queue one side's checks on ``host``'s worker (``_wait_check`` waits for them)."""
        with self.db.session() as s:
            job = jobs.create_job(s, kind="migration-check", host=host, volume=volume,
                                  target=via, params=params, requested_by="migration",
                                  lock=f"migration-check/{uuid.uuid4().hex}")
        self.ops._dispatch(job, TASK_MIGRATION_CHECK)
        return job, host, str(params["side"]), time.monotonic() + CHECK_TIMEOUT

    def _wait_check(self, job: Job, host: str, side: str, deadline: float
                    ) -> dict[str, Any]:
        """Wait for a check job of ``_start_check``; its result, or a failed check."""
        while time.monotonic() < deadline:
            with self.db.session() as s:
                job = jobs.get_job(s, job.id)
            if job.state.finished:
                break
            time.sleep(CHECK_POLL)
        if not job.state.finished:
            return {"checks": [_check(f"{side} checks", False, f"the worker of host {host!r} "
                                      f"did not answer within {CHECK_TIMEOUT:.0f}s (job "
                                      f"{job.id}) — check it: volkeeper job {job.id}")]}
        if job.state != "succeeded":
            return {"checks": [_check(f"{side} checks", False, f"the {side} checks failed "
                                      f"on host {host!r}: {job.error}")]}
        return dict(job.result or {})

    # --- reads -------------------------------------------------------------------------
    def list(self, limit: int = 50, state: str | None = None) -> list[dict[str, Any]]:
        known_kind(state, MIGRATION_STATES, "migration state")
        with self.db.session() as s:
            q = select(Migration).order_by(Migration.created_at.desc()).limit(
                page_limit(limit))
            if state:
                q = q.where(Migration.state == state)
            return [migration_views.view(s, m) for m in s.scalars(q)]

    def get(self, mid: str) -> dict[str, Any]:
        with self.db.session() as s:
            return migration_views.view(s, get_migration(s, mid))

    # --- changes -----------------------------------------------------------------------
    @audited("migration.cancel", lambda a: str(a["migration_id"]))
    def cancel(self, *, migration_id: str, requested_by: str | None = None) -> dict[str, Any]:
        """Cancel a queued or running migration: its current step's job is cancelled and
        the migration rolls back (ending ``cancelled``)."""
        with self.db.session() as s:
            m = get_migration(s, migration_id)
            if m.state in FINAL_STATES:
                raise Conflict(f"migration {migration_id} has already finished: {m.state}",
                               _finished_hint(migration_id, m.state))
            if m.rollback_requested_by or (m.report or {}).get("failure"):
                raise Conflict(f"migration {migration_id} is rolling back already",
                               "wait for it to finish")
            m.cancel_requested_by = m.cancel_requested_by or requested_by
            active = [j for j in (s.get(Job, jid) for jid in (m.steps or {}).values())
                      if j is not None and not j.state.finished]
        for j in active:
            with contextlib.suppress(Conflict):  # it finished meanwhile
                cancel_job(self.db, j.id, by=str(requested_by))
        if self.wake is not None:
            self.wake()
        return self.get(migration_id)

    @audited("migration.rollback", lambda a: str(a["migration_id"]))
    def rollback(self, *, migration_id: str, requested_by: str | None = None
                 ) -> dict[str, Any]:
        """Undo a succeeded migration: the source restored if it was removed, the
        destination removed, the containers stopped for the cut-over started again."""
        with self.db.session() as s:
            m = get_migration(s, migration_id)
            if m.state != "succeeded":
                raise Conflict(f"migration {migration_id} is {m.state}, not succeeded",
                               "only a succeeded migration can be rolled back; a failed "
                               "one was rolled back automatically")
            m.rollback_requested_by = requested_by
            m.state, m.finished_at, m.reason = "running", None, None
        if self.wake is not None:
            self.wake()
        return self.get(migration_id)


def _finished_hint(migration_id: str, state: str) -> str:
    if state == "succeeded":
        return f"a succeeded migration is undone with `volkeeper migration rollback " \
            f"{migration_id}`"
    if state == "failed":
        return f"its reason names what is left to do by hand: `volkeeper migration " \
            f"{migration_id}`"
    return "it was rolled back already: the source is as it was"


def _recreate_checks(body: MigrationIn, host: str) -> list[dict[str, Any]]:
    if not body.recreate_containers:
        return []
    if body.cutover != "stop" or body.remove_source:
        return [_check("recreate containers", False, "--recreate-containers needs "
                       "--cutover stop and no --remove-source (the old containers are "
                       "kept, stopped, on the source)")]
    where = "" if body.to_host == host else f" on host {body.to_host} (their images must " \
        "be there; one that also mounts another volume or a host path is left stopped)"
    return [_check("recreate containers", True, "the containers stopped for the cut-over "
                   f"are recreated on the new volume{where}")]
