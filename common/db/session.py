"""Engine and session factory, created explicitly (never at import time)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from common.errors import InvalidInput


class Database:
    """One engine plus a session factory for a database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        # a server's connections can go stale (restarted, timed out): each checkout pings
        # first; a SQLite file's never do (no ping: a query less per session)
        kwargs: dict[str, object] = {"pool_pre_ping": not url.startswith("sqlite")}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                _private_file(Path(path))
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except ArgumentError as e:  # not a URL, or a driver that is not installed
            raise InvalidInput(
                f"the database URL {_hide_password(url)} cannot be used: {e}",
                "set VOLKEEPER_DATABASE_URL to postgresql+psycopg2://USER:PASSWORD@HOST/DB "
                "(the fleet), or unset it (embedded: SQLite under VOLKEEPER_HOME)") from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _private_file(path: Path) -> None:
    """Create the SQLite file (and its directory) readable by its owner only: it holds the
    job history, audit log and sealed credentials. An existing file keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
