"""What the catalog knows of a dump backup's content: the ``dumps`` its backup job
recorded (``common.hooks.dumps.DumpRun``: kind, container, the one database or none,
the file) — shown with the backup, and checked before a restore of a dump is queued, so
a dump of every database asked into one named database is refused at once (the worker
checks the backup's files again before it loads anything)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import Backup
from common.db.models import Job


def recorded_dumps(session: Session, job_ids: Iterable[str | None]
                   ) -> dict[str, list[dict[str, Any]]]:
    """The dumps each of these backup jobs recorded (jobs without dumps left out)."""
    ids = sorted({i for i in job_ids if i})
    if not ids:
        return {}
    rows = session.execute(select(Job.id, Job.result["dumps"])
                           .where(Job.id.in_(ids), Job.kind == "backup"))
    return {i: [held(d) for d in dumps] for i, dumps in rows if dumps}


def held(run: dict[str, Any]) -> dict[str, Any]:
    """What a dump holds, from its run's record."""
    return {"kind": run.get("kind"), "container": run.get("container"),
            "database": run.get("database"), "path": run.get("path")}


def check_dump_restore(session: Session, backup: Backup, source: str | None,
                       database: str | None) -> None:
    """Refuse loading ``backup``'s dump (``source`` chosen) into ``database`` when its
    record shows that cannot work; InvalidInput says why and what to do instead."""
    from common.engine.dump_restore import check_database, matches
    from common.hooks.dump_kinds import parse_file_name

    if database is None:
        return
    recorded = recorded_dumps(session, [backup.job_id]).get(backup.job_id or "", [])
    files = [(name, parsed) for name in (str(d["path"]).rpartition("/")[2] for d in recorded)
             if (parsed := parse_file_name(name)) is not None]
    chosen = [(n, p) for n, p in files if matches(n, p, source)]
    if len(chosen) == 1:
        check_database(chosen[0][1], chosen[0][0], backup.id, database)
