"""Database dumps as the content of a backup.

A container using the volume with the label ``volkeeper.dump=KIND`` (or a backup asking
``dump=KIND``) makes the backup run the database's own dump inside that container
(``dump_kinds``) and stream its stdout into the backup, never onto the volume: each dump
is one file ``.volkeeper-dumps/<kind>-<container>.<ext>`` of the backup, and those files
are the backup's whole content (the database's files copied while it runs would not be
a consistent backup; a stop-mode or snapshot backup of the volume is the other way).
So a dump backup restores, verifies, copies and drills like any other backup, and
``restore --dump-into CONTAINER`` feeds the file to the matching loader.

``volkeeper.dump-database=NAME[,NAME]`` on the container (or the backup's
``dump_databases``) dumps those databases, each alone into its own file
``<kind>-<container>@<database>.<ext>`` (``dump_kinds``: loadable under another name);
without it PostgreSQL and MySQL dump every database in one stream.

The repository takes the stream as it comes (``DumpSet.streams``: chunked and
deduplicated like a file, like ``restic backup --stdin``); a tar archive needs each
member's size before its data, so ``DumpSet.tar_stream`` spools each dump to a temporary
file on the worker first. A dump that exits non-zero raises ``DumpFailed`` from the end
of its stream, with the end of its stderr: the backup fails and stores nothing.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from common.docker import ContainerRef, DockerHost, VolumeInfo
from common.errors import InvalidInput, VolkeeperError
from common.hooks.dump_kinds import DIRECTORY, DumpKind, database_names, file_name, kind_of

DUMP = "volkeeper.dump"
DUMP_DATABASE = "volkeeper.dump-database"
DUMP_USER = "volkeeper.dump-user"
DUMP_PATH = "volkeeper.dump-path"
SPOOL_MEMORY = 8 << 20


class DumpFailed(VolkeeperError):
    """A dump command failed: the backup stores nothing."""

    code = "dump_failed"


@dataclass(frozen=True)
class DumpSource:
    """One container's dump: what runs where, as whom."""

    container: ContainerRef
    kind: DumpKind
    user: str | None
    env: dict[str, str] = field(default_factory=dict)
    #: the one database dumped (None: all of them)
    database: str | None = None

    @property
    def name(self) -> str:
        return file_name(self.kind, self.container.name, self.database)

    @property
    def command(self) -> str:
        return self.kind.dump if self.database is None else str(self.kind.dump_one)

    @property
    def path(self) -> str:
        return f"{DIRECTORY}/{self.name}"


@dataclass
class DumpRun:
    """A dump that ran: for the job's result."""

    container: str
    kind: str
    path: str
    #: the one database it holds (None: every database of the server)
    database: str | None = None
    bytes: int = 0
    seconds: float = 0.0
    exit_code: int | None = None
    stderr: str = ""

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def source_of(c: ContainerRef, kind_name: str, database: str | None = None,
              path: str | None = None) -> DumpSource:
    """The dump of container ``c`` as ``kind_name`` (its ``dump-user``/``dump-path``;
    ``path``: that file instead), of the one ``database`` when given."""
    kind = kind_of(kind_name)
    env: dict[str, str] = {}
    if database is not None:
        if kind.dump_one is None:
            raise InvalidInput(
                f"container {c.name}: a {kind.name} dump holds the whole server, it cannot "
                f"dump the database {database!r} alone",
                f"leave out {DUMP_DATABASE} (--dump-database); only postgres, mysql and "
                "mariadb dump named databases")
        env["VK_DATABASE"] = database
    if path is not None:
        env["VK_DUMP_PATH"] = path
    elif kind.needs_path:
        path = (c.labels.get(DUMP_PATH) or "").strip()
        if not path:
            raise InvalidInput(f"container {c.name} dumps or loads a {kind.name} database but "
                               f"has no {DUMP_PATH} label naming its file",
                               f"label it with {DUMP_PATH}=/path/to/the/database/file")
        env["VK_DUMP_PATH"] = path
    user = (c.labels.get(DUMP_USER) or "").strip() or kind.user
    return DumpSource(c, kind, user, env, database)


def _labelled_kind(c: ContainerRef) -> str:
    """The kind of the container's ``volkeeper.dump`` label; InvalidInput naming the
    container and its label when it is not one."""
    value = c.labels[DUMP]
    try:
        return kind_of(value).name
    except InvalidInput as e:
        raise InvalidInput(f"container {c.name} is labelled {DUMP}={value.strip()!r}, which is "
                           "not a dump kind", e.hint) from None


