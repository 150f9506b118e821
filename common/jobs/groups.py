"""Volume groups: the volumes of a Compose project, or a named set, backed up as **one
job** (``group-backup``) within one stop window — the containers using any of them stop
once, in Compose dependency order, and start again in reverse — producing one backup per
volume, tied together by the group id (the job's id, ``backups.group_id``). A group is
restored together: one restore job per member (``submit_restore``, with the same checks
and safety as a single restore), into each member's own volume or ``<volume><suffix>``.

A project's volumes are those of the host's inventory with the label
``com.docker.compose.project`` on the volume or on a container using it — the selection
policies use (``common.policies.selection``).

The group job holds its own lock (``host/project:NAME`` or ``host/group:NAME``); a
member volume with an active job (or in another active group) refuses the group at
submission and again when it starts, and while the group is active a job on one of its
volumes is refused (``common.db.jobs.create_job``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator
from sqlalchemy import select

from common.audit import audited
from common.db import Job, catalog, hosts, jobs
from common.errors import Conflict, InvalidInput, NotFound
from common.jobs.backup_checks import require_target
from common.jobs.inputs import NAME, Format, Input, SnapshotMode
from common.jobs.names import FORMATS, TASK_GROUP_BACKUP
from common.jobs.service import JobService, _check_volume_name
from common.policies.selection import Selection, volume_ref
from common.policies.selection import select as select_volumes

KIND = jobs.GROUP_KIND
MAX_MEMBERS = 100


class GroupBackupIn(Input):
    """A group backup: ``project`` (a Compose project) or ``name`` with ``volumes``."""

    project: str | None = Field(default=None, max_length=255, description="back up all "
                                "volumes of this Compose project (com.docker.compose.project "
                                "on the volume or a container using it)")
    name: str | None = Field(default=None, pattern=NAME, max_length=100,
                             description="a name for a set of volumes (with volumes)")
    volumes: list[str] = Field(default_factory=list, max_length=MAX_MEMBERS,
                               description="the volumes of a named group")
    host: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=100)
    format: Format | None = None
    stop_containers: bool = Field(default=False, description="stop the running containers "
                                  "using any of the volumes once for the whole group")
    excludes: list[str] = Field(default_factory=list, max_length=100)
    snapshot: SnapshotMode | None = Field(default=None, description="read each member "
                                          "that dumps nothing from a filesystem snapshot "
                                          "(all taken before the first is read) instead "
                                          "of stopping: auto, btrfs, zfs, lvm, off; "
                                          "default: each volume's volkeeper.snapshot label")

    @field_validator("volumes")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for n in names:
            _check_volume_name(n)
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _one_kind(self) -> GroupBackupIn:
        if bool(self.project) == bool(self.name):
            raise ValueError("give either project (a Compose project) or name with volumes")
        if self.name and not self.volumes:
            raise ValueError(f"group {self.name!r} has no volumes: give them in volumes "
                             "(--volume A --volume B)")
        if self.project and self.volumes:
            raise ValueError("volumes are taken from the project: give project or "
                             "name+volumes, not both")
        return self


class GroupRestoreIn(Input):
    host: str | None = Field(default=None, max_length=200,
                             description="host to restore on (default: the backups' host)")
    mode: str = Field(default="new", pattern="^(new|replace)$",
                      description="as for one restore: new (into missing or empty volumes) "
                      "or replace (safety snapshot, replace, roll back on failure)")
    suffix: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9_.-]*$",
                        description="restore each member into <volume><suffix> (new "
                        "volumes) instead of its own volume")
    stop_containers: bool = False


class GroupJobs:
    """Submitting group backups and group restores (``service``: the job services)."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.db = service.db

    def members(self, host: str, g: GroupBackupIn) -> list[str]:
        """The volumes of the group on ``host`` (a project's from the inventory)."""
        with self.db.session() as s:
            if g.name:
                for v in g.volumes:
                    hosts.get_volume(s, host, v)
                return list(g.volumes)
            refs = [volume_ref(v.host, v.name, v.labels, v.containers)
                    for v in hosts.list_volumes(s, host)]
        found = [r.name for r in select_volumes(Selection(project=g.project, hosts=(host,)),
                                                refs)]
        if not found:
            raise NotFound("Compose project", str(g.project),
                           f"no volume on host {host!r} has the label "
                           "com.docker.compose.project (on itself or a container using it) "
                           "with that value in the last inventory; list volumes with "
                           "`volkeeper volumes`")
        if len(found) > MAX_MEMBERS:
            raise InvalidInput(f"project {g.project!r} has {len(found)} volumes, more than "
                               f"{MAX_MEMBERS} in one group", "back it up in named sets")
        return found

    @audited("backup.group", lambda a: str(a["g"].project or a["g"].name))
    def submit_backup(self, *, g: GroupBackupIn, requested_by: str | None = None) -> Job:
        """Queue one ``group-backup`` job for the group's volumes; Conflict when one of
        them has an active job."""
        settings = self.service.settings
        host = g.host or self.service.default_host()
        target = g.target or settings.default_target
        fmt = g.format or settings.default_format
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")
        self.service._check_host_online(host)
        volumes = self.members(host, g)
        label = f"project:{g.project}" if g.project else f"group:{g.name}"
        with self.db.session() as s:
            require_target(s, target, settings.default_target)
            busy_members(s, host, volumes)
            job = jobs.create_job(
                s, kind=KIND, host=host, volume=label, target=target,
                params={"format": fmt, "volumes": volumes, "group": label,
                        **({"stop_containers": True} if g.stop_containers else {}),
                        **({"excludes": g.excludes} if g.excludes else {}),
                        **({"snapshot": g.snapshot} if g.snapshot else {})},
                requested_by=requested_by)
        return self.service._dispatch(job, TASK_GROUP_BACKUP)

    def submit_restore(self, *, group_id: str, r: GroupRestoreIn,
                       requested_by: str | None = None) -> list[Job]:
        """One restore job per member of group ``group_id`` (each audited as a restore);
        every member's target is checked before the first is queued."""
        with self.db.session() as s:
            members = catalog.list_backups(s, group=group_id, limit=MAX_MEMBERS)
            if not members:
                raise NotFound("group", group_id, "list group backups with `volkeeper "
                               "backups` (column group) or GET /api/v1/backups?group=ID")
            host = r.host or members[0].host
            plan = [(b.id, f"{b.volume}{r.suffix}") for b in members]
            for _, into in plan:
                _check_volume_name(into)
            busy_members(s, host, [into for _, into in plan])
        return [self.service.submit_restore(
            backup_id=backup_id, into=into, host=host, requested_by=requested_by,
            mode=r.mode, stop_containers=r.stop_containers) for backup_id, into in plan]


def busy_members(session: Any, host: str, volumes: Sequence[str],
                 exclude: str | None = None) -> None:
    """Conflict naming the first of ``volumes`` with an active job on ``host`` (a job on
    it, or another group job holding it; ``exclude``: this job)."""
    locks = [jobs.lock_key(host, v) for v in volumes]
    other = session.scalar(select(Job).where(Job.active_lock.in_(locks)))
    group = jobs.group_holding(session, host, list(volumes))
    if other is None and group is not None and group.id != exclude:
        raise Conflict(f"a volume of the group is part of another active group backup "
                       f"(job {group.id} of {group.volume}, {group.state})",
                       "wait for that job to finish (volkeeper job ID) and submit again")
    if other is not None:
        raise Conflict(f"volume {other.volume!r} of the group already has an active job "
                       f"(job {other.id}, {other.kind}, {other.state})",
                       "wait for that job to finish (volkeeper job ID) and submit again")
