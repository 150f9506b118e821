"""Task names and queue names: the only thing the API and the workers must agree on."""

TASK_BACKUP = "volkeeper.backup"
TASK_RESTORE = "volkeeper.restore"
TASK_INVENTORY = "volkeeper.inventory"
TASK_VERIFY = "volkeeper.verify"
TASK_VALIDATE = "volkeeper.validate"
TASK_DRILL = "volkeeper.drill"
# operations on stored backups and on a target's repository (common.jobs.operations)
TASK_LABEL = "volkeeper.label"
TASK_FORGET = "volkeeper.forget"
TASK_COPY = "volkeeper.copy"
TASK_PRUNE = "volkeeper.prune"
TASK_STATS = "volkeeper.stats"
TASK_SNAPSHOTS = "volkeeper.snapshots"
TASK_KEYS = "volkeeper.keys"
TASK_UNLOCK = "volkeeper.unlock"

ARCHIVE_FORMATS = ("tar", "tar.gz", "tar.zst")
#: Every backup format: the portable archives and ``repo``, the native repository.
REPO_FORMAT = "repo"
FORMATS = (*ARCHIVE_FORMATS, REPO_FORMAT)


def queue_for(host: str) -> str:
    """The Celery queue consumed only by the workers of ``host``."""
    return f"host.{host}"
