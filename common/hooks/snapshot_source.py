"""A backup's read side on a filesystem snapshot: which snapshot a backup of a volume takes
(``plan_backup``: the request's mode, else the ``volkeeper.snapshot`` label of the volume
or of a container using it, else off), and the block it runs in (``snapshot_source``):
record, take, yield a Docker host that reads the volume from the snapshot, and always drop
it again — after a failure or a cancel too; a killed worker's snapshot is dropped by the
host's recovery from the record (``snapshots.drop_recorded``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from common.docker import DockerHost, VolumeInfo
from common.errors import VolkeeperError
from common.hooks import labels
from common.hooks.snapshots import Plan, choose, data_path, drop_recorded, take
from common.progress import ProgressTracker

log = logging.getLogger(__name__)


def requested_mode(info: VolumeInfo, requested: str | None) -> str:
    """The snapshot mode of a backup of ``info``: the request's, else the volume's
    ``volkeeper.snapshot`` label, else a container's, else ``off``."""
    if requested:
        return requested.strip().lower()
    for source in (info.labels, *(c.labels for c in info.containers)):
        value = (source.get(labels.SNAPSHOT) or "").strip().lower()
        if value:
            return value
    return "off"


@dataclass
class SnapshotReport:
    """What the snapshot side did, for the job's result."""

    mode: str = "off"
    plan: Plan | None = None
    note: str = ""
    seconds: float | None = None
    dropped: bool = False
    drop_error: str | None = None

    def as_result(self) -> dict[str, Any]:
        if self.mode == "off":
            return {}
        out: dict[str, Any] = {"snapshot_mode": self.mode}
        if self.plan is not None:
            out["snapshot"] = {"kind": self.plan.kind, "handle": self.plan.handle,
                               "seconds_to_take": self.seconds, "dropped": self.dropped,
                               **({"drop_error": self.drop_error} if self.drop_error
                                  else {})}
        if self.note:
            out["snapshot_note"] = self.note
        return out


def plan_backup(info: VolumeInfo, requested: str | None, name: str, *,
                direct: bool) -> SnapshotReport:
    """Decide the snapshot of a backup of ``info`` (``name``: unique per job, e.g. its
    id); SnapshotUnavailable when one was asked for by kind and cannot be had."""
    mode = requested_mode(info, requested)
    plan, note = choose(mode, info.name, data_path(info.driver, info.mountpoint,
                                                   info.options), name, direct=direct)
    return SnapshotReport(mode=mode, plan=plan, note=note)


class SnapshotView:
    """The Docker host as the engine sees it during a snapshot backup: the one volume's
    data is at ``path`` (inside the snapshot); everything else is the real host's."""

    def __init__(self, docker: DockerHost, volume: str, path: Path) -> None:
        self._docker, self._volume, self._path = docker, volume, path

    def local_path(self, name: str) -> Path | None:
        return self._path if name == self._volume else self._docker.local_path(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._docker, attr)


@contextlib.contextmanager
def snapshot_source(docker: DockerHost, volume: str, report: SnapshotReport, *,
                    tracker: ProgressTracker | None = None,
                    on_recorded: Callable[[dict[str, Any] | None], None] | None = None
                    ) -> Iterator[DockerHost]:
    """Run the block on the snapshot of ``report.plan`` (the real host without one):
    ``on_recorded`` gets its record before it is taken; it is dropped whatever happens
    (``on_recorded(None)`` then; a drop that fails is logged and reported, the host's
    recovery tries again only after a crash)."""
    plan = report.plan
    if plan is None:
        if report.note and tracker is not None:
            tracker.note(report.note)
        yield docker
        return
    if tracker is not None:
        tracker.note(f"taking a {plan.describe()}")
    if on_recorded is not None:
        on_recorded(plan.record())
    try:
        started = time.monotonic()
        take(plan)
        report.seconds = round(time.monotonic() - started, 3)
        log.info("volume %s: took %s in %.3fs", volume, plan.describe(), report.seconds)
        yield cast(DockerHost, SnapshotView(docker, volume, plan.read_path))
    finally:
        try:
            drop_recorded(plan.record())
            report.dropped = True
        except VolkeeperError as e:
            report.drop_error = e.message
            log.error("volume %s: %s", volume, e)
        if report.dropped and on_recorded is not None:
            try:
                on_recorded(None)
            except Exception:
                log.exception("could not record that the snapshot was dropped")
