"""The databases a backup can dump, and how: the dump command (its stdout is the dump)
and the loader (reads a dump on its stdin), each a ``sh -c`` script run inside the
database's own container.

Credentials are read *inside* the container, from its own environment — the variables
the official images take (``POSTGRES_USER``/``POSTGRES_PASSWORD``,
``MYSQL_ROOT_PASSWORD``/``MARIADB_ROOT_PASSWORD``, ``REDIS_PASSWORD``,
``MONGO_INITDB_ROOT_USERNAME``/``…PASSWORD``) — so they never travel in a task's arguments
or a job's record. ``volkeeper.dump-user`` runs the commands as another user;
``volkeeper.dump-path`` names the database file of ``sqlite`` (passed as ``VK_DUMP_PATH``).

PostgreSQL uses ``pg_dumpall --clean --if-exists``: one stream with the roles and every
database (each database is dumped in one repeatable-read snapshot, as ``pg_dump`` does),
in plain SQL — text that deduplicates from one day's dump to the next, where the
compressed custom format (``pg_dump -Fc``) would change throughout; ``psql`` loads it.
Redis streams an RDB with ``redis-cli --rdb -``; its load replaces the RDB file and
restarts the server (``REDIS_REPLACE``, ``restart_with``). MySQL/MariaDB dump with
``--single-transaction`` (one consistent InnoDB snapshot) and load with the client; SQLite
dumps ``.dump`` (one read transaction) and its load replaces the file's content
(``SQLITE_REPLACE``). MongoDB (``mongodump --archive``) is defined the same way but not
exercised by the tests (no MongoDB package in Debian to build a test image from).

**One database** (``volkeeper.dump-database=NAME[,NAME]`` or ``--dump-database``): the
PostgreSQL and MySQL/MariaDB kinds also dump named databases, each alone (``dump_one``,
the name in ``VK_DATABASE``) in a form that loads under any name: ``pg_dump -Fc -Z0``
(the custom format, uncompressed — the backup compresses and deduplicates it — loaded by
``pg_restore``) and ``mysqldump --single-transaction NAME`` (without ``--databases``: no
``CREATE DATABASE``/``USE`` inside). Each is its own file, ``<kind>-<container>@<db>.<ext>``
(a container's name has no ``@``), so the backup itself says which database it holds.
``load_one`` loads such a dump into the database ``VK_DATABASE``: it refuses (exit code
``EXISTS``) when that database exists, unless ``VK_REPLACE=1``. PostgreSQL loads into a
scratch database first (``--single-transaction --exit-on-error``) and only then drops the
old one and renames the new one into place, so a failed load leaves the old database as
it was; MySQL/MariaDB, without a database rename, drop and re-create it before the load
(a failed load drops what it made). SQLite's dump is one database already: its
``load_one`` writes a new file ``VK_DUMP_PATH`` (refused when it exists, unless replacing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from common.errors import InvalidInput

DIRECTORY = ".volkeeper-dumps"
#: the exit code of a ``load_one`` refusing a database that exists
EXISTS = 17
#: the database names volkeeper dumps and creates: PostgreSQL's and MySQL's usual names
#: (no quoting needed in any shell or SQL they pass through)
DATABASE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")

_PG_ENV = ('export PGUSER="${POSTGRES_USER:-postgres}"; '
           'if [ -n "${POSTGRES_PASSWORD:-}" ] && [ -z "${PGPASSWORD:-}" ]; then '
           'export PGPASSWORD="$POSTGRES_PASSWORD"; fi; ')
_MY_PW = ('export MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"; ')
_REDIS_AUTH = ('if [ -n "${REDIS_PASSWORD:-}" ]; then export REDISCLI_AUTH="$REDIS_PASSWORD"; '
               'fi; ')
_MONGO_AUTH = ('set --; if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ]; then set -- '
               '--username "$MONGO_INITDB_ROOT_USERNAME" --password '
               '"$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin; fi; ')


@dataclass(frozen=True)
class DumpKind:
    """One database engine's dump and load."""

    name: str
    #: the dump's file name in the backup: ``<kind>-<container>.<extension>``
    extension: str
    dump: str
    load: str
    #: the user the commands run as unless ``volkeeper.dump-user`` says otherwise
    user: str | None = None
    #: the kind needs ``volkeeper.dump-path`` (the database file)
    needs_path: bool = False
    #: after the load: a command that stops the server (it exits with the container),
    #: which is then started again
    restart_with: str | None = None
    #: dumps the one database ``VK_DATABASE`` (None: the kind dumps only everything)
    dump_one: str | None = None
    #: the extension of a ``dump_one`` dump
    one_extension: str = ""
    #: loads a one-database dump into the new database ``VK_DATABASE`` (see the module doc)
    load_one: str | None = None


