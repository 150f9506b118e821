"""The trees a backup wrote, kept in this process for the next backup of the volume.

A migration's cut-over backup (in the downtime) follows the catch-up backup of the same
volume on the same worker seconds later, and its parent is that catch-up's snapshot: its
walk would read, decrypt and parse every parent tree again (~0.08 s of the walking thread
for 25,000 entries) although this process made them a moment ago. A backup asked to
(``BackupOptions.keep_trees``; a migration's catch-up with ``keeping``) keeps every tree
it wrote in the form the walk compares with (``KeptTree``: each node's exact text, its
JSON object, and for a plain file its stat and chunk ids instead); the next backup in
this process whose parent tree is among them takes them all (``take``). The pre-copy's
backup keeps its trees (and index) the same way for the first catch-up round, whose
parent it is: that round reads neither the whole index nor a parent tree again.

A tree id names the tree's bytes, so a kept tree is the parent's tree whichever backup
made it; the walk still requires its id to be stored before reusing it. Every chunk a
kept tree names was indexed (or stored and indexed) by the backup that kept it: when the
next backup's index is read from a superset of those index files with no damage mark
(``Repository.index_files``), an unchanged file's chunks need no index lookup.

Bounded: at most ``MAX_NODES`` nodes are kept (~1 KB each: the mixed 1 GiB set's 25,000
entries kept ~25 MiB; a larger volume keeps nothing), one backup's at a time, for
``KEEP_SECONDS`` at most.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from common.repository.core.repository import forget_kept_index

#: a file node's stat as the walk compares it with the file's (``archiver._same_file``):
#: inode, size, mtime_ns, ctime_ns, mode, uid, gid
StatKey = tuple[int, int, int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """A file's ``StatKey`` from its ``lstat``."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, stat.S_IMODE(st.st_mode),
            st.st_uid, st.st_gid)


@dataclass(slots=True)
class KeptTree:
    """A tree as the walk compares with it: each node's JSON object and exact text by
    name, in the tree's order, and for its plain file nodes (a file's fields only, one
    link) their ``StatKey`` and chunk ids, so an unchanged file is one tuple comparison
    (their objects are left out, None: parsed from the text for a file that changed;
    ~0.7 instead of ~2 KB a node)."""

    old: dict[str, tuple[dict[str, Any] | None, str]]
    files: dict[str, tuple[StatKey, list[bytes]]]


def make_tree(texts: list[str], dicts: list[dict[str, Any] | None],
              files: dict[str, tuple[StatKey, list[bytes]]]) -> KeptTree:
    """The kept form of a tree the walk wrote (``dicts``: the nodes' JSON objects where
    it had them — for a file already in ``files``, unchanged from a kept parent, an
    object with its name alone —; the others are parsed from their texts, and are
    files' when they are of type file: all the walk made of one with a single link)."""
    old: dict[str, tuple[dict[str, Any] | None, str]] = {}
    for d, t in zip(dicts, texts, strict=True):
        if d is None:  # a node completed later (a large file, a deferred directory)
            d = json.loads(t)
            if d["type"] == "file":
                get = d.get
                files[d["name"]] = ((get("inode", 0), get("size", 0), get("mtime_ns", 0),
                                     get("ctime_ns", 0), get("mode", 0), get("uid", 0),
                                     get("gid", 0)),
                                    [bytes.fromhex(c) for c in get("content", [])])
        name = d["name"]
        old[name] = (None if name in files else d, t)
    return KeptTree(old, files)


MAX_NODES = 50_000
KEEP_SECONDS = 600.0

_wanted: contextvars.ContextVar[bool] = contextvars.ContextVar("keep_trees", default=False)
_lock = threading.Lock()
#: (repository id, tree id -> tree, the index files that index every chunk they name)
_kept: tuple[bytes, dict[bytes, KeptTree], frozenset[bytes] | None] | None = None
_timer: threading.Timer | None = None


@contextlib.contextmanager
def keeping(pause_gc: bool = True) -> Iterator[None]:
    """Backups in this block (in this thread) keep their trees: as
    ``BackupOptions.keep_trees``, for a caller that does not build the options (a
    migration's pre-copy and catch-up go through the volume backup of every format).

    With ``pause_gc`` (a catch-up: an incremental backup of seconds) the cyclic garbage
    collector is paused meanwhile: keeping adds ~25,000 long-lived objects (none in a
    cycle), and each allocation threshold they cross started a collection that
    traversed every object of the process — in a Celery worker's heap, 0.19 s of
    collections in a 0.3 s backup (measured with a million live objects beside; 0.03 s
    without). What the backup leaves in cycles is collected after it. A pre-copy (a
    first backup, of any length) leaves the collector alone."""
    token = _wanted.set(True)
    paused = pause_gc and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
        _wanted.reset(token)


def wanted() -> bool:
    """Whether a ``keeping`` block asks backups to keep their trees."""
    return _wanted.get()


def keep(repository_id: bytes, trees: dict[bytes, KeptTree],
         index_files: frozenset[bytes] | None) -> None:
    """Keep ``trees`` (a finished backup's) in place of what was kept before;
    ``index_files``: index files whose entries cover every chunk and tree they name (the
    backup's load and the files it wrote), or None."""
    global _kept, _timer
    with _lock:
        _kept = (repository_id, trees, index_files)
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(KEEP_SECONDS, drop)
        _timer.daemon = True
        _timer.start()


def take(repository_id: bytes, tree_id: bytes | None
         ) -> tuple[dict[bytes, KeptTree], frozenset[bytes] | None]:
    """The kept trees and their index files if ``tree_id`` (a backup's parent tree) is one
    of them (they are given up: at most one backup uses them), else none (they stay)."""
    global _kept
    with _lock:
        if _kept is None or tree_id is None or _kept[0] != repository_id \
                or tree_id not in _kept[1]:
            return {}, None
        _id, trees, index_files = _kept
        _kept = None
    return trees, index_files


def drop() -> None:
    """Forget the kept trees, and the index kept with them (``forget_kept_index``)."""
    global _kept
    with _lock:
        _kept = None
    forget_kept_index()
