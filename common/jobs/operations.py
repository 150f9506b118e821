"""Operations on stored backups and on a target's repository: tag/pin, forget, copy, and
the repository jobs (prune, stats, snapshots, keys, unlock). The API process only checks
the request against the catalog and records a job; anything that touches storage runs as
that job on a worker (``stored_jobs``, ``repo_jobs``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.audit import audited
from common.db import Backup, Job, JobState, catalog, hosts, jobs
from common.errors import Conflict, InvalidInput, NotFound, Unavailable, VolkeeperError
from common.formats import traits_of
from common.jobs.names import (
    TASK_BROWSE,
    TASK_COPY,
    TASK_FORGET,
    TASK_KEYS,
    TASK_LABEL,
    TASK_MIGRATE_TARGET,
    TASK_PRUNE,
    TASK_REPAIR,
    TASK_SNAPSHOTS,
    TASK_STATS,
    TASK_UNLOCK,
)
from common.jobs.service import JobService

#: Target jobs, their task, and whether they change the repository (one at a time).
TARGET_JOBS: dict[str, tuple[str, bool]] = {
    "prune": (TASK_PRUNE, True),
    "repair": (TASK_REPAIR, True),
    "unlock": (TASK_UNLOCK, True),
    "keys": (TASK_KEYS, True),
    "stats": (TASK_STATS, False),
    "snapshots": (TASK_SNAPSHOTS, False),
}
MAX_TAGS = 50


def _target_action(a: dict[str, Any]) -> str:
    """``target.prune``, ``target.keys.add`` …"""
    action = (a.get("params") or {}).get("action")
    return f"target.{a['kind']}" + (f".{action}" if action else "")



MAX_TAG_LENGTH = 100


def check_tags(tags: Sequence[str]) -> list[str]:
    """Tags are short printable words without commas or whitespace."""
    out = []
    for t in tags:
        if (not t or len(t) > MAX_TAG_LENGTH or not t.isprintable() or "," in t
                or any(c.isspace() for c in t)):
            shown = repr(t[:MAX_TAG_LENGTH]) + (f" … ({len(t)} characters)"
                                                if len(t) > MAX_TAG_LENGTH else "")
            raise InvalidInput(f"invalid tag {shown}",
                               f"a tag is 1-{MAX_TAG_LENGTH} printable characters without "
                               "spaces or commas")
        out.append(t)
    return out


class OperationsService(JobService):
    """JobService plus the operations on stored backups and repositories."""

    # --- one backup ------------------------------------------------------------------

    @audited("backup.label", lambda a: str(a["backup_id"]))
    def label_backup(self, *, backup_id: str, add: Sequence[str] = (),
                     remove: Sequence[str] = (), pinned: bool | None = None,
                     host: str | None = None, requested_by: str | None = None
                     ) -> tuple[Backup, Job | None]:
        """Change a backup's tags and pin in the catalog now; for a ``repo`` backup also
        queue a job writing them into its snapshot (so the repository alone knows them).
        Returns the updated row and that job (None for archives)."""
        add, remove = check_tags(add), check_tags(remove)
        both = sorted(set(add) & set(remove))
        if both:
            raise InvalidInput(f"tag(s) {', '.join(both)} both added and removed",
                               "name each tag once")
        backup = self._backup(backup_id)
        in_storage = traits_of(backup.format).labels_in_storage
        if in_storage:
            host = host or backup.host
            self._check_host_online(host)
        with self.db.session() as s:
            forgetting = [j for j in jobs.active_jobs_on_backup(s, backup_id, exclude="")
                          if j.kind == "forget"]
            if forgetting:
                raise Conflict(f"backup {backup_id} is being forgotten (job "
                               f"{forgetting[0].id}, {forgetting[0].state})",
                               "labels cannot change while it is deleted")
            row = catalog.label_backup(s, backup_id, add=add, remove=remove, pinned=pinned)
            if len(row.tags) > MAX_TAGS:
                raise InvalidInput(f"backup {backup_id} would have {len(row.tags)} tags",
                                   f"keep at most {MAX_TAGS}")
        if not in_storage or host is None:
            return row, None
        return row, self._label_job(row, host, requested_by)

    def _label_job(self, backup: Backup, host: str, requested_by: str | None) -> Job:
        """One label job per backup at a time; it writes the catalog's state as it is when
        it runs (and again if it changed meanwhile), so an active one is simply re-used."""
        try:
            with self.db.session() as s:
                job = jobs.create_job(
                    s, kind="label", host=host, volume=backup.volume, target=backup.target,
                    backup_id=backup.id, requested_by=requested_by,
                    lock=f"label/{backup.id}")
        except Conflict:
            with self.db.session() as s:
                active = s.scalar(select(Job).where(Job.active_lock == f"label/{backup.id}"))
            if active is not None:
                return active
            raise
        return self._dispatch(job, TASK_LABEL)

    @audited("backup.forget", lambda a: str(a["backup_id"]))
    def forget_backup(self, *, backup_id: str, host: str | None = None,
                      requested_by: str | None = None) -> Job:
        """Delete a backup's stored objects (archive + manifest, or the repository
        snapshot), then its catalog row. A pinned backup is refused; so is a backup that
        another job (restore, verify, drill, copy …) uses right now."""
        backup = self._backup(backup_id)
        if backup.pinned:
            raise Conflict(f"backup {backup_id} is pinned",
                           f"unpin it first if you mean to delete it: volkeeper "
                           f"unpin {backup_id}")
        host = host or backup.host
        self._check_host_online(host)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="forget", host=host, volume=backup.volume, target=backup.target,
                backup_id=backup.id, requested_by=requested_by, lock=f"forget/{backup.id}",
                params={"format": backup.format, "key": backup.key})
        return self._dispatch(job, TASK_FORGET)

    @audited("backup.copy", lambda a: str(a["backup_id"]))
    def copy_backup(self, *, backup_id: str, target: str, host: str | None = None,
                    requested_by: str | None = None) -> Job:
        """Copy a backup to another target (a repository snapshot without re-chunking, an
        archive object by object), through a worker; the copy gets its own catalog row."""
        backup = self._backup(backup_id)
        if target == backup.target:
            raise InvalidInput(f"backup {backup_id} is already on target {target!r}",
                               "name another target with --to")
        with self.db.session() as s:
            catalog.get_target(s, target)
            _refuse_same_storage(s, backup.target, target)
        host = host or backup.host
        self._check_host_online(host)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="copy", host=host, volume=backup.volume, target=backup.target,
                backup_id=backup.id, requested_by=requested_by,
                lock=f"copy/{backup.id}/{target}",
                params={"destination": target, "format": backup.format})
        return self._dispatch(job, TASK_COPY)

    def browse_backup(self, *, backup_id: str, path: str = "", host: str | None = None,
                      requested_by: str | None = None, timeout: float = 15.0
                      ) -> dict[str, Any]:
        """List one directory of a backup (``path`` relative to the volume; "" its root)
        through a worker that reaches its target, and wait for it: ``{path, entries,
        more}``. NotFound for a path not in the backup, InvalidInput for a file."""
        path = str(path).strip().strip("/")
        if ".." in path.split("/") or len(path) > 4096:
            raise InvalidInput(f"invalid path {path[:100]!r}: '..' is not allowed",
                               "give a directory inside the volume, e.g. db/base")
        backup = self._backup(backup_id)
        host = host or backup.host
        self._check_host_online(host)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="browse", host=host, volume=backup.volume, target=backup.target,
                backup_id=backup.id, requested_by=requested_by,
                lock=f"browse/{jobs.new_lock_suffix()}", params={"path": path})
        job = self._wait(self._dispatch(job, TASK_BROWSE), timeout, "the listing")
        if job.state != JobState.succeeded:
            raise VolkeeperError(f"backup {backup_id} could not be listed: {job.error}",
                                 f"see volkeeper job {job.id}")
        refused = job.result.get("refused")
        if refused:
            if refused["code"] == NotFound.code:
                raise NotFound("path", path, refused.get("hint"))
            raise InvalidInput(refused["message"], refused.get("hint"))
        return dict(job.result)

    @audited("target.migrate", lambda a: f"{a['source']}->{a['destination']}")
    def migrate_target(self, *, source: str, destination: str,
                       volumes: list[str] | None = None, delete_source: bool = False,
                       host: str | None = None, requested_by: str | None = None) -> Job:
        """One job moving the backups of ``source`` (of ``volumes``, when given) to
        ``destination`` (``target_migration``); one at a time per pair of targets."""
        if source == destination:
            raise InvalidInput(f"source and destination are both {source!r}",
                               "name two different targets: migrate-target FROM TO")
        wanted = list(dict.fromkeys(volumes or []))
        with self.db.session() as s:
            catalog.get_target(s, source)
            catalog.get_target(s, destination)
            _refuse_same_storage(s, source, destination)
            known = set(s.scalars(select(Backup.volume).where(
                Backup.target == source, Backup.kind == "backup").distinct()))
        missing = [v for v in wanted if v not in known]
        if missing:
            raise InvalidInput(
                f"volume(s) {', '.join(map(repr, missing))} have no backup on target "
                f"{source!r}", f"list them with `volkeeper backups --target {source}`; "
                "--volume names a volume whose backups to move")
        host = self._host_for_target(source, host)
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind="migrate-target", host=host, volume="", target=source,
                params={"destination": destination, "volumes": wanted,
                        "delete_source": delete_source},
                requested_by=requested_by, lock=f"migrate-target/{source}/{destination}")
        return self._dispatch(job, TASK_MIGRATE_TARGET)

    # --- one target --------------------------------------------------------------------

    @audited(_target_action, lambda a: str(a["target"]))
    def target_job(self, kind: str, *, target: str, host: str | None = None,
                   params: dict[str, Any] | None = None, requested_by: str | None = None,
                   secrets: dict[str, Any] | None = None, exclusive: bool | None = None
                   ) -> Job:
        """Queue a repository job on ``target``: prune, unlock and keys take the target's
        maintenance slot (one at a time); stats and snapshots only read (unless
        ``exclusive`` says otherwise: a snapshot listing that adopts writes the catalog)."""
        task, default_exclusive = TARGET_JOBS[kind]
        exclusive = default_exclusive if exclusive is None else exclusive
        if secrets and "new_password" in secrets:  # 422 now, not a failed job later
            from common.repository.core.keys import check_new_passphrase

            check_new_passphrase(str(secrets["new_password"]))
        with self.db.session() as s:
            catalog.get_target(s, target)
        host = self._host_for_target(target, host)
        lock = f"target/{target}" if exclusive else None
        with self.db.session() as s:
            job = jobs.create_job(
                s, kind=kind, host=host, volume="", target=target, params=params or {},
                requested_by=requested_by,
                lock=lock or f"{kind}/{target}/{jobs.new_lock_suffix()}")
        return self._dispatch(job, task, secrets)

    def _host_for_target(self, target: str, host: str | None) -> str:
        """The host to run a target job on: the one named, else (embedded) this host, else
        the online host that most recently backed up to the target."""
        if host:
            self._check_host_online(host)
            return host
        if self.settings.mode == "embedded":
            self._check_host_online(self.settings.host_name)
            return self.settings.host_name
        offline_after = timedelta(seconds=self.settings.host_offline_after_seconds)
        with self.db.session() as s:
            q = (select(Backup.host).where(Backup.target == target).group_by(Backup.host)
                 .order_by(func.max(Backup.created_at).desc()))
            for name in s.scalars(q):
                try:
                    if hosts.is_online(hosts.get_host(s, name), offline_after):
                        return str(name)
                except NotFound:
                    continue
        raise Unavailable(f"no online host is known to reach target {target!r}",
                          "name a host whose worker can reach it: --host NAME")


def _refuse_same_storage(session: Session, source: str, destination: str) -> None:
    """A copy or move onto the storage it comes from would catalogue the backup twice;
    forgetting one (a move forgets the source) deletes the data of both."""
    from common.jobs.targets import same_storage

    if same_storage(session, source, destination):
        raise InvalidInput(
            f"targets {source!r} and {destination!r} use the same storage: a copy there "
            "would be the same data, and forgetting either backup would delete both",
            "name a target with a location of its own (another directory or bucket "
            "prefix); GET /api/v1/targets shows each target's URL")
