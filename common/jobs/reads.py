"""The catalog's list views — volumes, backups, jobs — as plain dicts, built once for every
front: the API wraps them in its output models (``common.jobs.views``), the embedded CLI
prints them. Queries go through ``common.db.rows`` (SQL text on a SQLAlchemy session, or
on the embedded SQLite file with the standard library's driver), so this module imports
neither SQLAlchemy nor pydantic. A view holds ``datetime`` values; ``jsonable`` writes
them as the API's JSON does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from common.db.kinds import QUIET_KINDS, known_kind
from common.db.paging import page_limit, page_offset
from common.db.rows import Row, Rows, doc, flag, iso, when
from common.errors import NotFound
from common.label_secrets import redact_labels
from common.policies.rpo import freshness
from common.policies.rules import rpo_of, selection_of
from common.policies.selection import Inventory, VolumeRef, claims, volume_ref

if TYPE_CHECKING:
    from common.progress import ProgressBus

View = dict[str, Any]


def jsonable(data: Any) -> Any:
    """A view (or a list of them) as JSON values, times as the API writes them."""
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, list):
        return [jsonable(v) for v in data]
    if isinstance(data, datetime):
        return iso(data)
    return data


def columns(obj: Any) -> Row:
    """An ORM row's columns as a dict (to build its view from)."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}


# --- one row → its view ------------------------------------------------------------------


def backup_view(b: Mapping[str, Any]) -> View:
    return {"id": b["id"], "job_id": b["job_id"], "host": b["host"], "volume": b["volume"],
            "target": b["target"], "format": b["format"], "key": b["key"],
            "manifest_key": b["manifest_key"], "stored_bytes": b["stored_bytes"],
            "logical_bytes": b["logical_bytes"], "file_count": b["file_count"],
            "checksum": b["checksum"], "created_at": when(b["created_at"]),
            "verified_at": when(b["verified_at"]), "verify_status": b["verify_status"],
            "verify_job_id": b["verify_job_id"], "kind": b["kind"],
            "expires_at": when(b["expires_at"]), "tags": list(doc(b["tags"], list)),
            "pinned": flag(b["pinned"]), "snapshot_id": b["snapshot_id"] or None,
            "group_id": b["group_id"], "dumps": list(doc(b["dumps"], list) or [])}


def job_view(j: Mapping[str, Any], bus: ProgressBus | None) -> View:
    """A job with its live progress merged in while it runs."""
    state = str(j["state"])
    progress = doc(j["progress"])
    if bus is not None and state == "running":
        progress = bus.latest(j["id"]) or progress
    return {"id": j["id"], "kind": j["kind"], "state": state, "host": j["host"],
            "volume": j["volume"], "target": j["target"], "backup_id": j["backup_id"],
            "params": doc(j["params"]), "progress": progress, "result": doc(j["result"]),
            "error": j["error"], "requested_by": j["requested_by"], "worker": j["worker"],
            "cancel_requested_by": j["cancel_requested_by"],
            "created_at": when(j["created_at"]), "started_at": when(j["started_at"]),
            "finished_at": when(j["finished_at"])}


def volume_view(v: Mapping[str, Any], last_backup_at: datetime | None,
                status: Mapping[str, Any] | None = None) -> View:
    """``status``: its policy, RPO and overdue flag (``volume_status``)."""
    items = doc(v["containers"]).get("items", [])
    status = status or {}
    # redacted when stored; again here for rows an older version stored
    return {"host": v["host"], "name": v["name"], "driver": v["driver"],
            "mountpoint": v["mountpoint"], "size_bytes": v["size_bytes"],
            "labels": redact_labels(doc(v["labels"])),
            "containers": [{"id": c["id"], "name": c["name"], "state": c["state"]}
                           for c in items],
            "last_backup_at": last_backup_at, "seen_at": when(v["seen_at"]),
            "policy": status.get("policy"), "policy_conflict": status.get("policy_conflict", []),
            "rpo_seconds": status.get("rpo_seconds"),
            "last_good_backup_at": status.get("last_good_backup_at"),
            "overdue": status.get("overdue")}


# --- reads -------------------------------------------------------------------------------


def list_backups(db: Rows, *, host: str | None = None, volume: str | None = None,
                 target: str | None = None, kind: str | None = "backup",
                 tag: str | None = None, pinned: bool | None = None, limit: int = 200,
                 offset: int = 0, group: str | None = None) -> list[View]:
    """Newest first; ``kind`` None: every kind; ``offset`` rows skipped."""
    limit, offset = page_limit(limit), page_offset(offset)
    where, params = _filters(group_id=group, kind=kind, host=host, volume=volume,
                             target=target, pinned=pinned)
    sql = f"SELECT * FROM backups{where} ORDER BY created_at DESC"
    if tag is None:
        rows = db.all(sql + " LIMIT :limit OFFSET :offset", **params, limit=limit,
                      offset=offset)
        return [backup_view(b) for b in rows]
    # tags are a JSON list: filtered here, portable across SQLite and PostgreSQL
    tagged = [b for b in db.all(sql, **params) if tag in doc(b["tags"], list)]
    return [backup_view(b) for b in tagged[offset:offset + limit]]


def get_backup(db: Rows, backup_id: str) -> View:
    """One backup (of any kind); NotFound names it."""
    rows = db.all("SELECT * FROM backups WHERE id = :id", id=backup_id)
    if not rows:
        raise NotFound("backup", backup_id, "list backups with `volkeeper backups`")
    return backup_view(rows[0])


