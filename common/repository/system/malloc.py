"""Keeping freed buffers for reuse (glibc ``mallopt``), for the data-heavy operations.

Backup, restore and check allocate buffers of up to a few MiB per chunk or pack range,
many times a second. glibc serves allocations over its (adaptive) mmap threshold with a
fresh ``mmap`` and returns them with ``munmap``, and trims its heaps as soon as 128 KiB
are free at the top: every buffer then costs a page fault per 4 KiB page (and the
kernel's zeroing of each page). Measured on a restore of the 1 GiB mixed set: 225k minor
faults and 2.4 s of system time; with buffers up to 32 MiB served from the heap and up to
64 MiB of freed memory kept, 65k faults and 7-10 % less wall time. The memory kept is
bounded (``TRIM_THRESHOLD`` per arena, and one arena per core rather than glibc's eight),
and only freed memory the process had used anyway. The threshold was 64 MiB; 16 MiB, twice
the largest buffer of a backup (a chunk: 8 MiB), keeps
as few faults (a 1 GiB backup in-process, busy machine: peak RSS 112 / 110 / 104 / 97 MiB,
faults 20k / 20k / 44k / 170k at 64 / 32 / 16 / 4 MiB, the same system time; buffers of
1 MiB and more mapped afresh instead: 94 MiB, 750k faults, +1.2 s of system time).

A restore keeps less (``RESTORE_TRIM_THRESHOLD``, 4 MiB): its pack ranges are at most 4
MiB since its batches are 2 MiB. A one-shot ``volkeeper backup`` maps its buffers of 1
MiB and more afresh (``BACKUP_MMAP_THRESHOLD``, ``map_backup_buffers``; a worker does
not: its backups keep the heap's speed): since its buffers in flight were bounded (8 MiB), the heap
kept by its threads' arenas, not the buffers, made its peak — buffers of 0.5-16 MiB (a
chunk, its compressed and sealed copies, the chunk window) freed by one thread and
allocated by another leave holes the next size does not fit (session 14: glibc held 20-45
MiB free at the peak of the CLI's first backup of the 1 GiB mixed set; peak RSS 139-145 ->
126-130 MiB at 1 MiB, 121-126 at 512 KiB; 137-140 at 2 MiB, no gain at 4 MiB, nor from a
lower trim threshold or a periodic ``malloc_trim``; the cost: minor faults 38k -> 270k,
+0.3 s of system time, ~5 % more wall time; ``benchmarks/RESULTS.md``, session 14).
``keep_freed_memory`` sets the thresholds of its last call (a process that backs up and
restores in turn gets each one's), is cheap to repeat and does nothing where ``mallopt``
is unavailable (not glibc, not Linux); under musl it is a harmless no-op.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit
TRIM_THRESHOLD = 16 * 1024 * 1024
#: for a restore, whose buffers are a batch's pack ranges (at most 4 MiB) and one blob:
#: the CLI restore of the mixed set peaked ~10 MiB lower than at 16 MiB, at the same CPU
RESTORE_TRIM_THRESHOLD = 4 * 1024 * 1024
#: a one-shot backup's buffers from this size on are mapped afresh and unmapped when
#: freed (``map_backup_buffers``)
BACKUP_MMAP_THRESHOLD = 1024 * 1024
#: the mmap threshold a backup asks for (``backup_mmap_threshold``)
_backup_mmap = MMAP_THRESHOLD

_trim = 0
_mmap = MMAP_THRESHOLD


def keep_freed_memory(trim: int = TRIM_THRESHOLD, mmap_threshold: int = MMAP_THRESHOLD
                      ) -> bool:
    """Tune this process's allocator, keeping up to ``trim`` bytes of freed memory per
    arena and serving allocations below ``mmap_threshold`` from the heap (the last call's
    values hold); whether both took effect."""
    global _trim, _mmap
    mallopt = _setup()
    if mallopt is None:
        return False
    if trim != _trim:
        _trim = trim if mallopt(M_TRIM_THRESHOLD, trim) else 0
    if mmap_threshold != _mmap:
        _mmap = mmap_threshold if mallopt(M_MMAP_THRESHOLD, mmap_threshold) else 0
    return _trim == trim and _mmap == mmap_threshold


def map_backup_buffers() -> None:
    """Backups in this process map their buffers of ``BACKUP_MMAP_THRESHOLD`` and more
    afresh: ``volkeeper backup``, a one-shot process whose peak memory is the user's
    (about 12 MiB lower for ~5 % more time). A long-lived worker does not call it: its
    backups keep serving buffers from the heap (a migration's cut-over is downtime)."""
    global _backup_mmap
    _backup_mmap = BACKUP_MMAP_THRESHOLD


def backup_mmap_threshold() -> int:
    """The mmap threshold a backup sets (``keep_freed_memory``): glibc's maximum, or
    ``BACKUP_MMAP_THRESHOLD`` after ``map_backup_buffers``."""
    return _backup_mmap


def limit_arenas() -> bool:
    """Cap this process's malloc arenas at ``arena_max()``, before it starts threads.

    glibc gives a thread that first allocates while every arena is in use a new arena
    (up to 8 per core) and never frees one: ``M_ARENA_MAX`` caps only those made after
    it. The CLI's embedded front starts its job, progress and Docker event threads before
    a backup tunes the allocator (``keep_freed_memory``), so their arenas, each keeping
    up to ``TRIM_THRESHOLD`` of freed memory, were already there; ``volkeeper backup``
    calls this while still single-threaded (not restore: with two arenas its threads
    took more CPU). Whether it took effect; harmless where ``mallopt`` is missing."""
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, arena_max()))


def arena_max() -> int:
    """One arena per core (at least two), not glibc's default of eight."""
    return max(2, len(os.sched_getaffinity(0)))


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


@functools.cache
def _setup() -> Callable[[int, int], int] | None:
    """``mallopt`` with the mmap threshold and arena count set, or None."""
    mallopt = _mallopt()
    if mallopt is None or not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return None
    # each arena keeps up to the trim threshold of freed memory: one arena per core, not
    # glibc's default of eight (a 1 GiB backup's peak RSS: 252 -> 212 MiB here); it
    # caps only the arenas made after it (``limit_arenas``)
    mallopt(M_ARENA_MAX, arena_max())
    return mallopt
