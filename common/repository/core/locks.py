"""Repository locks: shared for backups, copies and reads, exclusive for forget/prune.

A lock is a sealed object ``volkeeper/repo/locks/<random id>`` (``aad = "VKL" v1 || id``)
holding JSON: host, pid, owner (what holds it, e.g. ``backup job 42``), the exclusive
flag, and when it was created and last refreshed. Locks are per operation: every backup
writes its own shared lock, so any number of backups run at once; an exclusive lock is
refused while any other live lock exists, and a shared lock while a live exclusive one
does.

Acquiring is write-then-list on *both* sides: list (refuse if blocked), write our lock,
list again and back off (delete ours, Conflict) if a blocking lock appeared meanwhile. Of
an exclusive and a shared locker racing, at least one sees the other, so they never both
proceed (at worst both back off; ``retry_for`` tries again).

A holder refreshes its lock every ``refresh_every`` seconds from a background thread. A
lock not refreshed within ``stale_after`` (default 30 min; hosts' clocks must agree to
well within that) is stale: it blocks nobody and ``remove_stale_locks`` deletes it. A
holder whose refresh finds its lock deleted, or finds itself later than ``stale_after``,
marks the lock ``lost``; long operations call ``check()`` before committing their result.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from common.errors import Conflict, IntegrityError, NotFound, StorageError
from common.procs import pid_alive
from common.repository.core import ids
from common.repository.core.repository import Repository

LOCK_VERSION = 1
DEFAULT_STALE_AFTER = 1800.0
_AAD_KIND = b"VKL"
Clock = Callable[[], float]


@dataclass(frozen=True)
class LockInfo:
    """One lock object as found in the repository."""

    id: bytes
    exclusive: bool
    owner: str
    host: str
    pid: int
    created: float
    refreshed: float
    #: Why the lock could not be read (then ``refreshed`` is the object's storage time and
    #: it is treated as exclusive until stale).
    damaged: str | None = None

    def age(self, now: float) -> float:
        """Seconds since the lock was last refreshed."""
        return max(0.0, now - self.refreshed)

    def is_stale(self, stale_after: float, now: float) -> bool:
        """Not refreshed within ``stale_after`` seconds."""
        return now - self.refreshed > stale_after

    def blocks(self, exclusive: bool, stale_after: float, now: float) -> bool:
        """Whether this lock keeps a lock of the given kind from being taken."""
        return not self.is_stale(stale_after, now) and (exclusive or self.exclusive)

    def describe(self, now: float) -> str:
        """``exclusive lock 1a2b3c4d of "prune" (host h1, pid 7), refreshed 2 min ago, …``"""
        if self.damaged is not None:
            return (f"unreadable lock {ids.short(self.id)} ({self.damaged}), "
                    f"written {_ago(now - self.refreshed)}")
        kind = "exclusive" if self.exclusive else "shared"
        return (f"{kind} lock {ids.short(self.id)} of {self.owner!r} (host {self.host}, "
                f"pid {self.pid}), created {_ago(now - self.created)}, "
                f"refreshed {_ago(now - self.refreshed)}")

    def to_dict(self) -> dict[str, object]:
        """JSON form for the API/CLI."""
        return {"id": self.id.hex(), "exclusive": self.exclusive, "owner": self.owner,
                "host": self.host, "pid": self.pid,
                "created": _iso(self.created), "refreshed": _iso(self.refreshed),
                "damaged": self.damaged}


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    return f"{s // 3600} h ago"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _now(clock: Clock) -> float:
    """The clock's time at the precision stored in lock objects (microseconds)."""
    return _parse_time(_iso(clock()))


def _parse_time(v: object) -> float:
    if not isinstance(v, str):
        raise TypeError("a time is an ISO 8601 string")
    return datetime.fromisoformat(v).timestamp()


def _encode(repo: Repository, info: LockInfo) -> bytes:
    doc = {"v": LOCK_VERSION, "exclusive": info.exclusive, "owner": info.owner,
           "host": info.host, "pid": info.pid, "created": _iso(info.created),
           "refreshed": _iso(info.refreshed)}
    body = json.dumps(doc, sort_keys=True).encode()
    return repo.cipher.seal(body, ids.aad(_AAD_KIND, info.id))