def list_jobs(db: Rows, bus: ProgressBus | None, *, host: str | None = None,
              volume: str | None = None, state: str | None = None, kind: str | None = None,
              limit: int = 100, offset: int = 0) -> list[View]:
    """Newest first. An unknown ``kind`` is InvalidInput naming the known ones."""
    known_kind(kind)
    limit, offset = page_limit(limit), page_offset(offset)
    where, params = _filters(host=host, volume=volume,
                             state=str(state) if state else None, kind=kind)
    if not kind:  # quick helper jobs only when asked for by kind
        quiet = ", ".join(f"'{k}'" for k in sorted(QUIET_KINDS))
        where += f"{' AND' if where else ' WHERE'} kind NOT IN ({quiet})"
    rows = db.all(f"SELECT * FROM jobs{where} ORDER BY created_at DESC "
                  "LIMIT :limit OFFSET :offset", **params, limit=limit, offset=offset)
    return [job_view(j, bus) for j in rows]


def list_volumes(db: Rows, host: str | None = None, overdue: bool | None = None,
                 name: str | None = None) -> list[View]:
    """The last inventory's volumes (of ``host``; ``name``: that one) with their newest
    backup, policy, RPO and overdue flag (``overdue``: only those whose flag is that; a
    volume without a policy is never overdue)."""
    if host:
        check_host(db, host)
    where, params = _filters(host=host, name=name)
    rows = db.all(f"SELECT * FROM volumes{where} ORDER BY host, name", **params)
    if name and not rows:
        raise NotFound("volume", name, f"no volume of that name on host {host!r} in the last "
                       "inventory; list volumes with `volkeeper volumes`")
    b_where, b_params = _filters(kind="backup", host=host, volume=name)
    last = {(r["host"], r["volume"]): when(r["newest"]) for r in db.all(
        f"SELECT host, volume, MAX(created_at) AS newest FROM backups{b_where}"
        " GROUP BY host, volume", **b_params)}
    status = volume_status(db, [volume_ref(v["host"], v["name"], doc(v["labels"]),
                                           doc(v["containers"])) for v in rows])
    if overdue is not None:
        rows = [v for v in rows if bool(status[(v["host"], v["name"])]["overdue"]) == overdue]
    return [volume_view(v, last.get((v["host"], v["name"])), status.get((v["host"], v["name"])))
            for v in rows]


def check_host(db: Rows, name: str) -> None:
    """NotFound unless ``name`` is a known host."""
    if not db.all("SELECT name FROM hosts WHERE name = :name", name=name):
        raise host_not_found(name)


def host_not_found(name: str) -> NotFound:
    return NotFound(
        "host", name, "list known hosts with `volkeeper hosts`; a host appears once its "
        f"worker runs (`volkeeper worker --host {name}`)")


# --- policies against the inventory ------------------------------------------------------


def newest_good_backups(db: Rows, only: tuple[str, str] | None = None
                        ) -> dict[tuple[str, str], datetime]:
    """(host, volume) → the time of its newest good backup: a regular backup (not a
    safety snapshot) that no verification found damaged (``only``: of that volume)."""
    where, params = _filters(kind="backup", host=only and only[0], volume=only and only[1])
    rows = db.all("SELECT host, volume, MAX(created_at) AS newest FROM backups" + where
                  + " AND (verify_status IS NULL OR verify_status != 'damaged')"
                  " GROUP BY host, volume", **params)
    return {(r["host"], r["volume"]): t for r in rows if (t := when(r["newest"]))}


def volume_status(db: Rows, refs: list[VolumeRef], now: datetime | None = None
                  ) -> dict[tuple[str, str], dict[str, Any]]:
    """(host, volume) → ``policy``, ``policy_conflict``, ``rpo_seconds``,
    ``last_good_backup_at``, ``overdue`` (None where no policy applies)."""
    from datetime import UTC

    now = now or datetime.now(UTC)
    policies = {p["name"]: SimpleNamespace(**(p | {"selection": doc(p["selection"]),
                                                   "created_at": when(p["created_at"])}))
                for p in db.all("SELECT name, selection, schedule, tz, rpo_seconds, "
                                "created_at FROM policies WHERE enabled")}
    claimed = claims({n: selection_of(p) for n, p in policies.items()}, Inventory(refs))
    good = newest_good_backups(db, refs[0].key if len(refs) == 1 else None)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in refs:
        names = claimed.get(ref.key, [])
        newest = good.get(ref.key)
        row: dict[str, Any] = {"policy": None, "policy_conflict": [], "rpo_seconds": None,
                               "last_good_backup_at": newest, "overdue": None}
        if names:
            p = policies[names[0]]
            rpo = rpo_of(p)
            row.update(policy=p.name, policy_conflict=names if len(names) > 1 else [],
                       rpo_seconds=int(rpo.total_seconds()),
                       overdue=freshness(newest, rpo, now, p.created_at).overdue)
        out[ref.key] = row
    return out


def _filters(**equal: Any) -> tuple[str, dict[str, Any]]:
    """`` WHERE a = :a AND …`` for the arguments that are not None, and their values."""
    given = {k: v for k, v in equal.items() if v is not None}
    if not given:
        return "", {}
    return " WHERE " + " AND ".join(f"{k} = :{k}" for k in given), given

