"""What a backup request must pass before its job is recorded, one request or a burst of
them: a known format, the host online (by the database's clock), the volume in its last
inventory, the target registered; then the job row (its volume's lock: 409 when busy).

``queue_backups`` records a burst (a tick of due policy runs) in the caller's transaction:
the same checks and the same audit entries as ``JobService.submit_backup`` one by one
(action ``backup`` by the requester, ``queued`` with the job id or the refusal), but the
job rows and entries of the whole burst are one commit instead of about three each. The
caller sends the task messages after its commit (``JobService.dispatch_queued``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.audit import record_all
from common.config import Settings
from common.db import Job, Volume, catalog, hosts, jobs
from common.db.clock import now as db_time
from common.errors import InvalidInput, NotFound, Unavailable, VolkeeperError
from common.jobs.names import FORMATS


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")


def check_host_online(s: Session, name: str, settings: Settings,
                      now: datetime | None = None) -> None:
    """Unavailable unless ``name``'s worker was seen within the offline window."""
    host = hosts.get_host(s, name)
    offline_after = timedelta(seconds=settings.host_offline_after_seconds)
    if not hosts.is_online(host, offline_after, now):
        raise Unavailable(
            f"host {name!r} is offline (no worker heartbeat since "
            f"{host.last_seen_at.isoformat(timespec='seconds')})",
            f"start its worker: volkeeper worker --host {name}")


def require_target(session: Session, name: str, default: str | None = None) -> None:
    """The target a backup writes to must be registered: say how to register it (in a
    fleet set up by hand there is none yet, not even the default ``local``) and which
    ones are. ``default``: the VOLKEEPER_DEFAULT_TARGET setting; when ``name`` came from
    it the error says so (a typo there is the likely cause)."""
    try:
        catalog.get_target(session, name)
    except NotFound:
        raise missing_target(session, name, default) from None


def missing_target(session: Session, name: str, default: str | None = None) -> NotFound:
    """The one-line error of a target ``name`` that is not registered."""
    names = ", ".join(t.name for t in catalog.list_targets(session)) or "none yet"
    add = (f"volkeeper targets add {name} URL (a file:///path every worker host mounts, "
           "or s3://bucket/prefix)")
    if name == default:
        return NotFound("target", name,
                        f"VOLKEEPER_DEFAULT_TARGET names it, but the registered targets "
                        f"are: {names}; set it to one of them (unset: `local`), name one "
                        f"with --target, or register it: {add}")
    return NotFound("target", name, f"the registered targets are: {names}. Name one of "
                    f"them or register it first: {add}")


def backup_spec(s: Session, settings: Settings, *, volume: str, host: str, target: str,
                fmt: str, requested_by: str | None, stop_containers: bool = False,
                excludes: list[str] | None = None, snapshot: str | None = None,
                dump: str | None = None, dump_databases: list[str] | None = None,
                now: datetime | None = None,
                memo: dict[str, VolkeeperError | None] | None = None,
                policy: str | None = None) -> dict[str, Any]:
    """The ``jobs.create_job`` arguments of a backup that passed every check (raises
    the first refusal). ``memo``: the outcomes of host and target checks already made
    (a burst checks each host and target once). ``policy``: the policy whose options
    these are (labels then come first, ``common.jobs.policy_consistency``)."""
    check_format(fmt)
    _once(memo, f"host/{host}", lambda: check_host_online(s, host, settings, now))
    hosts.get_volume(s, host, volume)
    _once(memo, f"target/{target}",
          lambda: require_target(s, target, settings.default_target))
    return {"kind": "backup", "host": host, "volume": volume, "target": target,
            "params": {"format": fmt, **({"policy": policy} if policy else {}),
                       **({"stop_containers": True} if stop_containers
                                         else {}),
                       **({"excludes": excludes} if excludes else {}),
                       **({"snapshot": snapshot} if snapshot else {}),
                       **({"dump": dump} if dump else {}),
                       **({"dump_databases": dump_databases} if dump_databases else {})},
            "requested_by": requested_by}


def _once(memo: dict[str, VolkeeperError | None] | None, key: str,
          check: Callable[[], None]) -> None:
    if memo is None:
        return check()
    if key not in memo:
        try:
            check()
            memo[key] = None
        except VolkeeperError as e:
            memo[key] = e
    if (refused := memo[key]) is not None:
        raise refused


@dataclass(frozen=True)
class BackupRequest:
    """One backup of a burst, as ``submit_backup``'s keyword arguments."""

    volume: str
    host: str
    target: str
    fmt: str | None
    requested_by: str
    #: how it is made consistent (a policy's options, ``policy_consistency``)
    stop_containers: bool = False
    excludes: tuple[str, ...] = ()
    snapshot: str | None = None
    dump: str | None = None
    dump_databases: tuple[str, ...] = ()
    policy: str | None = None


def queue_backups(s: Session, settings: Settings, requests: list[BackupRequest]
                  ) -> list[Job | VolkeeperError]:
    """Check and record the backups of ``requests`` in ``s`` (not committed here), each
    with its audit entry; returns the job or the refusal of each, in order."""
    now = db_time(s)
    wanted = {r.host for r in requests}
    loaded: list[Volume] = []  # the volumes' rows, read once (held: the session's map is weak)
    for k in range(0, len(requests), 500):
        names = {r.volume for r in requests[k:k + 500]}
        loaded += s.scalars(select(Volume).where(Volume.host.in_(wanted),
                                                 Volume.name.in_(names)))
    out: list[Job | VolkeeperError | None] = []
    specs: list[tuple[int, dict[str, Any]]] = []
    memo: dict[str, VolkeeperError | None] = {}
    for i, r in enumerate(requests):
        try:
            specs.append((i, backup_spec(s, settings, volume=r.volume, host=r.host,
                                         target=r.target,
                                         fmt=r.fmt or settings.default_format,
                                         requested_by=r.requested_by, now=now, memo=memo,
                                         stop_containers=r.stop_containers,
                                         excludes=list(r.excludes), snapshot=r.snapshot,
                                         dump=r.dump, dump_databases=list(r.dump_databases),
                                         policy=r.policy)))
            out.append(None)
        except VolkeeperError as e:
            out.append(e)
    for (i, _), made in zip(specs, jobs.create_jobs(s, [sp for _, sp in specs]),
                            strict=True):
        out[i] = made
    done: list[Job | VolkeeperError] = [x for x in out if x is not None]
    record_all(s, (
        (r.requested_by, "backup", f"{r.host}/{r.volume}",
         _given(r) | {"job_id": x.id} if isinstance(x, Job) else _given(r),
         "queued" if isinstance(x, Job) else f"error: {x.code}: {x.message}")
        for r, x in zip(requests, done, strict=True)))
    return done


def _given(r: BackupRequest) -> dict[str, Any]:
    """A request's audit details, as ``audited`` records ``submit_backup``'s."""
    return {"volume": r.volume, "host": r.host, "target": r.target, "fmt": r.fmt}
