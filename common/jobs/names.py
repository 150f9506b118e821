"""Task names and queue names: the only thing the API and the workers must agree on."""

TASK_BACKUP = "volkeeper.backup"
TASK_RESTORE = "volkeeper.restore"
TASK_INVENTORY = "volkeeper.inventory"
TASK_VERIFY = "volkeeper.verify"
TASK_VALIDATE = "volkeeper.validate"
TASK_DRILL = "volkeeper.drill"

ARCHIVE_FORMATS = ("tar", "tar.gz", "tar.zst")
#: Every backup format: the portable archives and ``repo``, the native repository.
REPO_FORMAT = "repo"
FORMATS = (*ARCHIVE_FORMATS, REPO_FORMAT)


def queue_for(host: str) -> str:
    """The Celery queue consumed only by the workers of ``host``."""
    return f"host.{host}"
