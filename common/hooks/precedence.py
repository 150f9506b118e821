"""When a policy's options and the labels disagree: the labels come first, the most
specific the first — a label on a container using the volume, then one on the volume,
then the policy, then the default (docs/consistency.md). A manual backup's own options
still win over labels as before (``around.should_stop``, ``snapshot_source``); only a job a
policy queued (its params name the policy) is resolved here. Excludes add up, they never
override each other (``excludes.excludes_for``)."""

from __future__ import annotations

from dataclasses import dataclass

from common.docker import VolumeInfo
from common.hooks import labels
from common.hooks.dumps import DUMP


@dataclass(frozen=True)
class Decided:
    """How a policy's backup of one volume is made consistent, labels applied."""

    stop: bool
    snapshot: str | None
    dump: str | None


def _said(value: str | None) -> str | None:
    return (value or "").strip() or None


def stop_by_labels(info: VolumeInfo) -> bool | None:
    """What the ``volkeeper.stop-during-backup`` labels say: the containers' (any true:
    stop; all that have it false: do not), else the volume's; None when none has it."""
    said = [v for c in info.containers if (v := _said(c.labels.get(labels.STOP)))]
    if said:
        return any(labels.truthy(v) for v in said)
    volume = _said(info.labels.get(labels.STOP))
    return None if volume is None else labels.truthy(volume)


def policy_options(info: VolumeInfo, stop: bool, snapshot: str | None, dump: str | None
                   ) -> Decided:
    """A policy's ``stop``, ``snapshot`` and ``dump`` for ``info`` with its labels first.
    A container labelled ``volkeeper.dump`` makes it that dump backup (the policy's stop
    and snapshot then do not apply: a dump runs inside the running database)."""
    if any(_said(c.labels.get(DUMP)) for c in info.containers):
        return Decided(stop=False, snapshot=None, dump=None)
    by_labels = stop_by_labels(info)
    snap_labelled = any(_said(src.get(labels.SNAPSHOT)) for src in
                        (info.labels, *(c.labels for c in info.containers)))
    return Decided(stop=stop if by_labels is None else by_labels,
                   snapshot=None if snap_labelled else snapshot, dump=dump)
