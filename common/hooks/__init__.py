"""Around a backup (and a replace-restore): what makes the copy of a live application's
volume consistent.

Concepts:

* **Stop window** (``stopping``) — the running containers that use the volume are stopped
  for the backup when the volume or one of those containers has the label
  ``volkeeper.stop-during-backup=true`` or the request asks (``stop_containers``), and are
  *always* started again: in a ``finally`` when the backup fails, and by the host's
  recovery after a killed worker — the caller records what it is about to stop
  (``on_stopping``) *before* stopping it. Compose containers stop dependents first (their
  ``com.docker.compose.depends_on`` label) and start in reverse. How long each container
  was down is part of the job's result.
* **Exec hooks** (``exec_hooks``) — commands run inside a running container that uses the
  volume, before and after the backup (``volkeeper.pre-backup`` / ``post-backup``, and
  ``pre-restore`` / ``post-restore``), with ``volkeeper.hook-timeout`` (seconds, 300),
  ``volkeeper.hook-user`` and ``volkeeper.hook-on-error`` (``fail`` or ``warn``; pre
  hooks fail by default, post hooks warn). A hook past its timeout is killed. Post hooks
  run even when the backup failed. The end of each hook's output is kept.
* **Excludes** (``excludes``) — glob patterns (``common.archive.excludes``) from the
  volume's ``volkeeper.exclude`` label, the request and a ``.volkeeperignore`` file at the
  volume root; both formats apply them, and the backup's result lists them.
* **Filesystem snapshots** (``snapshots``, ``snapshot_source``) — instead of a stop, the
  backup reads a read-only btrfs/ZFS/LVM snapshot of the filesystem holding the volume's
  data (``--snapshot``, label ``volkeeper.snapshot``), recorded by the caller
  (``on_recorded``) before it is taken and always dropped again; the host's recovery drops
  one a killed worker left.
* **Dumps** (``dumps``, ``dump_kinds``) — ``volkeeper.dump=KIND`` on a container (or the
  request's ``dump``) makes the backup's content the database's own dump, run inside
  that container and streamed into the backup (``.volkeeper-dumps/<kind>-<name>.<ext>``),
  never onto the volume; its loader restores it into a running container.
* **The order** (``around.consistent``): pre hooks → stop → the backup (or restore) →
  start → post hooks; ``HooksReport`` is what happened. ``common.engine.backup`` wraps
  the format's backup in it.

Labels and their parsing are in ``labels``. Nothing here knows about jobs or the database:
the caller passes callbacks that record what must survive a crash.
"""

from common.hooks.around import (
    HooksReport,
    consistent,
    label_notes,
    should_stop,
    unhooked_notes,
)
from common.hooks.excludes import excludes_for, read_ignore_file
from common.hooks.exec_hooks import HookFailed, HookRun, run_hooks
from common.hooks.stopping import StopWindow, start_again, stop_order

__all__ = ["HookFailed", "HookRun", "HooksReport", "StopWindow", "consistent",
           "excludes_for", "label_notes", "read_ignore_file", "run_hooks", "should_stop",
           "start_again", "stop_order", "unhooked_notes"]
