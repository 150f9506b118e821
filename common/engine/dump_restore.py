"""Restore of a dump backup into a running database: its dump (``.volkeeper-dumps/``,
``common.hooks.dumps``) is streamed out of the stored backup straight into the matching
loader inside the container the user chose (``psql`` for PostgreSQL, ``mysql``,
``mongorestore``, … from ``dump_kinds``), with the credentials of that container's own
environment. Redis's loader replaces the server's RDB file and shuts it down without
saving; the container is then started again, which loads it.

The loader's exit code decides: non-zero fails the restore with the end of its output.
Messages a loader prints while succeeding (``psql`` reporting that a role it re-creates
exists already) are kept, bounded, in the result.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

from common.config import Settings
from common.docker import DockerHost
from common.engine.formats import Format, format_of
from common.engine.records import StoredBackup
from common.errors import InvalidInput, NotFound, VolkeeperError
from common.hooks.dump_kinds import DIRECTORY, parse_file_name
from common.hooks.dumps import DumpFailed, source_of
from common.progress import ProgressTracker
from common.storage.base import Backend

#: how long a restarting container (Redis) may take to stop and to run again
RESTART_SECONDS = 60.0


@dataclass
class Loaded:
    """A dump loaded into a container."""

    container: str
    kind: str
    path: str
    bytes: int
    seconds: float
    output: str

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


class _Counting:
    def __init__(self, raw: Any, tracker: ProgressTracker) -> None:
        self.raw, self.tracker, self.bytes = raw, tracker, 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n)
        self.bytes += len(data)
        self.tracker.add(len(data), 0)
        return data


def load_dump(docker: DockerHost, backend: Backend, backup: StoredBackup, *,
              container: str, tracker: ProgressTracker, settings: Settings,
              source: str | None = None) -> list[Loaded]:
    """Load the dump of ``backup`` (``source``: the one of that container, or that file
    name, when it holds several) into the running ``container``. Raises InvalidInput
    when not exactly one dump is chosen, NotFound/InvalidInput for a missing or stopped
    container, DumpFailed when the loader fails."""
    target = docker.container(container)
    if target is None:
        raise NotFound("container", container, "name a running container of the database "
                       "to load the dump into (docker ps)")
    if target.state != "running":
        raise InvalidInput(f"container {container} is {target.state}: a dump loads into a "
                           "running database", f"start it first (docker start {container})")
    tracker.set_phase("loading dump", bytes_total=backup.logical_bytes or None)
    fmt = format_of(backup)
    wanted = _choose(fmt, backend, backup, settings, source)
    loaded: list[Loaded] = []
    found: list[str] = []
    for name, stream in fmt.read_files(backend, backup, settings, DIRECTORY):
        parsed = parse_file_name(name)
        if parsed is None:
            continue
        found.append(name)
        kind, dumped = parsed
        if (wanted is not None and name != wanted) or \
                (source is not None and source not in (name, dumped)):
            continue
        # the loader runs as the target's volkeeper.dump-user, on its volkeeper.dump-path
        into = source_of(target, kind.name)
        counted = _Counting(stream, tracker)
        r = docker.exec_feed(container, ["sh", "-c", kind.load], counted,  # type: ignore[arg-type]
                             user=into.user, env=into.env)
        if r.exit_code != 0:
            tail = " | ".join(r.output.strip().splitlines()[-3:])[-600:]
            raise DumpFailed(
                f"loading the {kind.name} dump {name} into container {container} failed "
                f"(exit code {r.exit_code})" + (f": {tail}" if tail else ""),
                "check that the container runs the same database engine and is ready "
                "(the end of the loader's output, if any, is in this message)")
        if kind.restart_with is not None:
            _restart(docker, container, kind.restart_with)
        loaded.append(Loaded(container, kind.name, f"{DIRECTORY}/{name}", counted.bytes,
                             r.seconds, r.output[-2000:]))
        break
    if not loaded and found:
        raise InvalidInput(f"backup {backup.id} holds no dump of {source!r}: it holds "
                           f"{', '.join(found)}", "name one of those with --dump-from")
    if not loaded:
        raise InvalidInput(f"backup {backup.id} holds no database dump",
                           "--dump-into needs a backup taken with --dump KIND (or the "
                           "volkeeper.dump label); restore this one into a volume instead")
    return loaded


def _choose(fmt: Format, backend: Backend, backup: StoredBackup, settings: Settings,
            source: str | None) -> str | None:
    """The one dump file to load, decided before anything is loaded; None: the backup
    holds one file (its catalog says so), no need to look. A backup of several dumps is
    listed first (an archive is read once more for that) and must name exactly one."""
    if backup.file_count == 1:
        return None
    names = [n for n, _ in fmt.read_files(backend, backup, settings, DIRECTORY)
             if parse_file_name(n) is not None]
    match = [n for n in names if source is None
             or source in (n, parse_file_name(n)[1])]  # type: ignore[index]
    if len(match) > 1:
        raise InvalidInput(f"backup {backup.id} holds {len(match)} dumps: {', '.join(match)}",
                           "choose one with --dump-from CONTAINER (dump_from)")
    if not match:
        raise InvalidInput(
            f"backup {backup.id} holds no dump" + (f" of {source!r}" if source else "")
            + (f": it holds {', '.join(names)}" if names else ""),
            "name one of those with --dump-from" if names else
            "--dump-into needs a backup taken with --dump KIND (or the volkeeper.dump "
            "label); restore this one into a volume instead")
    return match[0]


def _restart(docker: DockerHost, container: str, command: str) -> None:
    """Stop the server with ``command`` (the exec ends with the container: its exit code
    says nothing), wait for the container to stop, then start it."""
    with contextlib.suppress(VolkeeperError):
        docker.exec_in(container, ["sh", "-c", command], timeout=RESTART_SECONDS)
    deadline = time.monotonic() + RESTART_SECONDS
    while docker.container_state(container) == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    docker.start_container(container)
    while docker.container_state(container) != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
