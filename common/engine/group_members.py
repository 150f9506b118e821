"""How each member of a group backup is read (``group_backup``): as its database's dump
(a container using it labelled ``volkeeper.dump``), from a filesystem snapshot, or live —
decided before anything is stopped or taken, the way one backup of the volume decides it
(``common.engine.backup.consistent_backup``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.archive.excludes import NO_EXCLUDES, Excludes
from common.config import Settings
from common.docker import ContainerRef, DockerHost, VolumeInfo
from common.engine.access import direct_path
from common.hooks import excludes_for, read_ignore_file
from common.hooks.dumps import DumpSet, dumps_for
from common.hooks.snapshot_source import SnapshotReport, plan_backup


@dataclass
class Member:
    """One volume of a group: its dumps (empty: its files), its snapshot plan (``snap.plan``
    None: read live) and the excludes of a file backup."""

    info: VolumeInfo
    dumps: DumpSet
    snap: SnapshotReport
    rules: Excludes

    @property
    def live(self) -> bool:
        """Whether its files are read from the volume itself (so a stop matters)."""
        return not self.dumps and self.snap.plan is None

    def dump_containers(self) -> list[ContainerRef]:
        return [s.container for s in self.dumps.sources]

    def as_result(self) -> dict[str, Any]:
        return {"read_as": "dump" if self.dumps else "snapshot" if self.snap.plan
                else "files", **self.snap.as_result(),
                **({"dumps": self.dumps.as_result()} if self.dumps else {})}


def group_members(docker: DockerHost, infos: Sequence[VolumeInfo], *, job_id: str,
                  settings: Settings, excludes: Sequence[str] = (),
                  snapshot: str | None = None) -> list[Member]:
    """How each of ``infos`` is backed up: ``snapshot`` (a mode, or None: each volume's
    ``volkeeper.snapshot`` label) for those that dump nothing. Raises InvalidInput for a
    dumping container that is not running, SnapshotUnavailable for a snapshot asked for by
    kind that a member cannot take."""
    direct = settings.volume_access != "docker-api"
    members = []
    for info in infos:
        dumps = DumpSet(docker, dumps_for(info))
        snap = plan_backup(info, "off" if dumps else snapshot, f"{info.name}-{job_id}",
                           direct=direct)
        rules = NO_EXCLUDES
        if not dumps:
            ignore = read_ignore_file(docker, info.name,
                                      direct_path(docker, info.name, settings))
            rules = excludes_for(info, [*excludes,
                                        *(snap.plan.excludes if snap.plan else [])], ignore)
        members.append(Member(info, dumps, snap, rules))
    return members
