"""Repository locks: shared locks coexist, exclusive ones exclude, stale ones are ignored,
races back off, and a held lock is kept fresh until it is released."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from common.errors import Conflict, NotFound
from common.repository import ids
from common.repository.core import locks
from common.repository.core.locks import (
    acquire_lock,
    backup_lock,
    break_lock,
    list_locks,
    remove_stale_locks,
)
from common.repository.core.repository import Repository, init_repository, open_repository
from common.storage.base import Backend, ObjectInfo
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from tests.fixtures.util import wait_for
from tests.unit.repository.test_backup import FAST


def new_repo(backend: Backend | None = None) -> Repository:
    return init_repository(backend or MemoryBackend(), "pw", kdf=FAST)


def past(seconds: float) -> float:
    return time.time() - seconds


def test_backups_hold_shared_locks_side_by_side_and_release_them() -> None:
    repo = new_repo()
    with backup_lock(repo, "backup job 1") as one, backup_lock(repo, "backup job 2") as two:
        found = {i.id: i for i in list_locks(repo)}
        assert set(found) == {one.id, two.id}
        assert {i.owner for i in found.values()} == {"backup job 1", "backup job 2"}
        assert not any(i.exclusive for i in found.values())
        assert found[one.id].pid > 0 and found[one.id].host
    assert list_locks(repo) == []
    assert list(repo.backend.list(ids.LOCKS_PREFIX)) == []


def test_an_exclusive_lock_is_refused_while_a_backup_holds_a_shared_one() -> None:
    repo = new_repo()
    with backup_lock(repo, "backup job 7"):
        with pytest.raises(Conflict) as exc:
            acquire_lock(repo, exclusive=True, owner="prune")
        assert "backup job 7" in exc.value.message and "shared lock" in exc.value.message
        assert re.search(r"created \d+ s ago, refreshed \d+ s ago", exc.value.message)
        assert exc.value.hint and "unlock" in exc.value.hint
        assert len(list_locks(repo)) == 1  # the refused locker left nothing behind
    with acquire_lock(repo, exclusive=True, owner="prune") as lock:
        assert lock.exclusive and [i.id for i in list_locks(repo)] == [lock.id]


def test_an_exclusive_lock_keeps_out_backups_and_other_exclusive_lockers() -> None:
    repo = new_repo()
    with acquire_lock(repo, exclusive=True, owner="forget"):
        with pytest.raises(Conflict, match=r"exclusive lock .* of 'forget'"):
            backup_lock(repo, "backup job 1")
        with pytest.raises(Conflict):
            acquire_lock(repo, exclusive=True, owner="prune")
        assert len(list_locks(repo)) == 1
    backup_lock(repo, "backup job 1").release()


def test_stale_locks_block_nobody_and_are_removed_by_remove_stale_locks() -> None:
    repo = new_repo()
    dead = acquire_lock(repo, exclusive=True, owner="crashed prune", refresh_every=0,
                        clock=lambda: past(3600))
    live = backup_lock(repo, "backup job 3")
    with pytest.raises(Conflict):  # the live backup still blocks an exclusive lock
        acquire_lock(repo, exclusive=True, owner="prune")
    live.release()
    with acquire_lock(repo, exclusive=True, owner="prune", stale_after=1800) as prune:
        assert {i.id for i in list_locks(repo)} == {dead.id, prune.id}
        assert remove_stale_locks(repo) == 1
        assert [i.id for i in list_locks(repo)] == [prune.id]
    assert remove_stale_locks(repo) == 0


def test_the_refresh_thread_keeps_a_long_held_lock_fresh(tmp_path: Path) -> None:
    repo = new_repo(LocalBackend(tmp_path / "t"))
    with backup_lock(repo, "long backup", stale_after=60, refresh_every=0.05) as lock:
        first = list_locks(repo)[0].refreshed
        wait_for(lambda: list_locks(repo)[0].refreshed > first, 10, "a lock refresh")
        assert list_locks(repo)[0].created == lock.info.created
        assert not lock.lost and lock.error is None
    assert list_locks(repo) == []


def test_a_lock_removed_by_another_process_is_reported_lost_on_refresh() -> None:
    repo = new_repo()
    lock = backup_lock(repo, "backup job 9", refresh_every=0)
    other = open_repository(repo.backend, "pw")
    break_lock(other, lock.id)
    with pytest.raises(Conflict, match="was lost"):
        lock.refresh()
    assert lock.lost
    with pytest.raises(Conflict):
        lock.check()
    lock.release()
    assert list_locks(repo) == []  # refresh did not resurrect it


def test_a_refresh_later_than_stale_after_marks_the_lock_lost() -> None:
    repo = new_repo()
    now = [time.time()]
    lock = acquire_lock(repo, exclusive=True, owner="prune", stale_after=100,
                        refresh_every=0, clock=lambda: now[0])
    now[0] += 50
    lock.refresh()
    assert list_locks(repo)[0].refreshed == pytest.approx(now[0], abs=1e-3)
    now[0] += 101
    with pytest.raises(Conflict):
        lock.refresh()
    assert lock.lost
    lock.release()


def test_break_lock_removes_one_lock_and_names_a_missing_one() -> None:
    repo = new_repo()
    a = backup_lock(repo, "a", refresh_every=0)
    b = backup_lock(repo, "b", refresh_every=0)
    break_lock(repo, a.id)
    assert [i.id for i in list_locks(repo)] == [b.id]
    with pytest.raises(NotFound):
        break_lock(repo, a.id)
    b.release()


def test_an_unreadable_lock_blocks_until_stale_and_can_be_broken() -> None:
    repo = new_repo()
    junk = ids.random_id()
    repo.backend.put_bytes(ids.lock_key(junk), b"\x01garbage that does not authenticate")
    (info,) = list_locks(repo)
    assert info.id == junk and info.damaged and info.exclusive
    with pytest.raises(Conflict, match="unreadable lock"):
        backup_lock(repo, "backup")
    assert remove_stale_locks(repo, clock=lambda: time.time() + 3600) == 1
    backup_lock(repo, "backup").release()


class _Racing(MemoryBackend):
    """Just before our lock lands, another process writes ``racer``'s lock."""

    def __init__(self) -> None:
        super().__init__("racing")
        self.racer: tuple[bool, str] | None = None

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        if key.startswith(ids.LOCKS_PREFIX) and self.racer is not None:
            exclusive, owner = self.racer
            self.racer = None
            acquire_lock(open_repository(self, "pw"), exclusive=exclusive, owner=owner,
                         refresh_every=0)
        return super().put_bytes_if_absent(key, data)


