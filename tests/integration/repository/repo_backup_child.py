"""A repository backup in a process of its own, for tests that kill it (SIGKILL).

    python -m tests.integration.repository.repo_backup_child '<json arguments>'

Arguments: ``target`` (``{"local": "/path"}`` or ``{"s3": {S3Backend keyword arguments}}``),
``passphrase``, ``source``, ``host``, ``volume``, optionally ``index_every``,
``processes`` / ``process_after`` (backup worker processes) and ``kill_at``. Like the
product's engine (``common.engine.repo.backup_volume``) it opens the repository, takes the
newest snapshot of (host, volume) as the parent and backs the directory up; it prints
``started`` once the repository is open and, when done, one JSON line with the snapshot id
and stats.

``kill_at`` makes the process SIGKILL itself at one exact point of the write ordering:
``walk-done`` (every blob queued, the last packs and index not yet written),
``before-snapshot`` (everything but the snapshot written), ``mid-snapshot`` (half of the
snapshot object uploaded), ``after-snapshot`` (the snapshot written, nothing reported).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from typing import Any

from common.repository import ids, open_repository
from common.repository.backup import archiver
from common.repository.backup.archiver import BackupOptions, backup_directory
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, latest_snapshot, save_snapshot
from common.storage.base import Backend
from common.storage.local import LocalBackend
from common.storage.s3 import S3Backend

KILL_POINTS = ("walk-done", "before-snapshot", "mid-snapshot", "after-snapshot")


def backend_for(target: dict[str, Any]) -> Backend:
    """The backend a JSON target description names."""
    if "local" in target:
        return LocalBackend(target["local"])
    return S3Backend(**target["s3"])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kill_at: str) -> None:
    """Patch the archiver so this process kills itself at ``kill_at``."""
    if kill_at == "walk-done":
        close = archiver._Pipeline.close

        def close_then_die(self: archiver._Pipeline) -> None:
            _die()
            close(self)

        archiver._Pipeline.close = close_then_die  # type: ignore[method-assign]
        return

    def save(repo: Repository, snap: Snapshot) -> Snapshot:
        if kill_at == "before-snapshot":
            _die()
        if kill_at == "mid-snapshot":
            snap.id = ids.random_id()
            body = json.dumps(snap.to_dict(), sort_keys=True).encode()
            sealed = repo.cipher.seal(body, ids.aad(b"VKS", snap.id))
            writer = repo.backend.open_writer(ids.snapshot_key(snap.id))
            writer.write(sealed[: len(sealed) // 2])
            _die()
        out = save_snapshot(repo, snap)
        _die()  # after-snapshot
        return out

    archiver.save_snapshot = save  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    args = json.loads(argv[0])
    if args.get("kill_at"):
        _arm(args["kill_at"])
    repo = open_repository(backend_for(args["target"]), args["passphrase"])
    parent = latest_snapshot(repo, args["host"], args["volume"])
    print("started", flush=True)
    snap = backup_directory(repo, args["source"], host=args["host"], volume=args["volume"],
                            parent=parent,
                            options=BackupOptions(
                                index_every=args.get("index_every", 8),
                                processes=args.get("processes"),
                                process_after=args.get("process_after",
                                                       BackupOptions.process_after)))
    print(json.dumps({"snapshot": snap.id.hex(), "stats": asdict(snap.stats)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
