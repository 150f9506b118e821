"""Task names and queue names: the only thing the API and the workers must agree on.
(The format names live in ``common.formats``; re-exported here for existing importers.)"""

from common.formats import ARCHIVE_FORMATS as ARCHIVE_FORMATS
from common.formats import FORMATS as FORMATS
from common.formats import REPO_FORMAT as REPO_FORMAT

TASK_BACKUP = "volkeeper.backup"
#: the volumes of a group (a Compose project, a named set) in one stop window
TASK_GROUP_BACKUP = "volkeeper.group-backup"
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
TASK_REPAIR = "volkeeper.repair"
TASK_BROWSE = "volkeeper.browse"
# a migration's own steps (common.jobs.migration_steps; the coordinator queues them)
TASK_MIGRATION_STEP = "volkeeper.migration_step"
TASK_MIGRATION_CHECK = "volkeeper.migration_check"
#: the label a migration puts on the volume it creates (a rollback removes only those)
MIGRATION_LABEL = "volkeeper.migration"
TASK_MIGRATE_TARGET = "volkeeper.migrate_target"
#: job kinds run by a task not named ``volkeeper.<kind>``: every migration step
#: (``migration_steps.BODIES``) is one task, the checks and the target migration another
_KIND_TASKS = {"migration-check": TASK_MIGRATION_CHECK, "migrate-target": TASK_MIGRATE_TARGET,
               "cutover": TASK_MIGRATION_STEP}


def task_for_kind(kind: str) -> str:
    """The task that runs a job of ``kind`` (the sweep sends a waiting job's task again)."""
    if kind in _KIND_TASKS:
        return _KIND_TASKS[kind]
    return TASK_MIGRATION_STEP if kind.startswith("migration-") else f"volkeeper.{kind}"



#: Interactive tasks that finish within seconds. They have their own queue and their own
#: job slots on every host, so a host busy with long backups still answers a restore dry
#: run, an inventory refresh or a tag/pin (one small snapshot rewrite) at once.
QUICK_TASKS = frozenset({TASK_VALIDATE, TASK_INVENTORY, TASK_LABEL, TASK_MIGRATION_CHECK,
                         TASK_BROWSE})


def queue_for(host: str, task: str | None = None) -> str:
    """The Celery queue of ``host`` that carries ``task``: ``host.<name>.quick`` for the
    quick tasks, ``host.<name>`` for everything else. Only that host's workers consume them."""
    return f"host.{host}.quick" if task in QUICK_TASKS else f"host.{host}"