#: the loader of an RDB (on stdin): written beside the server's file and renamed over
#: it (refused when the server does not say where that is: a wrong password wrote it as
#: ``/.volkeeper-restore`` in the container's root); then the server is shut down without
#: saving (``restart_with``) and the container started again, which loads it
REDIS_REPLACE = (_REDIS_AUTH +
                 'dir=$(redis-cli CONFIG GET dir | sed -n 2p); '
                 'file=$(redis-cli CONFIG GET dbfilename | sed -n 2p); '
                 'if [ -z "$dir" ] || [ -z "$file" ]; then echo "the server did not say '
                 'where its RDB file is (redis-cli CONFIG GET dir, dbfilename): does a '
                 'Redis server run in this container, and is REDIS_PASSWORD its password?" '
                 '>&2; exit 4; fi; '
                 'aof=$(redis-cli CONFIG GET appendonly | sed -n 2p); '
                 'if [ "$aof" = yes ]; then echo "the server runs with appendonly yes: an '
                 'RDB would not be loaded; turn AOF off to restore a dump" >&2; exit 3; fi; '
                 'cat > "$dir/$file.volkeeper-restore" && '
                 'mv "$dir/$file.volkeeper-restore" "$dir/$file"')

#: ``.dump`` reads in one transaction (a snapshot); it waits for a writer's lock, and a
#: missing file is an error (sqlite3 would dump a new, empty database)
_SQLITE_FILE = ('if [ ! -f "$VK_DUMP_PATH" ]; then echo "no SQLite database file '
                '$VK_DUMP_PATH in this container" >&2; exit 2; fi; ')
SQLITE_DUMP = _SQLITE_FILE + 'exec sqlite3 -bail -cmd ".timeout 30000" "$VK_DUMP_PATH" .dump'
#: the loader builds a new database from the SQL beside the file, then copies it over the
#: file with SQLite's backup API (``.restore``: under the database's lock, so a process
#: that has the file open sees the new content whole); a missing file is created
SQLITE_REPLACE = ('tmp="$VK_DUMP_PATH.volkeeper-restore"; rm -f "$tmp" && '
                  'sqlite3 -bail "$tmp" && '
                  'sqlite3 -bail -cmd ".timeout 30000" "$VK_DUMP_PATH" ".restore \'$tmp\'"; '
                  'rc=$?; rm -f "$tmp"; exit $rc')

_EXISTS_CHECK = f'echo "volkeeper: database $db exists already" >&2; exit {EXISTS}; '
#: pg_dump's custom format, uncompressed: pg_restore loads it under any name
PG_DUMP_ONE = _PG_ENV + 'exec pg_dump -Fc -Z0 -d "$VK_DATABASE"'
PG_LOAD_ONE = (_PG_ENV + 'db="$VK_DATABASE"; tmp="volkeeper_restore_$$"; old=0; '
               'if psql -X -At -d postgres -c "SELECT datname FROM pg_database" '
               '| grep -qxF -- "$db"; then old=1; '
               'if [ "${VK_REPLACE:-}" != 1 ]; then ' + _EXISTS_CHECK + 'fi; fi; '
               'createdb -T template0 -- "$tmp" || exit 1; '
               'if ! pg_restore --exit-on-error --single-transaction -d "$tmp"; then '
               'dropdb -- "$tmp"; exit 1; fi; '
               'if [ $old = 1 ] && ! dropdb --force -- "$db"; then dropdb -- "$tmp"; exit 1; fi; '
               """printf '%s\\n' 'ALTER DATABASE :"tmp" RENAME TO :"db";' | """
               'psql -X -q -v ON_ERROR_STOP=1 -d postgres -v tmp="$tmp" -v db="$db"')


def _my_load_one(client: str) -> str:
    """MySQL/MariaDB: (drop and) create ``VK_DATABASE``, load into it; a failed load drops
    it again."""
    q = f'{client} -uroot -e '
    return (_MY_PW + 'db="$VK_DATABASE"; '
            f'if {client} -uroot -N -B -e "SHOW DATABASES" | grep -qxF -- "$db"; then '
            'if [ "${VK_REPLACE:-}" != 1 ]; then ' + _EXISTS_CHECK + 'fi; '
            f'{q}"DROP DATABASE \\`$db\\`" || exit 1; fi; '
            f'{q}"CREATE DATABASE \\`$db\\`" || exit 1; '
            f'{client} -uroot "$db" && exit 0; '
            f'{q}"DROP DATABASE \\`$db\\`"; exit 1')


