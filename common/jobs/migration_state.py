"""A migration's state on its destination host, beside the catalog: files under
``$VOLKEEPER_HOME/migrations/`` that only the destination host's jobs read and write.

- ``ID.verified.json``, the *record*: what the pre-copy's restore wrote and every later
  sync changed, per file its inode, size, mtime, ctime and chunk digest
  (``common.engine.repo_verify.Seen``) — the verify reads the content only of files whose
  stat moved since;
- ``ID.held``: the id of the snapshot the destination holds exactly (written after a
  clean pre-copy record or apply, taken before each sync, removed by the verify and with
  the destination): an apply skips what did not change since (``sync_volume``'s
  ``held``).
"""

from __future__ import annotations

import json
from pathlib import Path

from common.engine.repo_verify import Seen


def state_file(home: str | Path, migration: str) -> Path:
    """The record of a migration's destination on this host (``home``: the settings')."""
    return Path(home) / "migrations" / f"{migration}.verified.json"


def save_record(path: Path, seen: Seen) -> None:
    """Write the record (atomically: a reader sees the old one or this one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(seen))
    part.replace(path)


#: differences of the root's own metadata (what a sync always sets again)
ROOT_META = tuple(f"/: {what}:" for what in ("mode", "uid", "gid", "mtime_ns", "xattrs"))


def held_path(state: Path) -> Path:
    """Where the id of the snapshot the destination holds is kept, beside its record."""
    return state.with_name(state.name.removesuffix(".verified.json") + ".held")


def hold(state: Path, snapshot_id: str) -> None:
    """Remember that the destination holds exactly the snapshot ``snapshot_id``."""
    if len(snapshot_id) != 64:
        return
    part = held_path(state).with_name(held_path(state).name + ".part")
    part.write_text(snapshot_id)
    part.replace(held_path(state))


def take_held(state: Path) -> str | None:
    """The snapshot the destination holds (None: unknown), forgotten here: the sync about
    to run changes the destination."""
    path = held_path(state)
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    path.unlink(missing_ok=True)
    try:
        return text if len(bytes.fromhex(text)) == 32 else None
    except ValueError:
        return None


def load_record(path: Path) -> Seen:
    """The record; empty when there is none or it cannot be read (every file is read)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # nothing recorded here: every file is read
    return {k: tuple(v) for k, v in raw.items()}
