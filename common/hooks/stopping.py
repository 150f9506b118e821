"""Stopping the containers that use a volume, and always starting them again.

``StopWindow`` is a context manager: entering it calls ``on_stopping(containers)`` — the
caller records them where a crash cannot lose them — then stops them in ``stop_order``;
leaving it (also on an exception) starts again, in reverse order, every container it
stopped, and calls ``on_started`` once they are all running. ``windows`` says, per
container, when it went down and how long it stayed down. ``start_again`` is the
recovery's half: start what a killed process had stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.docker import ContainerRef, DockerHost
from common.errors import DockerError
from common.hooks import labels
from common.progress import ProgressTracker

log = logging.getLogger(__name__)

#: seconds a container gets to stop on SIGTERM before Docker kills it (unless its label
#: ``volkeeper.stop-timeout`` says otherwise)
STOP_TIMEOUT = 30


def stop_order(containers: Sequence[ContainerRef]) -> list[ContainerRef]:
    """Dependents first: a Compose container before the services it depends on (its
    ``com.docker.compose.depends_on`` label, within its project); otherwise by name.
    Starting goes the other way round."""
    by_name = sorted(containers, key=lambda c: c.name)
    key = {c.id: (c.labels.get(labels.COMPOSE_PROJECT), c.labels.get(labels.COMPOSE_SERVICE))
           for c in by_name}
    # the containers each one must be stopped before (those it depends on)
    before: dict[str, set[str]] = {c.id: set() for c in by_name}
    for c in by_name:
        project = key[c.id][0]
        for dep in labels.depends_on(c.labels):
            for other in by_name:
                if other.id != c.id and key[other.id] == (project, dep):
                    before[other.id].add(c.id)  # c (the dependent) goes first
    out: list[ContainerRef] = []
    done: set[str] = set()
    while len(out) < len(by_name):
        ready = [c for c in by_name if c.id not in done and before[c.id] <= done]
        if not ready:  # a dependency cycle: the rest by name
            ready = [c for c in by_name if c.id not in done][:1]
        out.append(ready[0])
        done.add(ready[0].id)
    return out


@dataclass
class Window:
    """How long one container was down."""

    id: str
    name: str
    stopped_at: float = 0.0
    started_at: float | None = None
    start_error: str | None = None
    #: the container was removed while it was down (a Compose ``up`` recreating it …):
    #: nothing to start
    removed: bool = False

    def as_result(self) -> dict[str, Any]:
        down = None if self.started_at is None else round(self.started_at - self.stopped_at, 3)
        return {"id": self.id, "name": self.name, "seconds_down": down,
                "restarted": self.started_at is not None,
                **({"start_error": self.start_error} if self.start_error else {}),
                **({"removed": True} if self.removed else {})}


class StopWindow:
    """Stop ``containers`` (the running ones) for the block; see the module doc."""

    def __init__(self, docker: DockerHost, containers: Sequence[ContainerRef], *,
                 tracker: ProgressTracker | None = None,
                 on_stopping: Callable[[list[ContainerRef]], None] | None = None,
                 on_started: Callable[[], None] | None = None,
                 timeout: int = STOP_TIMEOUT) -> None:
        self.docker = docker
        self.order = stop_order([c for c in containers if c.state == "running"])
        self.tracker = tracker
        self.on_stopping = on_stopping
        self.on_started = on_started
        self.timeout = timeout
        self.windows: list[Window] = []

    @property
    def stopped(self) -> list[str]:
        return [w.name for w in self.windows]

    @property
    def restarted(self) -> list[str]:
        return [w.name for w in self.windows if w.started_at is not None]

    def __enter__(self) -> StopWindow:
        if not self.order:
            return self
        if self.on_stopping is not None:
            self.on_stopping(list(self.order))
        try:
            for c in self.order:
                if self.tracker is not None:
                    self.tracker.note(f"stopping container {c.name}")
                w = Window(c.id, c.name, stopped_at=time.monotonic())
                self.windows.append(w)  # before the call: a half-stopped one is started
                try:
                    self.docker.stop_container(
                        c.id, timeout=labels.stop_timeout(c.labels, self.timeout))
                except DockerError:
                    if not self._gone(c.id):
                        raise
                    w.removed = True  # removed since the backup began: nothing to stop
        except BaseException:
            self.start()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.start()

    def start(self) -> None:
        """Start again, in reverse order, every container stopped (once each); never
        raises: a container that does not start is logged and reported."""
        for w in reversed(self.windows):
            if w.started_at is not None or w.removed:
                continue
            try:
                self.docker.start_container(w.id)
                w.started_at, w.start_error = time.monotonic(), None
            except (DockerError, OSError) as e:
                if isinstance(e, DockerError) and self._gone(w.id):
                    w.removed, w.start_error = True, None  # removed while it was down
                    log.warning("container %s was removed while it was stopped for the "
                                "backup: not started again", w.name)
                    continue
                w.start_error = str(e)
                log.error("could not start container %s again: %s", w.name, e)
        if self.on_started is not None and self.windows and all(
                w.started_at is not None or w.removed for w in self.windows):
            try:
                self.on_started()
            except Exception:
                log.exception("could not record that the containers run again")

    def _gone(self, container_id: str) -> bool:
        """Whether the container no longer exists (False when that cannot be learned)."""
        try:
            return self.docker.container_state(container_id) is None
        except (DockerError, OSError):
            return False

    def as_result(self) -> list[dict[str, Any]]:
        return [w.as_result() for w in self.windows]


def start_again(docker: DockerHost, containers: Sequence[dict[str, str]]) -> list[str]:
    """Start the containers (``{"id", "name"}``, in stop order) a killed process stopped,
    in reverse order; those running already or removed are skipped. Returns the names of
    those started; DockerError when one that exists cannot be started."""
    started = []
    for c in reversed(list(containers)):
        state = docker.container_state(c["id"])
        if state is None or state == "running":
            continue
        docker.start_container(c["id"])
        started.append(c["name"])
    return started
