"""Writing a file system's dirty pages out ahead of a stop window.

Stopping a container unmounts its root file system (an overlay on Docker's data root),
and that unmount writes out every dirty page of the file system below it — everything
written there recently by anyone: a restore's gigabyte of new files, the application's
own writes. Measured on one host: an idle container stopped in 0.14-0.19 s, and in
0.35-0.94 s with 1.2 GB of freshly written data not yet on disk. ``flush_filesystems``
(``syncfs(2)`` per file system) does that writeback while the containers still run, so
the stop that follows waits only for what was written since. ``flushing`` does it in a
thread beside other work (a walk that mostly reads cached metadata).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def flush_filesystems(paths: Iterable[Path | None]) -> int:
    """``syncfs`` the file system of each existing path (each file system once; ``None``
    and paths that cannot be opened are skipped). Never raises: a flush only saves time
    later. Returns how many file systems were flushed."""
    return len(_flush(paths, []))


def write_out(paths: Iterable[Path]) -> None:
    """Make sure what was written into ``paths``' file systems is on disk: ``syncfs`` each
    (``os.sync`` where there is no ``syncfs``). Raises OSError when a path cannot be opened
    or its file system reports a write error (``syncfs`` returns the writeback's error)."""
    errors: list[OSError] = []
    _flush(paths, errors, strict=True)
    if errors:
        raise errors[0]


def _flush(paths: Iterable[Path | None], errors: list[OSError], strict: bool = False
           ) -> set[int]:
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # not Linux/glibc: nothing to gain here
        if strict:
            os.sync()
        return set()
    done: set[int] = set()
    for path in paths:
        if path is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            errors.append(e)
            continue
        try:
            dev = os.fstat(fd).st_dev
            if dev not in done:
                if syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), str(path))
                done.add(dev)
        except OSError as e:
            errors.append(e)
            log.debug("could not flush the file system of %s: %s", path, e)
        finally:
            os.close(fd)
    return done


def flush_behind(paths: Iterable[Path | None], name: str = "flush-behind"
                 ) -> threading.Thread:
    """Start flushing the file systems of ``paths`` in a thread and return at once (the
    thread, for a caller or a test that wants to wait): the writeback is started now
    instead of by the kernel's flusher threads up to 30 s later, and nobody waits for it.
    In a process that exits first it just stops (a daemon thread): the kernel writes the
    pages out as it would have."""
    thread = threading.Thread(target=flush_filesystems, args=(list(paths),), name=name,
                              daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def flushing(paths: Iterable[Path | None]) -> Iterator[None]:
    """Flush the file systems of ``paths`` in a thread while the block runs; the block's
    end waits for the flush."""
    thread = flush_behind(paths, "flush")
    try:
        yield
    finally:
        thread.join()
