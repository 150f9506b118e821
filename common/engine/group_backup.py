"""Back up a group of volumes (a Compose project's, or a named set) in one stop window:
the hooks of every container using any of them run once, those containers stop once —
dependents first across the whole group (``common.hooks.stop_order``) — while each volume
is backed up in turn (its own excludes and ``.volkeeperignore``), and start again in
reverse. One volume that fails fails the group: the members already stored are forgotten
again, so a group is stored whole or not at all.

A member is backed up the way a single backup of it would be (``group_members``):

- a member whose container is labelled ``volkeeper.dump=KIND`` is stored as that
  database's dump, run inside the running container (which is neither stopped nor
  hooked, as for one dump backup) — say the db volume of a Compose project;
- a member with a filesystem snapshot (the group's ``snapshot`` mode, else the
  ``volkeeper.snapshot`` label) is read from it: all the group's snapshots are taken
  one after the other before the first member is read (one point in time for the
  group), and all dropped at the end, whatever happens;
- the others are read live, within the stop window when the group stops: it stops (the
  containers that dump nothing) when asked or labelled and at least one member is read
  live — a group of dumps and snapshots runs without downtime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.config import Settings
from common.docker import ContainerRef, DockerHost, VolumeInfo
from common.engine.backup import _forget, backup_volume
from common.engine.group_members import Member, group_members
from common.engine.records import BackupOutcome
from common.errors import VolkeeperError
from common.hooks import HooksReport, consistent, label_notes, should_stop, unhooked_notes
from common.hooks.snapshot_source import snapshot_source
from common.progress import ProgressTracker
from common.storage.base import Backend

#: the filesystem snapshots a group has taken and not dropped yet (their records)
OnSnapshots = Callable[[list[dict[str, Any]]], None]


@dataclass
class GroupBackup:
    """The group's stored backups (``(volume, outcome)``, in order) and what happened
    around them."""

    stored: list[tuple[str, BackupOutcome]]
    report: HooksReport
    members: list[Member]

    def as_result(self) -> dict[str, Any]:
        how = {m.info.name: m.as_result() for m in self.members}
        return {"members": [{"volume": v, **out.as_result(), **how[v]}
                            for v, out in self.stored],
                **self.report.as_result()}


def group_containers(infos: Sequence[VolumeInfo]) -> list[ContainerRef]:
    """Every container using any of the volumes, once."""
    seen: dict[str, ContainerRef] = {}
    for info in infos:
        for c in info.containers:
            seen.setdefault(c.id, c)
    return list(seen.values())


def group_backup(
    docker: DockerHost,
    backend: Backend,
    *,
    host: str,
    volumes: Sequence[str],
    fmt: str,
    job_id: str,
    tracker: ProgressTracker,
    settings: Settings,
    stop_containers: bool = False,
    excludes: Sequence[str] = (),
    snapshot: str | None = None,
    on_stopping: Callable[[list[ContainerRef]], None] | None = None,
    on_started: Callable[[], None] | None = None,
    on_snapshots: OnSnapshots | None = None,
) -> GroupBackup:
    """Back up ``volumes`` within one stop window (see the module doc). ``on_stopping``
    gets the containers about to be stopped before the first is, ``on_started`` is
    called once they run again; ``on_snapshots`` gets the records of the snapshots taken
    and not dropped yet, before each is taken and after each is dropped (record them: a
    crash must not lose them). A failure's exception carries what happened in its
    ``result``."""
    members = group_members(docker, [docker.volume(v) for v in volumes], job_id=job_id,
                            settings=settings, excludes=excludes, snapshot=snapshot)
    dumping = {c.id for m in members for c in m.dump_containers()}
    stop = any(should_stop(m.info, stop_containers) for m in members if m.live)
    report = HooksReport(notes=list(dict.fromkeys(
        [n for m in members for n in label_notes(m.info)]
        + unhooked_notes([c for m in members for c in m.dump_containers()]))))
    stored: list[tuple[str, BackupOutcome]] = []
    pending: dict[str, dict[str, Any]] = {}

    def recorded(volume: str) -> Callable[[dict[str, Any] | None], None]:
        def note(record: dict[str, Any] | None) -> None:
            if record is None:
                pending.pop(volume, None)
            else:
                pending[volume] = record
            if on_snapshots is not None:
                on_snapshots(list(pending.values()))
        return note

    try:
        with consistent(docker, [c for c in group_containers([m.info for m in members])
                                 if c.id not in dumping],
                        "backup", report, stop=stop, tracker=tracker,
                        on_stopping=on_stopping, on_started=on_started), \
                contextlib.ExitStack() as snapshots:
            sources = [snapshots.enter_context(snapshot_source(
                docker, m.info.name, m.snap, tracker=tracker,
                on_recorded=recorded(m.info.name))) for m in members]
            for i, (m, source) in enumerate(zip(members, sources, strict=True), 1):
                tracker.note(f"volume {m.info.name} ({i} of {len(members)})")
                out = backup_volume(source, backend, host=host, volume=m.info.name,
                                    fmt=fmt, job_id=job_id, tracker=tracker,
                                    settings=settings, excludes=m.rules,
                                    dumps=m.dumps or None)
                stored.append((m.info.name, out))
    except VolkeeperError as e:
        for volume, out in stored:
            _forget(backend, out, host, volume, settings)
        e.result = {**(getattr(e, "result", None) or {}),  # type: ignore[attr-defined]
                    **report.as_result(), "members_forgotten": [v for v, _ in stored],
                    "members": [{"volume": m.info.name, **m.as_result()} for m in members]}
        raise
    return GroupBackup(stored, report, members)
