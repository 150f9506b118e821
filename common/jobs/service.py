"""Submitting jobs: validate, record (queued), dispatch. Used by the API routes."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from common.audit import LOCAL_ACTOR, audited, record
from common.config import Settings
from common.db import Backup, Database, Host, Job, JobState, catalog, hosts, jobs
from common.db.models import utcnow
from common.errors import (
    OUTCOME,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    VolkeeperError,
)
from common.formats import traits_of
from common.jobs.backup_checks import backup_spec, check_host_online
from common.jobs.dispatch import Dispatcher
from common.jobs.names import (
    TASK_BACKUP,
    TASK_DRILL,
    TASK_INVENTORY,
    TASK_RESTORE,
    TASK_VALIDATE,
    TASK_VERIFY,
)

if TYPE_CHECKING:
    from common.jobs.host_removal import HostRemovedOut

log = logging.getLogger(__name__)


class JobService:
    """What the API does with a backup or restore request."""

    def __init__(self, db: Database, dispatcher: Dispatcher, settings: Settings) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.settings = settings

    def _backup(self, backup_id: str) -> Backup:
        """The backup, checking that its target is still registered."""
        with self.db.session() as s:
            backup = catalog.get_backup(s, backup_id)
            catalog.get_target(s, backup.target)
        return backup

    def _placement(self, backup: Backup, host: str | None, into: str | None
                   ) -> tuple[str, str]:
        """Host and volume a restore of ``backup`` goes to (default: where it came from)."""
        host = host or backup.host
        into = into or backup.volume
        _check_volume_name(into)
        self._check_host_online(host)
        return host, into

    @audited("host.refresh", lambda a: str(a["host"]))
    def refresh_host(self, *, host: str, requested_by: str | None = None) -> None:
        """Ask the host's worker to take a fresh volume inventory now."""
        with self.db.session() as s:
            hosts.get_host(s, host)
        self.dispatcher.send(TASK_INVENTORY, host, {})

    @audited("host.remove", lambda a: str(a["host"]))
    def remove_host(self, *, host: str, update_policies: bool = False,
                    requested_by: str | None = None) -> HostRemovedOut:
        """Forget a host whose worker is gone, with its inventory; its backups stay
        (``common.jobs.host_removal``). ``update_policies``: also take it out of the
        policies naming it (disabling those naming only it), else they refuse it."""
        from common.jobs.host_removal import remove_host

        with self.db.session() as s:
            return remove_host(s, self.settings, host, update_policies=update_policies,
                               actor=requested_by or LOCAL_ACTOR)

    def _check_host_online(self, name: str) -> None:
        with self.db.session() as s:
            check_host_online(s, name, self.settings)

    def default_host(self) -> str:
        """The host a request that names none goes to: this machine (``host_name``). In
        the fleet that is the API server's own name, which is no Docker host unless a
        worker runs there: then say the request must name one, not "start a worker"."""
        name = self.settings.host_name
        if self.settings.mode == "fleet":
            with self.db.session() as s:
                known = s.get(Host, name) is not None
            if not known:
                raise InvalidInput(
                    f"no host given, and this API server's own name {name!r} is not a "
                    "host of the fleet",
                    "name the Docker host that holds the volume: --host NAME (REST: "
                    "\"host\"); `volkeeper hosts` lists them")
        return name

    @audited("backup", lambda a: f"{a.get('host') or ''}/{a['volume']}".lstrip("/"))
    def submit_backup(
        self,
        *,
        volume: str,
        host: str | None = None,
        target: str | None = None,
        fmt: str | None = None,
        requested_by: str | None = None,
        stop_containers: bool = False,
        excludes: list[str] | None = None,
        snapshot: str | None = None,
        dump: str | None = None,
        dump_databases: list[str] | None = None,
        keep_trees: bool = False,
    ) -> Job:
        """Queue a backup of ``volume`` after every check (``backup_spec``).
        ``keep_trees``: a migration's pre-copy, whose first catch-up round follows on the
        same worker (``common.engine.catchup.precopy_keeping``)."""
        host = host or self.default_host()
        target = target or self.settings.default_target
        with self.db.session() as s:
            spec = backup_spec(
                s, self.settings, volume=volume, host=host, target=target,
                fmt=fmt or self.settings.default_format, requested_by=requested_by,
                stop_containers=stop_containers, excludes=excludes,
                snapshot=snapshot, dump=dump, dump_databases=dump_databases)
            if keep_trees:
                spec["params"]["keep_trees"] = True
            job = jobs.create_job(s, **spec)
        return self._dispatch(job, TASK_BACKUP)

    def dispatch_queued(self, queued: list[Job], task: str) -> list[Job]:
        """Send the task messages of jobs recorded (and committed) together, such as a
        burst's backups (``backup_checks.queue_backups``). A job that could not be sent
        is failed, its refusal audited; returns the jobs sent."""
        sent = []
        for job in queued:
            try:
                sent.append(self._dispatch(job, task))
            except VolkeeperError as e:
                record(self.db, job.requested_by or LOCAL_ACTOR, job.kind,
                       f"{job.host}/{job.volume}", {"job_id": job.id},
                       f"error: {e.code}: {e.message}")
        return sent

    @audited(lambda a: "restore.replace" if a.get("mode") == "replace" else "restore",
             lambda a: str(a["backup_id"]))
    def submit_restore(
        self,
        *,
        backup_id: str,
        into: str | None = None,
        host: str | None = None,
        requested_by: str | None = None,
        mode: str = "new",
        stop_containers: bool = False,
        paths: list[str] | None = None,
        dump_into: str | None = None,
        dump_from: str | None = None,
        database: str | None = None,
        replace_database: bool = False,
    ) -> Job:
        """``mode`` "new" (into a missing or empty volume) or "replace" (snapshot, replace,
        verify, roll back on failure); ``paths`` restores only those (new mode);
        ``dump_into`` loads a dump backup into that running container instead (into a
        new ``database``, or replacing it: ``common.engine.dump_restore``)."""
        for given, flag in ((dump_from, "dump_from (--dump-from) chooses the dump"),
                            (database, "database (--database) names the database"),
                            (replace_database, "replace_database (--replace-database) "
                             "replaces the database")):
            if given and not dump_into:
                raise InvalidInput(f"{flag} that dump_into (--dump-into) loads into",
                                   "name the container to load the dump into with "
                                   "--dump-into CONTAINER")
        if dump_into and (paths or mode == "replace" or into):
            raise InvalidInput("dump_into (--dump-into) loads the dump into a container: it "
                               "takes no into, paths or mode replace",
                               "leave those out, or restore the files without dump_into")
        if dump_into and database:
            from common.jobs.dump_records import check_dump_restore

            with self.db.session() as s:
                check_dump_restore(s, catalog.get_backup(s, backup_id), dump_from, database)
        return self._queue_restore(backup_id=backup_id, into=into, host=host,
                                   requested_by=requested_by, mode=mode,
                                   stop_containers=stop_containers, paths=paths,
                                   dump_into=dump_into, dump_from=dump_from,
                                   dump_options={"database": database,
                                                 "replace_database": replace_database})

    def _queue_restore(self, *, backup_id: str, into: str | None, host: str | None,
                       requested_by: str | None, mode: str, stop_containers: bool,
                       paths: list[str] | None = None,
                       create: dict[str, Any] | None = None,
                       dump_into: str | None = None, dump_from: str | None = None,
                       record_for: str | None = None,
                       dump_options: dict[str, Any] | None = None) -> Job:
        """``submit_restore`` without its audit entry (a rollback writes its own; a
        migration's restores are its own record). ``create``: the driver, driver_opts and
        labels a missing volume is created with (a migration's destination);
        ``record_for``: the migration whose verify baseline the restore records."""
        if paths and mode == "replace":
            raise InvalidInput("selected paths cannot be restored with --mode replace",
                               "restore the paths into a new volume and copy them over")
        if mode not in ("new", "replace"):
            raise InvalidInput(f"unknown restore mode {mode!r}", "use 'new' or 'replace'")
        backup = self._backup(backup_id)
        host, into = self._placement(backup, host, into)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="restore", host=host, volume=into, target=backup.target,
                backup_id=backup.id, params={"source_volume": backup.volume,
                                             "source_host": backup.host, "mode": mode,
                                             "stop_containers": stop_containers,
                                             "paths": paths,
                                             **({"create": create} if create else {}),
                                             **({"dump_into": dump_into} if dump_into
                                                else {}),
                                             **({"dump_from": dump_from} if dump_from
                                                else {}),
                                             **{k: v for k, v in (dump_options or {}).items()
                                                if v},
                                             **({"record_for": record_for} if record_for
                                                else {})},
                requested_by=requested_by)
        return self._dispatch(job, TASK_RESTORE)

    @audited("restore.rollback", lambda a: str(a["restore_job_id"]))
    def rollback(self, *, restore_job_id: str, requested_by: str | None = None) -> Job:
        """Undo a completed replace-restore: put its safety snapshot back (as a replace)."""
        with self.db.session() as s:
            job = jobs.get_job(s, restore_job_id)
            safety_id = (job.result or {}).get("safety_backup_id")
            if job.kind != "restore" or job.params.get("mode") != "replace" or not safety_id:
                raise InvalidInput(f"job {restore_job_id} is not a completed replace-restore",
                                   "only `restore --mode replace` jobs can be rolled back")
            if job.state != JobState.succeeded:
                raise Conflict(f"job {restore_job_id} did not succeed ({job.state}); a failed "
                               "replace-restore is rolled back automatically already")
            try:
                safety = catalog.get_backup(s, safety_id)
            except NotFound:
                raise Conflict(f"the safety snapshot of job {restore_job_id} is gone",
                               "it expired (VOLKEEPER_SAFETY_SNAPSHOT_HOURS) or was "
                               "forgotten (volkeeper forget)") from None
            if safety.expires_at is not None and safety.expires_at < utcnow():
                raise Conflict(f"the safety snapshot of job {restore_job_id} expired at "
                               f"{safety.expires_at.isoformat(timespec='seconds')}")
            host, volume = job.host, job.volume
            stop = bool(job.params.get("stop_containers"))
        return self._queue_restore(backup_id=safety_id, into=volume, host=host,
                                   requested_by=requested_by, mode="replace",
                                   stop_containers=stop)

    @audited("restore.validate", lambda a: str(a["backup_id"]))
    def validate_restore(
        self,
        *,
        backup_id: str,
        into: str | None = None,
        host: str | None = None,
        requested_by: str | None = None,
        timeout: float = 10.0,
        mode: str = "new",
        stop_containers: bool = False,
        paths: list[str] | None = None,
    ) -> Job:
        """Run the restore's checks on the target host now (a dry run) and wait for them.
        Returns the finished ``validate`` job, whose result lists every check."""
        backup = self._backup(backup_id)
        host, into = self._placement(backup, host, into)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="validate", host=host, volume=into, target=backup.target,
                backup_id=backup.id, requested_by=requested_by,
                lock=f"validate/{uuid.uuid4().hex}",
                params={"mode": mode, "stop_containers": stop_containers, "paths": paths})
        return self._wait(self._dispatch(job, TASK_VALIDATE), timeout, "the validation")

    def _wait(self, job: Job, timeout: float, what: str) -> Job:
        """Wait for a quick job to finish (its worker answers within seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db.session() as s:
                job = jobs.get_job(s, job.id)
            if job.state.finished:
                return job
            time.sleep(0.05)
        raise Unavailable(f"the worker of host {job.host!r} did not answer {what} "
                          f"within {timeout:.0f}s (job {job.id})",
                          f"check the worker: volkeeper job {job.id}")

    @audited("drill", lambda a: str(a["backup_id"]))
    def submit_drill(
        self, *, backup_id: str, host: str | None = None, requested_by: str | None = None
    ) -> Job:
        """Restore a backup into a scratch volume on ``host``, compare, measure, clean up."""
        backup = self._backup(backup_id)
        host = host or backup.host
        self._check_host_online(host)
        scratch = f"volkeeper-drill-{uuid.uuid4().hex[:12]}"
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="drill", host=host, volume=backup.volume, target=backup.target,
                backup_id=backup.id, requested_by=requested_by, lock=f"drill/{backup.id}",
                params={"scratch_volume": scratch})
        return self._dispatch(job, TASK_DRILL)

    @audited("verify", lambda a: str(a["backup_id"]))
    def submit_verify(
        self, *, backup_id: str, host: str | None = None, requested_by: str | None = None,
        read_data: bool = False, subset: str | float | None = None, seed: int | None = None,
    ) -> Job:
        """Verify a backup on ``host`` (default: the host that made it, which can surely
        reach its target). One verification of a backup runs at a time. Repo snapshots:
        a structure check, plus all their data with ``read_data`` or a random ``subset``
        ("5%", or a number of percent) of their packs; archives are always read whole and
        refuse a subset."""
        backup = self._backup(backup_id)
        subset_percent = _subset_percent(subset)
        if subset_percent is not None and not traits_of(backup.format).subset_verify:
            raise InvalidInput(f"backup {backup_id} is a {backup.format} archive: --subset "
                               "applies to repository backups only (an archive is one "
                               "compressed stream and is always verified whole)",
                               "verify without --subset")
        host = host or backup.host
        self._check_host_online(host)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="verify", host=host, volume=backup.volume, target=backup.target,
                backup_id=backup.id, requested_by=requested_by, lock=f"verify/{backup.id}",
                params={"read_data": read_data, "subset_percent": subset_percent,
                        "seed": seed})
        return self._dispatch(job, TASK_VERIFY)

    def _guard_backup(self, job: Job) -> None:
        """A forget excludes every other job on the same backup, and the other way round:
        both sides check after their job row is committed, so of two racing requests at
        least one sees the other. The refused job row is removed again."""
        if job.backup_id is None:
            return
        with self.db.session() as s:
            others = jobs.active_jobs_on_backup(s, job.backup_id, exclude=job.id)
            blocking = others if job.kind == "forget" else [
                o for o in others if o.kind == "forget"]
            if not blocking:
                return
            s.delete(jobs.get_job(s, job.id))
        o = blocking[0]
        raise Conflict(
            f"backup {job.backup_id} is in use by job {o.id} ({o.kind}, {o.state})",
            f"wait for it to finish (volkeeper job {o.id} --follow) and try again")

    def _dispatch(self, job: Job, task: str, secrets: dict[str, Any] | None = None) -> Job:
        self._guard_backup(job)
        try:
            if secrets:
                self.dispatcher.send(task, job.host, {"job_id": job.id}, secrets=secrets)
            else:
                self.dispatcher.send(task, job.host, {"job_id": job.id})
        except Exception as e:
            # the caller gets the error (the one-shot CLI prints it): not a second time
            log.warning("could not queue job %s: %s", job.id, e, extra={OUTCOME: True})
            with self.db.session() as s:
                jobs.finish_job(s, job.id, JobState.failed,
                                error=f"could not queue the job: {e}")
            if isinstance(e, Unavailable):
                raise
            raise Unavailable(f"could not queue the job for host {job.host!r}: {e}",
                              "check that Redis (VOLKEEPER_REDIS_URL) is reachable") from e
        return job


_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _subset_percent(value: str | float | None) -> float | None:
    """A subset share in percent, (0, 100]: "5%", "5" and 5 all mean 5%."""
    if value is None:
        return None
    text = str(value).strip().removesuffix("%").strip()
    try:
        pct = float(text)
    except ValueError:
        pct = float("nan")
    if not 0 < pct <= 100:
        raise InvalidInput(f"invalid subset {value!r}",
                           "give the share of the data to read in percent, above 0 and at "
                           "most 100, e.g. 5% or 12.5")
    return pct


def _check_volume_name(name: str) -> None:
    if not _VOLUME_NAME.fullmatch(name) or len(name) > 255:
        raise InvalidInput(
            f"invalid volume name {name!r}",
            "Docker volume names use letters, digits, '_', '.', '-' and start with a "
            "letter or digit")


def job_view(job: Job) -> dict[str, Any]:
    """Plain-dict view of a job for the API and CLI."""
    return {
        "id": job.id, "kind": job.kind, "state": str(job.state), "host": job.host,
        "volume": job.volume, "target": job.target, "backup_id": job.backup_id,
        "params": job.params, "progress": job.progress, "result": job.result,
        "error": job.error, "requested_by": job.requested_by, "worker": job.worker,
        "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
