"""The trees a backup wrote, kept in this process for the next backup of the volume.

A migration's cut-over backup (in the downtime) follows the catch-up backup of the same
volume on the same worker seconds later, and its parent is that catch-up's snapshot: its
walk would read, decrypt and parse every parent tree again (~0.08 s of the walking thread
for 25,000 entries) although this process made them a moment ago. A backup asked to
(``BackupOptions.keep_trees``) keeps every tree it wrote in the form the walk compares
with (each node's JSON object and exact text, ``tree.split_tree``'s); the next backup in
this process whose parent tree is among them takes them all (``take``). A migration's
catch-up asks for it with ``keeping``. A tree id names
the tree's bytes, so a kept tree is the parent's tree whichever backup made it; the walk
still requires its id to be stored before reusing it.

Bounded: at most ``MAX_NODES`` nodes are kept (~1.3 KB each; a larger volume keeps
nothing), one backup's at a time, for ``KEEP_SECONDS`` at most.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

#: a tree as the walk compares with it: each node's JSON object and exact text
Pairs = list[tuple[dict[str, Any], str]]

MAX_NODES = 100_000
KEEP_SECONDS = 600.0

_wanted: contextvars.ContextVar[bool] = contextvars.ContextVar("keep_trees", default=False)
_lock = threading.Lock()
_kept: tuple[bytes, dict[bytes, Pairs]] | None = None  # (repository id, tree id -> tree)
_timer: threading.Timer | None = None


@contextlib.contextmanager
def keeping() -> Iterator[None]:
    """Backups in this block (in this thread) keep their trees: as
    ``BackupOptions.keep_trees``, for a caller that does not build the options (a
    migration's catch-up goes through the volume backup of every format)."""
    token = _wanted.set(True)
    try:
        yield
    finally:
        _wanted.reset(token)


def wanted() -> bool:
    """Whether a ``keeping`` block asks backups to keep their trees."""
    return _wanted.get()


def keep(repository_id: bytes, trees: dict[bytes, Pairs]) -> None:
    """Keep ``trees`` (a finished backup's) in place of what was kept before."""
    global _kept, _timer
    with _lock:
        _kept = (repository_id, trees)
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(KEEP_SECONDS, drop)
        _timer.daemon = True
        _timer.start()


def take(repository_id: bytes, tree_id: bytes | None) -> dict[bytes, Pairs]:
    """The kept trees if ``tree_id`` (a backup's parent tree) is one of them (they are
    given up: at most one backup uses them), else none (they stay)."""
    global _kept
    with _lock:
        if _kept is None or tree_id is None or _kept[0] != repository_id \
                or tree_id not in _kept[1]:
            return {}
        trees = _kept[1]
        _kept = None
    return trees


def drop() -> None:
    """Forget the kept trees."""
    global _kept
    with _lock:
        _kept = None
