"""What is up: the database, Redis (fleet), the scheduler and each host's worker.

``check`` returns the overall status and each part's: ``ok`` when everything is up;
``degraded`` when a host's worker is down (the API works, jobs for that host wait) or a
scheduler that registered its probe does not answer "ok";
``down`` when the database or Redis cannot be reached (nothing works)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from common.config import Settings
from common.db import Database, hosts
from common.db.clock import now as db_time

#: what the health report says about the scheduler until one exists (policies)
SCHEDULER_STATE = "not running"
_scheduler_probe: list[Callable[[Database], str]] = []


def set_scheduler_probe(probe: Callable[[Database], str]) -> None:
    """How the scheduler reports itself: ``probe(db)`` returns "ok" when a scheduler holds
    its lease (or another word for what is wrong). Until one is set: "not running"."""
    _scheduler_probe[:] = [probe]


def check(db: Database, settings: Settings) -> dict[str, Any]:
    """``{"status": ok|degraded|down, "checks": {database, redis, scheduler},
    "workers": {host: up|down}}``; never raises (a failing part says why, never a
    secret)."""
    checks: dict[str, str] = {}
    workers: dict[str, str] = {}
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
            now = db_time(s)
            after = timedelta(seconds=settings.host_offline_after_seconds)
            for h in hosts.list_hosts(s):
                workers[h.name] = "up" if hosts.is_online(h, after, now) else "down"
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {type(e).__name__}"
    checks["redis"] = _redis(settings.redis_url) if settings.redis_url else "not used"
    checks["scheduler"] = _scheduler(db)
    if any(checks[k] not in ("ok", "not used") for k in ("database", "redis")):
        status = "down"
    elif any(v != "up" for v in workers.values()) or (
            _scheduler_probe and checks["scheduler"] != "ok"):
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "checks": checks, "workers": workers}


def _scheduler(db: Database) -> str:
    if not _scheduler_probe:
        return SCHEDULER_STATE
    try:
        return _scheduler_probe[0](db)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"error: {type(e).__name__}"


def _redis(url: str) -> str:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"error: {type(e).__name__}"
