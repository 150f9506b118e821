"""The audit log: one row per state-changing request — who (``actor``), what (``action``),
on what (``object``), with which parameters (``details``, never a secret) and how it ended
(``outcome``: ``ok``, ``queued``, ``denied`` or ``error: …``). The time is the database's.

The services record it (``audited`` wraps their methods), so every front — the API, the
embedded CLI calling services directly, the scheduler — leaves the same trail.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from common.db import AuditEntry, Database, Job
from common.errors import VolkeeperError

log = logging.getLogger(__name__)
#: who the audit log and the jobs name for the embedded CLI (it holds no token)
LOCAL_ACTOR = "cli:local-user"
P = ParamSpec("P")
R = TypeVar("R")
#: keyword arguments never written to the log
SECRET_KEYS = frozenset({"secrets", "credentials", "new_password", "password", "token"})


def _values(actor: str, action: str, obj: str, details: dict[str, Any], outcome: str
            ) -> dict[str, Any]:
    from common.storage.registry import redact

    clean = {k: redact(v) if k == "url" and isinstance(v, str) else _plain(v)
             for k, v in details.items() if k not in SECRET_KEYS}
    return {"actor": actor[:200], "action": action[:100], "object": obj[:500],
            "details": clean, "outcome": outcome[:500]}


def _entry(actor: str, action: str, obj: str, details: dict[str, Any], outcome: str
           ) -> AuditEntry:
    return AuditEntry(**_values(actor, action, obj, details, outcome))


def record(db: Database, actor: str, action: str, obj: str, details: dict[str, Any],
           outcome: str) -> None:
    """Append one entry. A failure to write it is logged, never hides the request's own
    outcome."""
    try:
        with db.session() as s:
            s.add(_entry(actor, action, obj, details, outcome))
    except Exception as e:  # noqa: BLE001 - the audit must not turn a success into an error
        log.error("could not write the audit log (%s %s by %s): %s", action, obj, actor, e)


def record_beside(session: Session, actor: str, action: str, obj: str,
                  details: dict[str, Any], outcome: str, *, same: bool = False) -> None:
    """Append one entry for work done in ``session``: ``same`` — a success — in its own
    transaction (committed with the change), else in a transaction of its own (the
    session's is rolled back with the refused change)."""
    if same:
        session.add(_entry(actor, action, obj, details, outcome))
        return
    try:
        with Session(session.get_bind()) as s, s.begin():
            s.add(_entry(actor, action, obj, details, outcome))
    except Exception as e:  # noqa: BLE001 - the audit must not hide the request's outcome
        log.error("could not write the audit log (%s %s by %s): %s", action, obj, actor, e)


def record_all(session: Session,
               entries: Iterable[tuple[str, str, str, dict[str, Any], str]]) -> None:
    """Append many entries (each ``actor, action, object, details, outcome``) for work
    done in ``session``, committed with it, in one INSERT: a burst's entries."""
    rows = [_values(*e) for e in entries]
    if rows:
        session.connection().execute(insert(AuditEntry), rows)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k not in SECRET_KEYS}
    return str(value)


def outcome_of(result: Any) -> tuple[str, dict[str, Any]]:
    """``queued`` with the job id for a job, else ``ok``."""
    jobs = [r for r in (result if isinstance(result, tuple) else (result,))
            if isinstance(r, Job)]
    if jobs:
        return "queued", {"job_id": jobs[0].id}
    return "ok", {}


def audited(action: str | Callable[[dict[str, Any]], str],
            obj: Callable[[dict[str, Any]], str]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record every call of a service method (keyword arguments only, ``self.db`` the
    database): ``requested_by`` (default ``cli:local-user``) is the actor, and it is passed
    on, so the job records it too. Refusals are recorded with their error."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            kwargs["requested_by"] = actor = str(kwargs.get("requested_by") or LOCAL_ACTOR)
            db: Database = args[0].db  # type: ignore[attr-defined]
            given = signature.bind_partial(*args, **kwargs).arguments
            given = {k: v for k, v in given.items() if k not in ("self", "requested_by")}
            name = action(given) if callable(action) else action
            try:
                result = fn(*args, **kwargs)
            except VolkeeperError as e:
                record(db, actor, name, obj(given), given, f"error: {e.code}: {e.message}")
                raise
            outcome, extra = outcome_of(result)
            record(db, actor, name, obj(given), given | extra, outcome)
            return result

        return inner

    return wrap


def list_entries(db: Database, *, actor: str | None = None, action: str | None = None,
                 since: datetime | None = None, limit: int = 200, offset: int = 0
                 ) -> list[dict[str, Any]]:
    """Entries, newest first; ``action`` matches a prefix (``target.`` → every target one).
    ``limit`` (1 to 1000; below 1 is InvalidInput, as for every list) after ``offset``."""
    from common.db.paging import page_limit, page_offset

    q = (select(AuditEntry).order_by(AuditEntry.id.desc())
         .limit(page_limit(limit)).offset(page_offset(offset)))
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(AuditEntry.action.startswith(action, autoescape=True))
    if since is not None:  # compared in UTC (SQLite compares the stored text)
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        q = q.where(AuditEntry.at >= since.replace(tzinfo=None))
    with db.session() as s:
        return [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
                 "object": e.object, "details": e.details, "outcome": e.outcome}
                for e in s.scalars(q)]
