"""The order around a backup or a replace-restore: pre hooks → stop → the work → start
→ post hooks (``consistent``), and what happened (``HooksReport``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from common.docker import ContainerRef, DockerHost, VolumeInfo
from common.hooks import labels
from common.hooks.exec_hooks import HookRun, run_hooks
from common.hooks.stopping import StopWindow
from common.progress import ProgressTracker


def should_stop(volume: VolumeInfo, requested: bool) -> bool:
    """Whether a backup stops the containers using ``volume``: asked for, or the label
    ``volkeeper.stop-during-backup`` on the volume or on one of those containers."""
    return requested or labels.truthy(volume.labels.get(labels.STOP)) or any(
        labels.truthy(c.labels.get(labels.STOP)) for c in volume.containers)


@dataclass
class HooksReport:
    """What happened around the work: hooks that ran, containers stopped and how long."""

    hooks: list[HookRun] = field(default_factory=list)
    window: StopWindow | None = None
    #: labels that look like a misspelt volkeeper label (``label_notes``)
    notes: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """The failed hooks, the containers stopped that could not be started again (the
        work itself may have succeeded: nothing else would say they are down) and the
        misspelt labels."""
        down = [w for w in (self.window.windows if self.window else []) if w.start_error]
        return [h.describe() for h in self.hooks if not h.ok] + [
            f"container {w.name} was stopped and could not be started again: "
            f"{w.start_error} (it is still down: docker start {w.name})" for w in down
        ] + self.notes

    def as_result(self) -> dict[str, Any]:
        w = self.window
        return {
            "stopped_containers": w.stopped if w else [],
            "restarted_containers": w.restarted if w else [],
            "stop_windows": w.as_result() if w else [],
            "hooks": [h.as_result() for h in self.hooks],
            "hook_warnings": self.warnings(),
        }


def label_notes(volume: VolumeInfo) -> list[str]:
    """A warning per label of ``volume`` or of a container using it that volkeeper does
    not read but that is a slip from one it does (it is ignored, so what it asks for —
    a stop, a hook, a dump — silently does not happen), and per value it reads as the
    default instead (``stop-during-backup=ture``, ``hook-timeout=5m``)."""
    sources = [(f"volume {volume.name}", volume.labels),
               *((f"container {c.name}", c.labels) for c in volume.containers)]
    return [f"label {name} on {where} is not a volkeeper label and was ignored: did you "
            f"mean {near}?" for where, found in sources
            for name, near in labels.misspelt(found)] + [
        f"label {bad} (on {where})" for where, found in sources
        for bad in labels.bad_values(found)]


def unhooked_notes(dumping: list[ContainerRef]) -> list[str]:
    """A warning per backup hook of a container whose database is dumped: a dumping
    container is neither stopped nor hooked (its dump is the consistent copy)."""
    return [f"label volkeeper.{when}-backup on container {c.name} did not run: a container "
            f"whose database is dumped (volkeeper.dump) is not hooked"
            for c in {c.id: c for c in dumping}.values() for when in labels.HOOK_WHEN
            if labels.hook_of(c.labels, when, "backup") is not None]


@contextlib.contextmanager
def consistent(docker: DockerHost, containers: list[ContainerRef], what: str,
               report: HooksReport, *, stop: bool, tracker: ProgressTracker | None = None,
               on_stopping: Callable[[list[ContainerRef]], None] | None = None,
               on_started: Callable[[], None] | None = None,
               post_can_fail: bool = True) -> Iterator[HooksReport]:
    """Run the block (``what``: backup or restore) between the hooks of ``containers``,
    with the running ones stopped when ``stop``. Post hooks run whatever happened; a
    failing post hook with ``on_error=fail`` raises ``HookFailed`` only when the block
    succeeded and ``post_can_fail`` (else the block's error stands and the failure is in
    ``report``)."""
    failed = False
    try:
        run_hooks(docker, containers, "pre", what, report.hooks, tracker)
        report.window = StopWindow(docker, containers if stop else [], tracker=tracker,
                                   on_stopping=on_stopping, on_started=on_started)
        with report.window:
            yield report
    except BaseException:
        failed = True
        raise
    finally:
        run_hooks(docker, containers, "post", what, report.hooks, tracker,
                  raise_on_fail=post_can_fail and not failed)
