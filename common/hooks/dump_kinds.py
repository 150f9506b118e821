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
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import InvalidInput

DIRECTORY = ".volkeeper-dumps"

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


#: the loader of an RDB (on stdin): written beside the server's file and renamed over
#: it; then the server is shut down without saving (``restart_with``) and the container
#: started again, which loads it
REDIS_REPLACE = (_REDIS_AUTH +
                 'dir=$(redis-cli CONFIG GET dir | sed -n 2p); '
                 'file=$(redis-cli CONFIG GET dbfilename | sed -n 2p); '
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

KINDS: dict[str, DumpKind] = {k.name: k for k in (
    DumpKind("postgres", "sql",
             _PG_ENV + "exec pg_dumpall --clean --if-exists",
             _PG_ENV + "exec psql -X -q -v ON_ERROR_STOP=0 -d postgres", user="postgres"),
    DumpKind("mysql", "sql",
             _MY_PW + "exec mysqldump -uroot --all-databases --single-transaction --routines "
             "--events --triggers",
             _MY_PW + "exec mysql -uroot"),
    DumpKind("mariadb", "sql",
             _MY_PW + "exec mariadb-dump -uroot --all-databases --single-transaction "
             "--routines --events --triggers",
             _MY_PW + "exec mariadb -uroot"),
    DumpKind("redis", "rdb", _REDIS_AUTH + "exec redis-cli --rdb -", REDIS_REPLACE,
             restart_with=_REDIS_AUTH + "exec redis-cli SHUTDOWN NOSAVE"),
    DumpKind("sqlite", "sql", SQLITE_DUMP, SQLITE_REPLACE, needs_path=True),
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


def file_name(kind: DumpKind, container: str) -> str:
    """The dump's name inside ``DIRECTORY``."""
    return f"{kind.name}-{container.lstrip('/')}.{kind.extension}"


def parse_file_name(name: str) -> tuple[DumpKind, str] | None:
    """(kind, container) of a dump's file name; None for another name."""
    head, _, _ext = name.rpartition(".")
    kind, sep, container = head.partition("-")
    if not sep or kind not in KINDS or not container:
        return None
    return KINDS[kind], container
