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

Both vouch for file content without reading it, yet nobody waits for the destination's
writeback before writing them (``migration_steps.record_restored`` only starts it): while
the host stays up the page cache is what a reader sees, but a crash before the writeback
could leave a file with its recorded stat and without its data. So each file carries the
kernel's boot id (``boot_id``) and counts only under the same one: after a reboot there is
nothing recorded and nothing held (every file read, a full walk). A file without a boot id
(written before it was kept) counts as nothing either. Where the boot id cannot be read,
both files are written with none and trusted where it cannot be read either — and
``record_restored`` waits for the writeback, as before.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from common.engine.repo_verify import Seen

#: the kernel's id of this boot (a new random UUID each boot; the host's, in a container)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """This boot's id; None when it cannot be read (not Linux, no /proc)."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def state_file(home: str | Path, migration: str) -> Path:
    """The record of a migration's destination on this host (``home``: the settings')."""
    return Path(home) / "migrations" / f"{migration}.verified.json"


#: the record this process wrote last (``save_record``), with its file's identity then
#: (path, inode, size, mtime) and the boot id it was written with: the next sync of the
#: migration on this worker — the cut-over's apply, inside the downtime — takes a copy
#: of it instead of parsing ~25,000 entries of JSON again (``load_record``). A file
#: written since by anyone else (a new inode: every write replaces it) or removed is
#: read as before. Records of at most ``CACHED_MAX`` files; one at a time.
_cached: tuple[tuple[str, int, int, int, str | None], Seen] | None = None
_cached_lock = threading.Lock()
CACHED_MAX = 200_000


def _identity(path: Path) -> tuple[str, int, int, int, str | None] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns, boot_id())


def _cache(key: tuple[str, int, int, int, str | None] | None, seen: Seen | None) -> None:
    global _cached
    with _cached_lock:
        _cached = (key, dict(seen)) if key is not None and seen is not None \
            and len(seen) <= CACHED_MAX else None


def save_record(path: Path, seen: Seen) -> None:
    """Write the record (atomically: a reader sees the old one or this one), valid until
    the next boot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps({"boot_id": boot_id(), "seen": seen}))
    part.replace(path)
    _cache(_identity(path), seen)


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
    part.write_text(json.dumps({"boot_id": boot_id(), "snapshot": snapshot_id}))
    part.replace(held_path(state))


def take_held(state: Path) -> str | None:
    """The snapshot the destination holds (None: unknown, or held before a reboot),
    forgotten here: the sync about to run changes the destination."""
    path = held_path(state)
    try:
        raw = json.loads(path.read_text())
    except OSError:
        return None
    except ValueError:
        raw = None
    path.unlink(missing_ok=True)
    text = _this_boot(raw, "snapshot")
    if not isinstance(text, str):
        return None
    try:
        return text if len(bytes.fromhex(text)) == 32 else None
    except ValueError:
        return None


def load_record(path: Path) -> Seen:
    """The record; empty when there is none, it cannot be read or it was written before
    the last reboot (every file is read). The one this process saved last, while its file
    is still the one it wrote, is a copy of what it saved (``_cached``: no process
    outlives a boot; its boot id is compared all the same)."""
    key = _identity(path)
    with _cached_lock:
        hit = _cached
    if key is not None and hit is not None and hit[0] == key:
        return dict(hit[1])
    try:
        seen = _this_boot(json.loads(path.read_text()), "seen")
    except (OSError, ValueError):
        return {}  # nothing recorded here: every file is read
    if not isinstance(seen, dict):
        return {}
    try:
        return {str(k): tuple(v) for k, v in seen.items()}
    except TypeError:
        return {}


def _this_boot(raw: object, key: str) -> object:
    """``raw[key]`` when ``raw`` was written in this boot (``boot_id``), else None."""
    if not isinstance(raw, dict) or "boot_id" not in raw or raw["boot_id"] != boot_id():
        return None
    return raw.get(key)


def forget(state: Path) -> None:
    """Remove the record ``state``, its held snapshot and what a write of either left half
    done (``.part``): the migration's destination is verified or removed."""
    for path in (state, held_path(state)):
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".part").unlink(missing_ok=True)
    global _cached
    with _cached_lock:
        if _cached is not None and _cached[0][0] == str(state):
            _cached = None
