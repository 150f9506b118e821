"""Exec hooks: the commands a container's labels ask to run inside it before and after a
backup or a restore (``volkeeper.pre-backup`` …; the options are in ``labels``).

A hook runs as ``sh -c COMMAND`` through the Docker exec API (``DockerHost.exec_in``),
so the container needs a shell. It fails when it exits non-zero, is killed for its
timeout, or cannot be started; then ``on_error`` decides: ``fail`` raises ``HookFailed``
(naming the container, the hook and the exit code), ``warn`` keeps a warning. Each run is
kept as a ``HookRun`` with the end of its output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from common.docker import ContainerRef, DockerHost
from common.errors import OUTCOME, VolkeeperError
from common.hooks.labels import hook_of
from common.label_secrets import redact_command
from common.progress import ProgressTracker

log = logging.getLogger(__name__)


class HookFailed(VolkeeperError):
    """A hook with ``on_error=fail`` failed."""

    code = "hook_failed"

    def __init__(self, message: str, hint: str | None = None,
                 result: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.result = result or {}


@dataclass
class HookRun:
    """One hook that ran (or could not)."""

    container: str
    hook: str
    command: str
    exit_code: int | None
    seconds: float
    output: str
    timed_out: bool = False
    killed: bool = False
    on_error: str = "fail"
    ok: bool = True
    error: str | None = None

    def describe(self) -> str:
        """What went wrong, for an error message or a warning."""
        if self.timed_out and self.killed:
            why = f"did not finish within its timeout and was killed after {self.seconds:.0f}s"
        elif self.timed_out:
            why = (f"did not finish within its timeout ({self.seconds:.0f}s) and was "
                   "abandoned (this worker cannot see the container's processes to kill "
                   "them: it may still run)")
        elif self.exit_code is None:
            why = f"could not run ({self.error})"
        else:
            why = f"exited with code {self.exit_code}"
        # the last lines: a command's stdout and stderr reach Docker through two pipes, so
        # its error message is not always the very last line
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip()][-3:]
        tail = " | ".join(ln[:300] for ln in lines)[-600:]
        return (f"hook {self.hook} in container {self.container} ({self.command!r}) {why}"
                + (f": {tail}" if tail else ""))

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def run_hook(docker: DockerHost, c: ContainerRef, when: str, what: str) -> HookRun | None:
    """Run the container's ``volkeeper.<when>-<what>`` hook; None when it has none."""
    spec = hook_of(c.labels, when, what)
    if spec is None:
        return None
    hook = spec.label.removeprefix("volkeeper.")
    shown = redact_command(spec.command)  # what the result and the logs say it ran
    try:
        r = docker.exec_in(c.id, ["sh", "-c", spec.command], user=spec.user,
                           timeout=spec.timeout)
    except VolkeeperError as e:
        return HookRun(c.name, hook, shown, None, 0.0, "", on_error=spec.on_error,
                       ok=False, error=e.message)
    return HookRun(c.name, hook, shown, r.exit_code, r.seconds, r.output,
                   timed_out=r.timed_out, killed=r.killed, on_error=spec.on_error,
                   ok=r.exit_code == 0 and not r.timed_out)


def run_hooks(docker: DockerHost, containers: Sequence[ContainerRef], when: str,
              what: str, runs: list[HookRun], tracker: ProgressTracker | None = None,
              *, raise_on_fail: bool = True) -> None:
    """Run the ``when``-``what`` hooks of the running ``containers`` (appended to
    ``runs``). The first failing hook with ``on_error=fail`` raises ``HookFailed`` (when
    ``raise_on_fail``; the remaining hooks do not run)."""
    for c in containers:
        if c.state != "running" or hook_of(c.labels, when, what) is None:
            continue
        if tracker is not None:
            try:
                tracker.note(f"running {when}-{what} hook in {c.name}")
            except VolkeeperError:
                if when == "pre":
                    raise
                tracker = None  # a stopped (fenced) job still runs its post hooks
        run = run_hook(docker, c, when, what)
        if run is None:
            continue
        runs.append(run)
        if run.ok:
            continue
        if run.on_error != "fail" or not raise_on_fail:
            # the job's result keeps it (``hook_warnings``), which a front running the job
            # in its own process prints itself
            log.warning("%s", run.describe(), extra={OUTCOME: True})
            continue  # (else the job's error says it, once)
        after = {("pre", "backup"): "; the backup was not taken",
                 ("pre", "restore"): "; the restore did not start",
                 # (raised only after a backup that was stored: the caller forgets it)
                 ("post", "backup"): "; the backup it followed was stored and is "
                                     "forgotten again"}.get((when, what), "")
        raise HookFailed(
            run.describe() + after,
            "fix the command in the container's label (or run it by hand with docker "
            f"exec {c.name} sh -c …), or set volkeeper.hook-on-error=warn")
