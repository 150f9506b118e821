"""Job kinds the catalog's lists treat apart (no SQLAlchemy import: the embedded read
commands use it through ``common.jobs.reads``)."""

from collections.abc import Collection

from common.errors import InvalidInput

#: kinds of quick helper jobs that job lists leave out unless asked for by kind: they
#: would bury the history — a backup's directory listed for the console's tree, and a
#: migration's probes (its checks on both hosts, "does the destination exist" before a
#: rollback), whose outcomes the migration's own record keeps
QUIET_KINDS = frozenset({"browse", "migration-check", "migration-exists"})

#: the kind of a job on several volumes of a host (``common.jobs.groups``): its lock is
#: its own, its volumes are ``params["volumes"]``
GROUP_KIND = "group-backup"

#: every job kind there is (what ``?kind=`` / ``--kind`` may name)
JOB_KINDS = frozenset({
    "backup", GROUP_KIND, "restore", "verify", "validate", "drill", "label", "forget",
    "copy", "browse", "migrate-target", "prune", "repair", "unlock", "keys", "stats",
    "snapshots", "cutover", "migration-capture", "migration-catchup", "migration-check",
    "migration-exists", "migration-recreate", "migration-remove", "migration-retire",
    "migration-start", "migration-sync", "migration-verify"})

#: the ``kind`` filter of backup lists: a backup, a replace-restore's safety snapshot, both
BACKUP_KINDS = ("backup", "safety", "all")


def known_kind(kind: str | None, known: Collection[str] = JOB_KINDS,
               what: str = "job kind") -> str | None:
    """``kind`` when it is one of ``known`` (or None); else InvalidInput naming them."""
    if kind is not None and kind not in known:
        raise InvalidInput(f"unknown {what} {kind!r}",
                           f"known: {', '.join(sorted(known))}")
    return kind
