"""What the catalog knows of a dump backup's content: the ``dumps`` it holds (kind,
container, the one database or none, the file — from its backup job's
``common.hooks.dumps.DumpRun`` records), kept on its catalog row (``Backup.dumps``) and on
every copy of it (``backup copy``, ``migrate-target``) — shown with the backup, and
checked before a restore of a dump is queued, so a dump of every database asked into one
named database is refused at once (the worker checks the backup's files again before it
loads anything)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from common.db import Backup


def held(run: dict[str, Any]) -> dict[str, Any]:
    """What a dump holds, from its run's record."""
    return {"kind": run.get("kind"), "container": run.get("container"),
            "database": run.get("database"), "path": run.get("path")}


def held_dumps(runs: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The ``Backup.dumps`` of a backup whose dumps ran as ``runs`` (None: no dump)."""
    out = [held(r) for r in runs or ()]
    return out or None


def check_dump_restore(session: Session, backup: Backup, source: str | None,
                       database: str | None) -> None:
    """Refuse loading ``backup``'s dump (``source`` chosen) into ``database`` when its
    record shows that cannot work; InvalidInput says why and what to do instead."""
    from common.engine.dump_restore import check_database, matches
    from common.hooks.dump_kinds import parse_file_name

    if database is None:
        return
    files = [(name, parsed) for name in (str(d.get("path")).rpartition("/")[2]
                                         for d in backup.dumps or [])
             if (parsed := parse_file_name(name)) is not None]
    chosen = [(n, p) for n, p in files if matches(n, p, source)]
    if len(chosen) == 1:
        check_database(chosen[0][1], chosen[0][0], backup.id, database)