def dumps_for(info: VolumeInfo, requested: str | None = None,
              databases: list[str] | None = None, policy: str | None = None
              ) -> list[DumpSource]:
    """The dumps a backup of ``info`` takes: one per container labelled ``volkeeper.dump``
    — or, when the backup asks for ``requested``, the containers labelled with that kind,
    else the one running container using the volume. Each container dumps the
    ``databases`` asked (else those of its ``volkeeper.dump-database`` label) one by one,
    else all at once. ``policy``: the ``databases`` are a policy's, going with its dump of
    that kind — a container's own label wins, and a container dumped as another kind (its
    ``volkeeper.dump`` label) does not get them. Empty: a file backup. Raises InvalidInput
    when a dumping container is not running, the choice is ambiguous or a kind cannot
    dump one database."""
    if databases and not requested and not any(
            (c.labels.get(DUMP) or "").strip() for c in info.containers):
        raise InvalidInput(f"--dump-database (dump_databases) names databases to dump, but "
                           f"no container of volume {info.name!r} is labelled {DUMP}=KIND",
                           "say which database engine with --dump KIND (dump)")
    labelled = [c for c in info.containers if (c.labels.get(DUMP) or "").strip()]
    if requested:
        kind = kind_of(requested).name
        chosen = [c for c in labelled if kind_of(c.labels[DUMP], DUMP).name == kind]
        if not chosen:
            running = [c for c in info.containers if c.state == "running"]
            if len(running) != 1:
                raise InvalidInput(
                    f"a {kind} dump of volume {info.name!r} needs the one running container "
                    f"of its database, and {len(running)} running containers use it",
                    f"label the database's container with {DUMP}={kind}")
            chosen = running
        pairs = [(c, kind) for c in chosen]
    else:
        pairs = [(c, _labelled_kind(c)) for c in labelled]
    out = []
    for c, kind_name in pairs:
        if c.state != "running":
            raise InvalidInput(
                f"container {c.name} should dump its database ({DUMP}={kind_name}) but it is "
                f"{c.state}: a dump runs inside the running server",
                f"start it (docker start {c.name}) and back up again")
        own = database_names([c.labels.get(DUMP_DATABASE) or ""],
                             f"the label {DUMP_DATABASE} of {c.name}")
        if policy is None:
            names: list[str | None] = [*(databases or own)]
        else:
            mine = kind_of(kind_name, DUMP).name == policy
            names = [*(own or (databases if databases and mine else []))]
        out += [source_of(c, kind_name, db) for db in names or [None]]
    return sorted(out, key=lambda s: s.name)


class DumpStream(io.RawIOBase):
    """The stdout of one running dump; at its end, a non-zero exit raises DumpFailed."""

    def __init__(self, docker: DockerHost, source: DumpSource, run: DumpRun) -> None:
        super().__init__()
        self.source = source
        self.run = run
        self.reader = docker.exec_reader(source.container.id, ["sh", "-c", source.command],
                                         user=source.user, env=source.env)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        r = self.run
        try:
            n = self.reader.readinto(buf)
        except OSError as e:
            raise DumpFailed(f"the {r.kind} dump in container {r.container} broke off after "
                             f"{self.reader.bytes} bytes ({e}); nothing was stored",
                             "check that the container and its Docker engine still run, "
                             "then back up again") from e
        if n:
            return n
        r.bytes, r.seconds = self.reader.bytes, self.reader.seconds
        r.exit_code, r.stderr = self.reader.exit_code, self.reader.stderr[-2000:]
        if r.exit_code != 0:
            tail = " | ".join(r.stderr.strip().splitlines()[-3:])[-600:]
            program = self.source.command.rpartition("exec ")[2]
            for name, value in self.source.env.items():  # a command to run by hand
                program = program.replace(f'"${name}"', shlex.quote(value))
            user = f"-u {self.source.user} " if self.source.user else ""
            raise DumpFailed(
                f"the {r.kind} dump in container {r.container} ({program}) exited with "
                f"code {r.exit_code} after {r.bytes} bytes"
                + (f": {tail}" if tail else "") + "; nothing was stored",
                f"run it by hand to see why: docker exec {user}{r.container} {program} "
                "(with the container's credentials), or check the volkeeper.dump label")
        return 0

    def close(self) -> None:
        if not self.closed:
            self.reader.close()
        super().close()


@dataclass
class DumpSet:
    """The dumps of one backup, run one after the other as the backup reads them."""

    docker: DockerHost
    sources: list[DumpSource]
    runs: list[DumpRun] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sources)

    def streams(self) -> Iterator[tuple[str, BinaryIO]]:
        """(file name in ``DIRECTORY``, stdout) of each dump, started when reached."""
        for s in self.sources:
            run = DumpRun(s.container.name, s.kind.name, s.path, s.database)
            self.runs.append(run)
            with contextlib.closing(DumpStream(self.docker, s, run)) as stream:
                yield s.name, stream  # type: ignore[misc]

    @contextlib.contextmanager
    def tar_stream(self) -> Iterator[BinaryIO]:
        """A tar stream of ``DIRECTORY`` with every dump (each spooled first: a tar
        header holds the size)."""
        with contextlib.ExitStack() as stack:
            spooled: list[tuple[str, BinaryIO, int]] = []
            for name, stream in self.streams():
                f = stack.enter_context(tempfile.SpooledTemporaryFile(SPOOL_MEMORY))
                size = 0
                while data := stream.read(1 << 20):
                    f.write(data)
                    size += len(data)
                f.seek(0)
                spooled.append((name, f, size))  # type: ignore[arg-type]
            yield io.BufferedReader(_TarOf(spooled), 1 << 20)

    def as_result(self) -> list[dict[str, Any]]:
        return [r.as_result() for r in self.runs]


class _TarOf(io.RawIOBase):
    """A tar stream of ``DIRECTORY/`` and the given files (name, readable, size)."""

    def __init__(self, files: list[tuple[str, BinaryIO, int]]) -> None:
        super().__init__()
        now = int(time.time())
        d = tarfile.TarInfo(DIRECTORY)
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o700, now
        parts: list[bytes | BinaryIO] = [d.tobuf(tarfile.PAX_FORMAT)]
        for name, f, size in files:
            info = tarfile.TarInfo(f"{DIRECTORY}/{name}")
            info.size, info.mode, info.mtime = size, 0o600, now
            parts += [info.tobuf(tarfile.PAX_FORMAT), f, b"\0" * (-size % 512)]
        parts.append(b"\0" * 1024)
        self._parts = parts
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        while self._parts:
            head = self._parts[0]
            if isinstance(head, bytes):
                n = min(len(view), len(head))
                view[:n] = head[:n]
                if n == len(head):
                    self._parts.pop(0)
                else:
                    self._parts[0] = head[n:]
                return n
            n = head.readinto(view)  # type: ignore[attr-defined]
            if n:
                return int(n)
            self._parts.pop(0)
        return 0
