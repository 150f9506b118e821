"""A tiny query layer: plain SQL with ``:name`` parameters, rows back as dicts, run either
on a SQLAlchemy session (the API, workers, the full embedded runtime) or straight on the
embedded SQLite file with the standard library's driver (the embedded read commands:
``volkeeper volumes``, ``backups`` and ``jobs`` start without importing SQLAlchemy, ~0.2 s
and ~20 MiB of every such command).

The SQL is written once for both databases (SQLite and PostgreSQL understand the same
simple ``SELECT``/``UPDATE``); what differs is how values come back — SQLAlchemy's SQLite
storage keeps times as text (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) and JSON as text, while
psycopg returns ``datetime`` and decoded JSON — and ``when``, ``doc`` and ``flag`` read
either form. This module imports neither SQLAlchemy nor pydantic.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Row = dict[str, Any]


class Rows(Protocol):
    """Runs SQL text with named parameters (``:name``)."""

    def all(self, sql: str, **params: Any) -> list[Row]:
        """Every row of a query, each a dict of its columns."""
        ...

    def run(self, sql: str, **params: Any) -> None:
        """A statement without rows (an ``UPDATE``)."""
        ...


class SessionRows:
    """``Rows`` on a SQLAlchemy session (in its transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def all(self, sql: str, **params: Any) -> list[Row]:
        from sqlalchemy import text

        return [dict(r) for r in self.session.execute(text(sql), params).mappings()]

    def run(self, sql: str, **params: Any) -> None:
        from sqlalchemy import text

        self.session.execute(text(sql), params)


class SqliteRows:
    """``Rows`` on the embedded SQLite file with the standard library's driver, with the
    pragmas ``common.db.session`` sets (WAL, foreign keys, a 30 s busy timeout). Times
    given as parameters are written as SQLAlchemy stores them (naive UTC text)."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.row_factory = _dict_row
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000"):
            self.conn.execute(f"PRAGMA {pragma}")

    def all(self, sql: str, **params: Any) -> list[Row]:
        return list(self.conn.execute(sql, _bind(params)))

    def run(self, sql: str, **params: Any) -> None:
        self.conn.execute(sql, _bind(params))

    def transaction(self) -> _Transaction:
        """``with rows.transaction():`` — one write transaction (``BEGIN IMMEDIATE``)."""
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def _bind(params: dict[str, Any]) -> dict[str, Any]:
    return {k: sqlite_time(v) if isinstance(v, datetime) else v for k, v in params.items()}


def sqlite_time(t: datetime) -> str:
    """A time as SQLAlchemy's SQLite storage writes it (naive UTC, microseconds)."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


# --- values as either database returns them ------------------------------------------


def when(value: Any) -> datetime | None:
    """A stored time as an aware UTC ``datetime`` (None stays None)."""
    if value is None:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def doc(value: Any, default: Callable[[], Any] = dict) -> Any:
    """A stored JSON column (None: ``default()``)."""
    if value is None:
        return default()
    return json.loads(value) if isinstance(value, str | bytes) else value


def flag(value: Any) -> bool:
    """A stored boolean (SQLite keeps 0/1)."""
    return bool(value)


def iso(t: datetime | None) -> str | None:
    """A time as the API's JSON writes it (``2026-12-06T14:50:00.123456Z``)."""
    if t is None:
        return None
    text = t.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
