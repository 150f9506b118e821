"""Leases with fencing: one holder of a name at a time (the policy scheduler).

``acquire`` takes the lease when it is free or expired (a new, higher ``token``) or renews
it for its holder (same token); both are one conditional UPDATE, atomic in SQLite and
PostgreSQL. Work done under a lease checks ``holds`` in its own transaction — or joins
``held`` into its UPDATE — so a holder that lost the lease (paused, partitioned, its
lease taken over after expiry) cannot act on a stale belief: that is the fence.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from common.db.models import Lease
from common.db.session import Database


def acquire(db: Database, name: str, holder: str, ttl: timedelta, now: datetime) -> int | None:
    """The lease's token when ``holder`` holds ``name`` until ``now + ttl`` after this
    call, else None (another holder's lease has not expired)."""
    with db.session() as s:
        if s.get(Lease, name) is None:
            try:
                with s.begin_nested():
                    s.add(Lease(name=name, holder=None, token=0, expires_at=None))
            except IntegrityError:
                pass  # created by a competitor meanwhile
    with db.session() as s:
        renewed = s.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder,
                                Lease.expires_at > now)
            .values(expires_at=now + ttl))
        if renewed.rowcount == 1:  # type: ignore[attr-defined]
            return int(s.scalar(select(Lease.token).where(Lease.name == name)) or 0)
        taken = s.execute(
            update(Lease).where(Lease.name == name,
                                or_(Lease.expires_at.is_(None), Lease.expires_at <= now))
            .values(holder=holder, token=Lease.token + 1, expires_at=now + ttl))
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return int(s.scalar(select(Lease.token).where(Lease.name == name)) or 0)


def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up now (a standby takes it at its next try)."""
    with db.session() as s:
        s.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                  .values(expires_at=None))


def held(name: str, holder: str, token: int, now: datetime) -> ColumnElement[bool]:
    """A condition true while ``holder`` holds ``name`` with ``token`` (to join into the
    WHERE of the fenced UPDATE)."""
    return exists().where(and_(Lease.name == name, Lease.holder == holder,
                               Lease.token == token, Lease.expires_at > now))


def is_held(lease: Lease | None, now: datetime) -> bool:
    """Whether someone holds ``lease`` at ``now``."""
    return bool(lease is not None and lease.holder and lease.expires_at is not None
                and lease.expires_at > now)
