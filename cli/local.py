"""The embedded front: the services of ``common.jobs`` called in this process, through the
embedded runtime (SQLite, in-memory progress, jobs in threads). Input is validated with
the API's own request models and output built by the API's own views, so ``--json`` is the
same as from a server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.errors import CliError, Json
from cli.front_migrations import LocalMigrations
from cli.front_policies import LocalPolicies
from cli.settings import settings
from common.auth import LOCAL_ACTOR
from common.db import Job
from common.db.rows import SessionRows
from common.jobs import reads, views
from common.jobs.embedded import EmbeddedRuntime
from common.progress import Subscription

if TYPE_CHECKING:
    from common.jobs.operations import OperationsService

USER = LOCAL_ACTOR  # who the jobs and the audit log name: "cli:local-user"
# The request models (common.jobs.inputs) load only in the commands that send a request:
# a read command does without them.


class LocalFront(LocalPolicies, LocalMigrations):
    embedded = True

    def __init__(self, *, volume_sizes: bool = False, docker: bool = True) -> None:
        s = settings()
        if s.mode == "fleet":
            raise CliError("VOLKEEPER_DATABASE_URL is set but no --server was given",
                           "pass --server URL (or VOLKEEPER_SERVER) to talk to the fleet API")
        self.runtime = EmbeddedRuntime(s, background=False)
        self.volume_sizes = volume_sizes
        self.docker = docker
        self._subscriptions: dict[str, Subscription] = {}

    def __enter__(self) -> LocalFront:
        self.runtime.start(volume_sizes=self.volume_sizes, docker=self.docker)
        return self

    def __exit__(self, *exc: object) -> None:
        for sub in self._subscriptions.values():
            sub.close()
        self.runtime.close()

    def pause(self, job_id: str, seconds: float, *, until_end: bool = False) -> None:
        """The job runs in this process: wake as soon as it publishes progress or its end
        (no polling delay; ``until_end``: its end only, so a caller that shows no progress
        does not read the job again at each progress report while the job works). The
        first call only subscribes, so news published between the caller's last read and
        the subscription is not waited for."""
        sub = self._subscriptions.get(job_id)
        if sub is None:
            self._subscriptions[job_id] = self.runtime.bus.subscribe(job_id)
            return
        deadline = time.monotonic() + seconds
        while True:
            news = sub.next(deadline - time.monotonic())
            if news is None or not until_end or "state" in news:
                return

    @property
    def service(self) -> OperationsService:
        return self.runtime.service

    def _read(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
        """``fn(session, *args, **kwargs)``'s view, dumped as the API would send it."""
        with self.runtime.db.session() as s:
            return views.dump(fn(s, *args, **kwargs))

    def _job(self, job: Job) -> Json:
        return views.dump(views.job_out(job, self.runtime.bus))

    # --- reads ---------------------------------------------------------------------
    def hosts(self) -> list[Json]:
        return self._read(views.list_hosts, self.runtime.settings)

    def volumes(self, host: str | None) -> list[Json]:
        with self.runtime.db.session() as s:
            return reads.jsonable(reads.list_volumes(SessionRows(s), host))

    def backups(self, **filters: Any) -> list[Json]:
        with self.runtime.db.session() as s:
            return reads.jsonable(reads.list_backups(
                SessionRows(s), **{k: v for k, v in filters.items() if v is not None}))

    def backup_info(self, backup_id: str) -> Json:
        with self.runtime.db.session() as s:
            return reads.jsonable(reads.get_backup(SessionRows(s), backup_id))

    def jobs(self, limit: int, kind: str | None = None) -> list[Json]:
        with self.runtime.db.session() as s:
            return reads.jsonable(reads.list_jobs(
                SessionRows(s), self.runtime.bus, limit=limit, kind=kind))

    def job(self, job_id: str) -> Json:
        return self._read(views.get_job, self.runtime.bus, job_id)

    def create_token(self, name: str, role: str) -> Json:
        from common.auth import TokenService

        view, secret = TokenService(self.runtime.db).create(name, role, actor=USER)
        return _json(view | {"secret": secret})

    def tokens(self) -> list[Json]:
        from common.auth import TokenService

        return [_json(t) for t in TokenService(self.runtime.db).list()]

    def revoke_token(self, name: str) -> Json:
        from common.auth import TokenService

        return _json(TokenService(self.runtime.db).revoke(name, actor=USER))

    def audit(self, query: Json) -> list[Json]:
        from datetime import datetime

        from common.audit import list_entries

        since = query.get("since")
        try:
            when = datetime.fromisoformat(since) if since else None
        except ValueError:
            raise CliError(f"invalid --since {since!r}",
                           "give an ISO time, e.g. 2026-12-06 or 2026-12-06T14:00") from None
        rows = list_entries(self.runtime.db, actor=query.get("actor"),
                            action=query.get("action"), since=when,
                            limit=query.get("limit") or 200)
        return [_json(r) for r in rows]

    def release_job(self, job_id: str, reason: str | None) -> Json:
        from common.jobs.release import release_job

        job = release_job(self.runtime.db, job_id, by=USER, reason=reason)
        return views.dump(views.job_out(job, self.runtime.bus))

    def cancel_job(self, job_id: str) -> Json:
        from common.jobs.release import cancel_job

        job = cancel_job(self.runtime.db, job_id, by=USER)
        return views.dump(views.job_out(job, self.runtime.bus))

    def targets(self) -> list[Json]:
        return self._read(views.list_targets)

    def add_target(self, body: Json) -> Json:
        from common.jobs.inputs import TargetIn, parse
        from common.jobs.targets import add_target

        t = parse(TargetIn, body)
        with self.runtime.db.session() as s:
            return views.dump(add_target(s, self.runtime.settings, t))

    def remove_target(self, name: str) -> None:
        from common.jobs.targets import remove_target

        with self.runtime.db.session() as s:
            remove_target(s, name)

    def remove_host(self, name: str, update_policies: bool = False) -> Json:
        return views.dump(self.service.remove_host(host=name, update_policies=update_policies,
                                                   requested_by=USER))

    # --- jobs ----------------------------------------------------------------------
    def backup(self, body: Json) -> Json:
        from common.jobs.inputs import BackupIn, parse

        b = parse(BackupIn, body)
        return self._job(self.service.submit_backup(
            volume=b.volume, host=b.host, target=b.target, fmt=b.format, requested_by=USER,
            stop_containers=b.stop_containers, excludes=b.excludes, snapshot=b.snapshot,
            dump=b.dump, dump_databases=b.dump_databases))

    def group_backup(self, body: Json) -> Json:
        from common.jobs.groups import GroupBackupIn, GroupJobs
        from common.jobs.inputs import parse

        return self._job(GroupJobs(self.service).submit_backup(
            g=parse(GroupBackupIn, body), requested_by=USER))

    def group_restore(self, group_id: str, body: Json) -> list[Json]:
        from common.jobs.groups import GroupJobs, GroupRestoreIn
        from common.jobs.inputs import parse

        made = GroupJobs(self.service).submit_restore(
            group_id=group_id, r=parse(GroupRestoreIn, body), requested_by=USER)
        return [self._job(j) for j in made]

    def restore(self, body: Json) -> Json:
        from common.jobs.inputs import RestoreIn, parse

        r = parse(RestoreIn, body)
        return self._job(self.service.submit_restore(
            backup_id=r.backup_id, into=r.into, host=r.host, requested_by=USER, mode=r.mode,
            stop_containers=r.stop_containers, paths=r.paths, dump_into=r.dump_into,
            dump_from=r.dump_from, database=r.database, replace_database=r.replace_database))

    def validate_restore(self, body: Json) -> Json:
        from common.jobs.inputs import RestoreIn, parse

        r = parse(RestoreIn, body)
        job = self.service.validate_restore(
            backup_id=r.backup_id, into=r.into, host=r.host, requested_by=USER, mode=r.mode,
            stop_containers=r.stop_containers, paths=r.paths)
        return views.dump(views.validation_out(job))

    def rollback(self, job_id: str) -> Json:
        return self._job(self.service.rollback(restore_job_id=job_id, requested_by=USER))

    def verify(self, backup_id: str, host: str | None, body: Json) -> Json:
        from common.jobs.inputs import VerifyIn, parse

        v = parse(VerifyIn, body)
        return self._job(self.service.submit_verify(
            backup_id=backup_id, host=host, requested_by=USER, read_data=v.read_data,
            subset=v.subset, seed=v.seed))

    def drill(self, body: Json) -> Json:
        from common.jobs.inputs import DrillIn, parse

        d = parse(DrillIn, body)
        return self._job(self.service.submit_drill(backup_id=d.backup_id, host=d.host,
                                                   requested_by=USER))

    def label(self, backup_id: str, body: Json) -> Json:
        from common.jobs.inputs import BackupPatch, parse

        p = parse(BackupPatch, body)
        row, job = self.service.label_backup(
            backup_id=backup_id, add=p.add_tags, remove=p.remove_tags, pinned=p.pinned,
            host=p.host, requested_by=USER)
        out = views.LabelOut(backup=views.backup_out(row),
                             job=views.job_out(job, self.runtime.bus) if job else None)
        return views.dump(out)

    def forget(self, backup_id: str, host: str | None) -> Json:
        return self._job(self.service.forget_backup(backup_id=backup_id, host=host,
                                                    requested_by=USER))

    def copy(self, backup_id: str, body: Json) -> Json:
        from common.jobs.inputs import CopyIn, parse

        c = parse(CopyIn, body)
        return self._job(self.service.copy_backup(backup_id=backup_id, target=c.target,
                                                  host=c.host, requested_by=USER))

    def target_job(self, action: str, target: str, body: Json) -> Json:
        """The same jobs as the API's ``/targets/{name}/…`` routes."""
        from common.jobs import target_requests
        from common.jobs.inputs import parse

        return self._job(target_requests.queue(
            self.service, action, target, parse(target_requests.model_of(action), body),
            USER))

    def remove_key(self, target: str, key_id: str, host: str | None) -> Json:
        from common.jobs import target_requests

        return self._job(target_requests.remove_key(self.service, target, key_id, host, USER))


def _json(row: dict[str, Any]) -> Json:
    """A service's row as the API sends it (times as ISO 8601 text)."""
    from datetime import datetime

    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