def _my_kind(name: str, dump: str, client: str) -> DumpKind:
    """MySQL and MariaDB: the same options, each with its own tools."""
    opts = "--single-transaction --routines --events --triggers"
    return DumpKind(name, "sql", f"{_MY_PW}exec {dump} -uroot --all-databases {opts}",
                    f"{_MY_PW}exec {client} -uroot",
                    dump_one=f'{_MY_PW}exec {dump} -uroot {opts} "$VK_DATABASE"',
                    one_extension="sql", load_one=_my_load_one(client))


#: a new SQLite file: refused when one is there, unless replacing
SQLITE_NEW = ('if [ -e "$VK_DUMP_PATH" ] && [ "${VK_REPLACE:-}" != 1 ]; then '
              'db="$VK_DUMP_PATH"; ' + _EXISTS_CHECK + 'fi; ' + SQLITE_REPLACE)

KINDS: dict[str, DumpKind] = {k.name: k for k in (
    DumpKind("postgres", "sql",
             _PG_ENV + "exec pg_dumpall --clean --if-exists",
             _PG_ENV + "exec psql -X -q -v ON_ERROR_STOP=0 -d postgres", user="postgres",
             dump_one=PG_DUMP_ONE, one_extension="pgdump", load_one=PG_LOAD_ONE),
    _my_kind("mysql", "mysqldump", "mysql"),
    _my_kind("mariadb", "mariadb-dump", "mariadb"),
    DumpKind("redis", "rdb", _REDIS_AUTH + "exec redis-cli --rdb -", REDIS_REPLACE,
             restart_with=_REDIS_AUTH + "exec redis-cli SHUTDOWN NOSAVE"),
    DumpKind("sqlite", "sql", SQLITE_DUMP, SQLITE_REPLACE, needs_path=True,
             load_one=SQLITE_NEW),
    DumpKind("mongodb", "archive", _MONGO_AUTH + 'exec mongodump --archive "$@"',
             _MONGO_AUTH + 'exec mongorestore --archive --drop "$@"'),
)}


#: other names users write for a kind
ALIASES = {"postgresql": "postgres", "pg": "postgres", "mongo": "mongodb"}


def kind_of(name: str, field: str = "dump") -> DumpKind:
    """The dump kind called ``name``; InvalidInput names the known ones."""
    key = (name or "").strip().lower()
    kind = KINDS.get(ALIASES.get(key, key))
    if kind is None:
        raise InvalidInput(f"unknown {field} kind {name!r}",
                           f"use one of {', '.join(sorted(KINDS))}")
    return kind


def database_names(names: Iterable[str], field: str = "database") -> list[str]:
    """Database names as given (a comma list each), checked; InvalidInput names a bad one."""
    out: list[str] = []
    for part in (p.strip() for n in names for p in n.split(",")):
        if not part:
            continue
        if not DATABASE_NAME.match(part):
            raise InvalidInput(f"{field}: {part!r} is not a database name volkeeper takes",
                               "use 1-63 letters, digits, '_', '.' or '-' (not first)")
        if part not in out:
            out.append(part)
    return out


class DumpFile(NamedTuple):
    """What a dump's file name says: its kind, container and database (None: all)."""

    kind: DumpKind
    container: str
    database: str | None = None


def file_name(kind: DumpKind, container: str, database: str | None = None) -> str:
    """The dump's name inside ``DIRECTORY``: ``<kind>-<container>[@<database>].<ext>``."""
    if database is None:
        return f"{kind.name}-{container.lstrip('/')}.{kind.extension}"
    return f"{kind.name}-{container.lstrip('/')}@{database}.{kind.one_extension}"


def parse_file_name(name: str) -> DumpFile | None:
    """What the dump file ``name`` holds; None for another name."""
    kind_name, sep, rest = name.partition("-")
    kind = KINDS.get(kind_name)
    if not sep or kind is None:
        return None
    container, at, database = rest.partition("@")
    ext = kind.one_extension if at else kind.extension
    if not ext or not name.endswith(f".{ext}"):
        return None
    if at:
        database = database[: -len(ext) - 1]
        if not DATABASE_NAME.match(database) or not container:
            return None
        return DumpFile(kind, container, database)
    container = container[: -len(ext) - 1]
    return DumpFile(kind, container) if container else None
