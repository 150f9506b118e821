"""The allocator tuning for data-heavy operations: freed buffers are reused, not faulted
in again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_MEASURE = """
import random, resource, sys, threading
from common.repository.system.malloc import keep_freed_memory

def work(seed):
    # what a restore thread does: buffers of a few MiB (pack ranges, chunks: at most
    # 8 MiB) and smaller ones (blobs of small files), allocated, filled and dropped. One
    # thread: with several, how many buffers are alive at once (so the faults) depends on how a busy
    # machine schedules them, and the margin shrank to ~2x under load; alone it is
    # the same every run (~3.7x: ~10.8k faults untuned, ~2.9k tuned)
    rnd = random.Random(seed)
    for _ in range(60):
        buf = bytearray(rnd.randrange(1 << 20, 8 << 20))
        buf[::4096] = b"x" * len(buf[::4096])
        small = [bytes(rnd.randrange(1000, 300000)) for _ in range(20)]
        del buf, small

ok = keep_freed_memory() and keep_freed_memory() if sys.argv[1] == "tuned" else True
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
worker = threading.Thread(target=work, args=(0,))  # a thread, as in a restore
worker.start()
worker.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, ok)
"""


def _faults(mode: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, mode], capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_buffers_freed_and_allocated_again_fault_far_less_once_tuned() -> None:
    untuned, _ = _faults("untuned")
    tuned, ok = _faults("tuned")
    assert ok == "True"
    assert tuned * 2 < untuned, (tuned, untuned)


_ARENAS = """
import ctypes, sys, threading
from common.repository.system import malloc

ok = malloc.limit_arenas() if sys.argv[1] == "limited" else None
n = malloc.arena_max() + 4
barrier = threading.Barrier(n + 1)

def work():
    held = [bytes(100_000) for _ in range(4)]  # malloc'd (not pymalloc), in this thread
    barrier.wait()  # all threads alive at once: none can reuse a finished thread's arena
    barrier.wait()
    del held

threads = [threading.Thread(target=work) for _ in range(n)]
for t in threads:
    t.start()
barrier.wait()
sys.stdout.flush()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
barrier.wait()
for t in threads:
    t.join()
print(ok, malloc.arena_max())
"""


def _arenas(mode: str) -> tuple[int, str, int]:
    done = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True,
                          text=True, check=True)
    ok, limit = done.stdout.split()
    return done.stderr.count("Arena "), ok, int(limit)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_limit_arenas_before_threads_caps_the_arenas_they_get() -> None:
    free, _, limit = _arenas("free")
    limited, ok, _ = _arenas("limited")
    assert ok == "True"
    assert free > limit, free  # each thread alive at once got its own arena
    assert 1 <= limited <= limit, limited


def test_limit_arenas_is_a_harmless_no_when_mallopt_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from common.repository.system import malloc

    monkeypatch.setattr(malloc, "_mallopt", lambda: None)
    assert malloc.limit_arenas() is False


def test_the_backup_command_limits_arenas_before_its_front_opens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    from collections.abc import Iterator

    from cli import cmds_jobs
    from common.repository.system import malloc

    calls: list[str] = []
    monkeypatch.setattr(malloc, "limit_arenas", lambda: calls.append("limit") or True)
    monkeypatch.setattr(malloc, "map_backup_buffers", lambda: calls.append("map"))

    class Front:
        def backup(self, body: dict[str, object]) -> dict[str, object]:
            calls.append("backup")
            return {}

    @contextlib.contextmanager
    def connect() -> Iterator[Front]:
        calls.append("front")
        yield Front()

    monkeypatch.setattr(cmds_jobs, "connect", connect)
    monkeypatch.setattr(cmds_jobs, "after_submit", lambda *_: None)
    cmds_jobs.backup("vol", host=None, target=None, fmt=None, snapshot=None,
                     stop_containers=False, exclude=None, project=None, group=None,
                     member=None, dump=None, dump_database=None)
    assert calls == ["limit", "map", "front", "backup"]


_MAPPED = """
import resource, sys
from common.repository.system import malloc

def faults_of_buffers():
    # buffers of 1-3 MiB, each filled and freed: from the heap they are faulted in once,
    # mapped afresh every one faults in again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for n in range(40):
        buf = bytearray((1 << 20) + (n % 3) * (1 << 20))
        buf[::4096] = b"x" * len(buf[::4096])
        del buf
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

ok = [malloc.keep_freed_memory(mmap_threshold=malloc.BACKUP_MMAP_THRESHOLD)]
mapped = faults_of_buffers()
ok.append(malloc.keep_freed_memory())  # a restore or check after it: the heap again
faults_of_buffers()  # the heap grows to hold them once
heap = faults_of_buffers()
print(mapped, heap, all(ok))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_backup_maps_its_large_buffers_and_the_next_call_serves_them_from_the_heap(
        ) -> None:
    out = subprocess.run([sys.executable, "-c", _MAPPED], capture_output=True, text=True,
                         check=True).stdout.split()
    mapped, heap, ok = int(out[0]), int(out[1]), out[2]
    assert ok == "True"
    # 40 buffers of 1-3 MiB (~20k pages) mapped afresh vs reused from the heap
    assert mapped > 10_000, mapped
    assert heap * 4 < mapped, (heap, mapped)


def test_the_backup_asks_for_its_mmap_threshold(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from common.repository.backup import archiver
    from common.repository.system import malloc

    calls: list[dict[str, int]] = []

    def keep(**kw: int) -> bool:
        calls.append(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(archiver, "keep_freed_memory", keep)
    for want in (malloc.MMAP_THRESHOLD, malloc.BACKUP_MMAP_THRESHOLD):
        # a worker's backup keeps the heap; after ``map_backup_buffers`` (the one-shot
        # ``volkeeper backup``) its large buffers are mapped afresh
        if want == malloc.BACKUP_MMAP_THRESHOLD:
            monkeypatch.setattr(malloc, "_backup_mmap", malloc.MMAP_THRESHOLD)
            malloc.map_backup_buffers()
        with pytest.raises(RuntimeError, match="stop here"):
            archiver.backup_directory(None, str(tmp_path), host="h",  # type: ignore[arg-type]
                                      volume="v")
        assert calls.pop() == {"mmap_threshold": want}
