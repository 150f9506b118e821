"""Restore of a dump backup into a running database: its dump (``.volkeeper-dumps/``,
``common.hooks.dumps``) is streamed out of the stored backup straight into the matching
loader inside the container the user chose (``psql`` for PostgreSQL, ``mysql``,
``mongorestore``, … from ``dump_kinds``), with the credentials of that container's own
environment. Redis's loader replaces the server's RDB file and shuts it down without
saving; the container is then started again, which loads it.

``database`` loads a one-database dump (``volkeeper.dump-database``) into a new database
of that name (default: the name it was dumped from) — refused when it exists, unless
``replace_database`` (``dump_kinds``: PostgreSQL swaps the old one out only after the
load succeeded); for SQLite it is a new file's path in the container. A dump of every
database (``pg_dumpall``, ``mysqldump --all-databases``) is refused for either before
anything is loaded: it loads only as a whole.

The loader's exit code decides: non-zero fails the restore with the end of its output.
Messages a loader prints while succeeding (``psql`` reporting that a role it re-creates
exists already) are kept, bounded, in the result.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from common.config import Settings
from common.docker import ContainerRef, DockerHost
from common.engine.formats import Format, format_of
from common.engine.records import StoredBackup
from common.errors import Conflict, InvalidInput, NotFound, VolkeeperError
from common.hooks.dump_kinds import DIRECTORY, EXISTS, DumpFile, parse_file_name
from common.hooks.dumps import DUMP_DATABASE, DumpFailed, source_of
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
    #: the database (SQLite: the file) it was loaded into; None: as the dump says
    database: str | None = None
    #: errors a loader that goes on after one (``psql`` of a whole PostgreSQL dump)
    #: reported besides the expected ones, from the end of its output (``load_errors``)
    errors: list[str] = field(default_factory=list)

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
              source: str | None = None, database: str | None = None,
              replace_database: bool = False) -> list[Loaded]:
    """Load the dump of ``backup`` (``source``: the one of that container, or that file
    name, when it holds several) into the running ``container`` (into ``database``,
    see the module doc). Raises InvalidInput when not exactly one dump is chosen or it
    cannot go into ``database``, NotFound/InvalidInput for a missing or stopped
    container, Conflict when the database exists and is not to be replaced, DumpFailed
    when the loader fails."""
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
        kind = parsed.kind
        if (wanted is not None and name != wanted) or not matches(name, parsed, source):
            continue
        command, env, user, into_db = _loader(target, parsed, name, backup.id, database,
                                              replace_database)
        counted = _Counting(stream, tracker)
        r = docker.exec_feed(container, ["sh", "-c", command], counted,  # type: ignore[arg-type]
                             user=user, env=env)
        if r.exit_code == EXISTS and into_db is not None:
            raise Conflict(f"the database {into_db!r} exists already in container "
                           f"{container}: nothing was loaded",
                           "name a new one with --database NAME (database), or add "
                           "--replace-database (replace_database) to replace it")
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
                             r.seconds, r.output[-2000:], into_db,
                             load_errors(kind.name, r.output)))
        break
    if not loaded and found:
        raise InvalidInput(f"backup {backup.id} holds no dump of {source!r}: it holds "
                           f"{', '.join(found)}", "name one of those with --dump-from")
    if not loaded:
        raise InvalidInput(f"backup {backup.id} holds no database dump",
                           "--dump-into needs a backup taken with --dump KIND (or the "
                           "volkeeper.dump label); restore this one into a volume instead")
    return loaded


def load_errors(kind: str, output: str) -> list[str]:
    """The ``ERROR:`` lines of a PostgreSQL whole-dump load's output (``psql`` goes on
    after an error) but those about its own role (``EXPECTED_ERRORS``: ``role … already
    exists``); [] for the other kinds, whose loaders stop at the first error."""
    if kind != "postgres":
        return []
    return [line.strip() for line in output.splitlines() if "ERROR:" in line and not (
        "current user cannot be dropped" in line
        or ("role " in line and "already exists" in line))][-10:]


def matches(name: str, dump: DumpFile, source: str | None) -> bool:
    """Whether ``--dump-from source`` names the dump file ``name``: that file name, its
    container, its database, or ``container@database``."""
    return source is None or source in (
        name, dump.container,
        *((dump.database, f"{dump.container}@{dump.database}") if dump.database else ()))


def _loader(target: ContainerRef, dump: DumpFile, name: str, backup_id: str,
            database: str | None, replace: bool
            ) -> tuple[str, dict[str, str], str | None, str | None]:
    """(script, environment, user, database) that loads the dump file ``name`` into
    ``target``: as the target's ``volkeeper.dump-user``, on its ``volkeeper.dump-path``
    (or the file ``database`` of SQLite). InvalidInput when the dump cannot go into
    ``database`` or be replaced as asked."""
    kind = dump.kind
    flag = {"VK_REPLACE": "1"} if replace else {}
    if dump.database is not None:  # one database: into it, or the one named
        into_db = database or dump.database
        src = source_of(target, kind.name)
        return (str(kind.load_one), src.env | {"VK_DATABASE": into_db} | flag, src.user,
                into_db)
    if database is None:  # the whole dump, as it was made
        src = source_of(target, kind.name)
        return kind.load, src.env, src.user, None
    check_database(dump, name, backup_id, database)
    src = source_of(target, kind.name, path=database)
    return str(kind.load_one), src.env | flag, src.user, database


def check_database(dump: DumpFile, name: str, backup_id: str, database: str | None
                   ) -> None:
    """InvalidInput when the dump file ``name`` of ``dump`` cannot be loaded into
    ``database`` (a dump of every database, of a whole server, a SQLite dump and a name
    that is not a path)."""
    kind = dump.kind
    if database is None:
        return
    if dump.database is not None:
        if database.startswith("/"):
            raise InvalidInput(f"--database (database) {database!r} is a file path; the "
                               f"{kind.name} dump {name} loads into a database",
                               "name the new database, e.g. --database shop_copy")
        return
    if kind.dump_one is not None:
        raise InvalidInput(
            f"backup {backup_id} holds every database of container {dump.container} in one "
            f"{kind.name} dump ({name}): it loads only as a whole, not into the database "
            f"{database!r}",
            "restore it without --database (it replaces those databases), or back the "
            f"databases up one by one: label the container {DUMP_DATABASE}=NAME[,NAME] or "
            "back up with --dump-database NAME")
    if kind.load_one is None:
        raise InvalidInput(f"a {kind.name} dump holds the whole server: it has no database "
                           f"to load into {database!r}",
                           "restore it without --database and --replace-database")
    if not database.startswith("/"):
        raise InvalidInput(f"a {kind.name} dump loads into a file: --database (database) "
                           f"{database!r} is not an absolute path in the container",
                           "name the new database file, e.g. --database /data/copy.db")


def _choose(fmt: Format, backend: Backend, backup: StoredBackup, settings: Settings,
            source: str | None) -> str | None:
    """The one dump file to load, decided before anything is loaded; None: the backup
    holds one file (its catalog says so), no need to look. A backup of several dumps is
    listed first (an archive is read once more for that) and must name exactly one."""
    if backup.file_count == 1:
        return None
    names = [n for n, _ in fmt.read_files(backend, backup, settings, DIRECTORY)
             if parse_file_name(n) is not None]
    match = [n for n in names
             if matches(n, parse_file_name(n), source)]  # type: ignore[arg-type]
    if len(match) > 1:
        raise InvalidInput(f"backup {backup.id} holds {len(match)} dumps: {', '.join(match)}",
                           "choose one with --dump-from CONTAINER, DATABASE or "
                           "CONTAINER@DATABASE (dump_from)")
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