def _decode(repo: Repository, lock_id: bytes, data: bytes) -> LockInfo:
    what = f"lock {lock_id.hex()}"
    body = repo.cipher.open_(data, ids.aad(_AAD_KIND, lock_id), what)
    try:
        doc = json.loads(body)
        if doc["v"] != LOCK_VERSION:
            raise ValueError(f"lock format version {doc['v']} is not supported")
        return LockInfo(lock_id, bool(doc["exclusive"]), str(doc["owner"]), str(doc["host"]),
                        int(doc["pid"]), _parse_time(doc["created"]),
                        _parse_time(doc["refreshed"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{what} is malformed: {exc}", "remove it with unlock") from None


def list_locks(repo: Repository) -> list[LockInfo]:
    """Every lock in the repository (unreadable ones with ``damaged`` set), oldest first."""
    out = []
    for obj in repo.backend.list(ids.LOCKS_PREFIX):
        try:
            lock_id = ids.id_from_key(obj.key)
        except Exception:  # noqa: BLE001 - not one of ours; ignore it
            continue
        try:
            out.append(_decode(repo, lock_id, repo.backend.get_bytes(obj.key)))
        except NotFound:
            continue  # released while we listed
        except IntegrityError as exc:
            written = obj.modified.timestamp() if obj.modified is not None else time.time()
            out.append(LockInfo(lock_id, True, "?", "?", 0, written, written, str(exc)))
    return sorted(out, key=lambda i: (i.created, i.id))


def holder_gone(info: LockInfo) -> bool:
    """Whether the process holding ``info`` ran on this machine (its hostname) and no
    longer exists — a killed ``volkeeper backup``: its lock is dead before it goes stale."""
    if info.damaged is not None or info.host != socket.gethostname():
        return False
    if info.pid <= 0 or info.pid == os.getpid():
        return False
    return not pid_alive(info.pid)


def remove_stale_locks(
    repo: Repository, *, stale_after: float = DEFAULT_STALE_AFTER, clock: Clock = time.time,
    dead_holders: bool = False,
) -> int:
    """Delete every lock not refreshed within ``stale_after`` seconds — with
    ``dead_holders`` (``volkeeper unlock``) also every lock whose process on this machine is
    gone (``holder_gone``); returns how many."""
    now = clock()
    stale = [i for i in list_locks(repo)
             if i.is_stale(stale_after, now) or (dead_holders and holder_gone(i))]
    for info in stale:
        repo.backend.delete(ids.lock_key(info.id))
    return len(stale)


def break_lock(repo: Repository, lock_id: bytes) -> None:
    """Delete one lock whatever its age (for a holder known to be dead); NotFound if absent."""
    key = ids.lock_key(lock_id)
    try:
        repo.backend.stat(key)
    except NotFound:
        raise NotFound("lock", lock_id.hex(), "list the repository's locks") from None
    repo.backend.delete(key)


class RepositoryLock:
    """A lock this process holds. Refreshed by a background thread until ``release``;
    usable as a context manager."""

    def __init__(self, repo: Repository, info: LockInfo, stale_after: float,
                 refresh_every: float, clock: Clock) -> None:
        self.repo = repo
        self.info = info
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.lost = False
        self.error: BaseException | None = None
        self._clock = clock
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._released = False
        self._thread: threading.Thread | None = None

    @property
    def id(self) -> bytes:
        return self.info.id

    @property
    def exclusive(self) -> bool:
        return self.info.exclusive

    @property
    def key(self) -> str:
        return ids.lock_key(self.info.id)

    def _start(self) -> None:
        if self.refresh_every > 0:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"repo-lock-{ids.short(self.id)}")
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - kept for check(); retried next tick
                self.error = exc
                if self.lost:
                    return

    def refresh(self) -> None:
        """Rewrite the lock with the current time. Marks it ``lost`` (and raises Conflict)
        when it was removed meanwhile or this refresh comes later than ``stale_after``."""
        with self._mutex:
            if self._released:
                raise Conflict(f"lock {ids.short(self.id)} was already released")
            now = _now(self._clock)
            try:
                self.repo.backend.stat(self.key)
            except NotFound:
                self.lost = True
            if now - self.info.refreshed > self.stale_after:
                self.lost = True
            if self.lost:
                raise self._lost_error()
            info = LockInfo(self.id, self.info.exclusive, self.info.owner, self.info.host,
                            self.info.pid, self.info.created, now)
            self.repo.backend.put_bytes(self.key, _encode(self.repo, info))
            self.info = info
            self.error = None

    def check(self) -> None:
        """Raise Conflict if the lock was lost (call before committing a long operation's
        result: another process may have considered it stale and acted on it)."""
        if self.lost:
            raise self._lost_error()

    def _lost_error(self) -> Conflict:
        return Conflict(
            f"the {'exclusive' if self.exclusive else 'shared'} lock {ids.short(self.id)} on "
            f"repository {self.repo.backend.display} was lost (removed by another process, or "
            f"not refreshed for more than {int(self.stale_after)} s)",
            "run the operation again; check that the host's clock and storage are healthy",
        )

    def release(self) -> None:
        """Stop refreshing and delete the lock object (idempotent). A delete that fails
        leaves a lock that goes stale by itself."""
        with self._mutex:
            if self._released:
                return
            self._released = True
            self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with contextlib.suppress(StorageError):
            self.repo.backend.delete(self.key)

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _refused(repo: Repository, exclusive: bool, blocking: list[LockInfo], now: float,
             stale_after: float) -> Conflict:
    want = "an exclusive lock" if exclusive else "a shared lock"
    held = "; ".join(i.describe(now) for i in blocking[:5])
    more = f" and {len(blocking) - 5} more" if len(blocking) > 5 else ""
    return Conflict(
        f"repository {repo.backend.display} is locked, cannot take {want}: {held}{more}",
        "wait for that operation to finish; if its process is gone, `volkeeper unlock "
        "TARGET` on that machine removes its lock (any machine: once not refreshed for "
        f"{int(stale_after // 60)} min)",
    )


def _try_acquire(repo: Repository, exclusive: bool, owner: str, stale_after: float,
                 refresh_every: float, clock: Clock) -> RepositoryLock:
    now = _now(clock)
    blocking = [i for i in list_locks(repo) if i.blocks(exclusive, stale_after, now)]
    if blocking:
        raise _refused(repo, exclusive, blocking, now, stale_after)
    info = LockInfo(ids.random_id(), exclusive, owner, socket.gethostname(), os.getpid(),
                    now, now)
    lock = RepositoryLock(repo, info, stale_after, refresh_every, clock)
    repo.backend.put_bytes_if_absent(lock.key, _encode(repo, info))
    try:
        # A racing locker may have written between our listing and our write: look again.
        now = clock()
        blocking = [i for i in list_locks(repo)
                    if i.id != info.id and i.blocks(exclusive, stale_after, now)]
    except BaseException:
        lock.release()
        raise
    if blocking:
        lock.release()
        raise _refused(repo, exclusive, blocking, now, stale_after)
    lock._start()
    return lock


def acquire_lock(
    repo: Repository,
    *,
    exclusive: bool,
    owner: str,
    stale_after: float = DEFAULT_STALE_AFTER,
    refresh_every: float | None = None,
    retry_for: float = 0.0,
    clock: Clock = time.time,
) -> RepositoryLock:
    """Take a lock; Conflict (naming the holders and their age) when it is blocked.

    ``refresh_every`` defaults to ``stale_after / 3``; 0 disables the refresh thread.
    ``retry_for`` keeps trying (with jittered backoff) for that many seconds before
    giving up — useful when two lockers raced and both backed off.
    """
    every = stale_after / 3 if refresh_every is None else refresh_every
    deadline = time.monotonic() + retry_for
    delay = 0.2
    while True:
        try:
            return _try_acquire(repo, exclusive, owner, stale_after, every, clock)
        except Conflict:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, 10.0)


def backup_lock(
    repo: Repository,
    owner: str,
    *,
    stale_after: float = DEFAULT_STALE_AFTER,
    refresh_every: float | None = None,
    retry_for: float = 0.0,
) -> RepositoryLock:
    """The shared lock a backup (or copy, restore, check) holds for its whole run: many
    coexist, and prune/forget refuse to run while it is live."""
    return acquire_lock(repo, exclusive=False, owner=owner, stale_after=stale_after,
                        refresh_every=refresh_every, retry_for=retry_for)
