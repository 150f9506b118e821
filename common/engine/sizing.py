"""A quick scan of a volume's tree for progress totals: one ``lstat`` per entry, no data
read. ``scanning`` runs it in a thread beside the backup, which reads every file anyway:
the two warm the inode cache for each other, so the scan costs little of the backup's
time (measured on 100k small files: docs/architecture.md, "Progress totals"). It stops
after a time budget, or when the backup is done first: a huge tree has no total then.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.archive.gnutar import RECORD

_BLOCK = 512
_RECORD = RECORD  # the record size ``gnutar.create_stream`` pads its stream to
#: ``--format=posix`` (``gnutar.CREATE_ARGS``): each member has its header and a pax
#: extended header (a header and a data block: the sub-second mtime, a long name …)
_MEMBER = 3 * _BLOCK


@dataclass(frozen=True)
class TreeSize:
    #: content bytes of the regular files (hardlinked content once)
    bytes: int
    #: regular files (hardlinks of one inode once)
    files: int
    #: every entry, the root directory included (what a tar stream has as members)
    entries: int
    #: the size of the tar stream ``gnutar.create_stream`` makes of the tree (an estimate:
    #: sparse files and large xattrs make it differ)
    tar_bytes: int


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


#: How long a scan may take; a backup of a tree it cannot stat in this time runs for
#: minutes anyway, and then goes without a total.
BUDGET_SECONDS = 10.0


@contextlib.contextmanager
def scanning(path: Path | None, on_size: Callable[[TreeSize], None],
             budget_seconds: float = BUDGET_SECONDS) -> Iterator[None]:
    """Scan the tree under ``path`` (nothing when None) in a thread while the block runs;
    ``on_size`` is called from that thread when the scan finishes in time."""
    if path is None:
        yield
        return
    stop, lock = threading.Event(), threading.Lock()

    def run() -> None:
        size = scan_tree(path, budget_seconds, stop)
        with lock:  # never after the block
            if size is not None and not stop.is_set():
                on_size(size)

    thread = threading.Thread(target=run, name="scan-tree", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with lock:
            stop.set()
        thread.join()


def scan_tree(path: Path, budget_seconds: float = BUDGET_SECONDS,
              stop: threading.Event | None = None) -> TreeSize | None:
    """The sizes of the tree under ``path``; None when that takes longer than the budget
    (or ``stop`` is set)."""
    deadline = time.monotonic() + budget_seconds
    stop = stop or threading.Event()
    nbytes = files = 0
    entries = 1
    tar_bytes = _MEMBER  # the root "./"
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        if time.monotonic() > deadline or stop.is_set():
            return None
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    entries += 1
                    if not entries & 0x3FF and (time.monotonic() > deadline
                                                or stop.is_set()):
                        return None
                    tar_bytes += _MEMBER
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        if st.st_nlink > 1:
                            if (st.st_dev, st.st_ino) in seen:
                                continue
                            seen.add((st.st_dev, st.st_ino))
                        files += 1
                        nbytes += st.st_size
                        tar_bytes += _padded(st.st_size)
        except OSError:
            continue
    tar_bytes += 2 * _BLOCK
    return TreeSize(bytes=nbytes, files=files, entries=entries,
                    tar_bytes=-(-tar_bytes // _RECORD) * _RECORD)