@pytest.mark.parametrize(("ours", "theirs"), [(True, False), (False, True), (True, True)])
def test_a_locker_that_finds_a_racing_lock_after_writing_its_own_backs_off(
    ours: bool, theirs: bool
) -> None:
    backend = _Racing()
    repo = new_repo(backend)
    backend.racer = (theirs, "racer")
    with pytest.raises(Conflict, match="racer"):
        acquire_lock(repo, exclusive=ours, owner="us")
    assert [i.owner for i in list_locks(repo)] == ["racer"]  # ours was removed


def test_racing_prune_and_backups_never_hold_their_locks_together() -> None:
    for _ in range(5):
        repo = new_repo()
        start = threading.Barrier(5)
        held: dict[str, bool] = {}

        def take(name: str, exclusive: bool, repo: Repository = repo,
                 start: threading.Barrier = start, held: dict[str, bool] = held) -> None:
            start.wait()
            try:
                acquire_lock(repo, exclusive=exclusive, owner=name, refresh_every=0)
                held[name] = True
            except Conflict:
                held[name] = False

        threads = [threading.Thread(target=take, args=("prune", True))]
        threads += [threading.Thread(target=take, args=(f"b{i}", False)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        backups = [held[f"b{i}"] for i in range(4)]
        assert not (held["prune"] and any(backups))
        owners = {i.owner for i in list_locks(repo)}
        assert owners == {n for n, ok in held.items() if ok}


def test_retry_for_waits_for_a_lock_to_be_released() -> None:
    repo = new_repo()
    lock = acquire_lock(repo, exclusive=True, owner="prune", refresh_every=0)
    timer = threading.Timer(0.3, lock.release)
    timer.start()
    try:
        backup_lock(repo, "patient backup", retry_for=30).release()
    finally:
        timer.cancel()
    assert list_locks(repo) == []


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_unlock_removes_the_fresh_lock_of_a_killed_process_on_this_machine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``volkeeper backup`` killed with -9 leaves a fresh lock that would block prune for
    30 min: its process on this machine is gone, so ``dead_holders`` removes it — but not
    a live process's lock, nor a lock of another machine's process."""
    repo = new_repo()
    pid = _dead_pid()
    with monkeypatch.context() as m:
        m.setattr(locks.os, "getpid", lambda: pid)
        killed = backup_lock(repo, "backup job 9", refresh_every=0)
        m.setattr(locks.socket, "gethostname", lambda: "another-machine")
        elsewhere = backup_lock(repo, "backup job 10", refresh_every=0)
    live = backup_lock(repo, "backup job 11", refresh_every=0)
    with pytest.raises(Conflict, match="volkeeper unlock TARGET"):
        acquire_lock(repo, exclusive=True, owner="prune")
    assert remove_stale_locks(repo) == 0  # fresh: not stale
    assert remove_stale_locks(repo, dead_holders=True) == 1
    assert {i.id for i in list_locks(repo)} == {elsewhere.id, live.id}
    assert killed.id not in {i.id for i in list_locks(repo)}
    live.release()
