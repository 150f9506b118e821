"""The ``notify_state`` rows: the last observed and the last told state of each watched
(subject, kind). ``observe`` records an observation and says whether a message is due;
``claim`` takes a due message (compare-and-set on the told state, so of several processes
only one sends it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db.clock import now as db_time
from common.db.models import NotifyState

GOOD, BAD = "good", "bad"


class Due(NamedTuple):
    """A change that is to be told: (subject, kind) is now ``state``, last told ``told``."""

    subject: str
    kind: str
    state: str
    told: str | None
    event: dict[str, Any]


def observe(session: Session, subject: str, kind: str, state: str,
            event: dict[str, Any]) -> None:
    """Record that (subject, kind) is ``state`` now, with the event that says so. The first
    observation of a good subject counts as told (nothing to recover from)."""
    row = session.get(NotifyState, (subject, kind), with_for_update=True)
    now = db_time(session)
    if row is None:
        try:
            with session.begin_nested():
                session.add(NotifyState(subject=subject, kind=kind, state=state,
                                        changed_at=now, event=event,
                                        notified_state=GOOD if state == GOOD else None))
                session.flush()
            return
        except sa_exc.IntegrityError:  # another process saw it first: update its row
            row = session.get(NotifyState, (subject, kind), with_for_update=True,
                              populate_existing=True)
            assert row is not None
    if row.state != state:
        row.state, row.changed_at = state, now
    row.event = event


def due(session: Session, min_interval: timedelta, *, subject: str | None = None,
        kind: str | None = None) -> list[Due]:
    """The (subject, kind) whose state differs from the state last told and whose last
    message is older than ``min_interval`` (one pair, or all)."""
    now = db_time(session)
    q = select(NotifyState)
    if subject is not None:
        q = q.where(NotifyState.subject == subject, NotifyState.kind == kind)
    out = []
    for row in session.scalars(q):
        if row.notified_state == row.state:
            continue
        if row.notified_at is not None and now - _aware(row.notified_at) < min_interval:
            continue
        out.append(Due(row.subject, row.kind, row.state, row.notified_state,
                       dict(row.event or {})))
    return out


def claim(session: Session, d: Due) -> bool:
    """Mark ``d`` as told, unless another process did meanwhile. True: this one sends."""
    told = (NotifyState.notified_state.is_(None) if d.told is None
            else NotifyState.notified_state == d.told)
    res = session.execute(
        update(NotifyState)
        .where(NotifyState.subject == d.subject, NotifyState.kind == d.kind,
               NotifyState.state == d.state, told)
        .values(notified_state=d.state, notified_at=db_time(session))
        .execution_options(synchronize_session=False))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def _aware(t: datetime) -> datetime:
    from datetime import UTC

    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
