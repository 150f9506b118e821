"""Who owns a running job, and whether that process is known to be dead.

A job runs under ``worker = "HOST@machine:pid"`` (``worker_name``). Its process is *known
dead* — and only then may anything act on the job's volume (``host.recover_interrupted``)
or fail it for a redelivered message without waiting for its heartbeat — when:

- it ran on this machine and its pid is gone (this very process: when the job is not in
  ``running_here``, so a reused pid does not count as alive);
- it ran on another machine and the host has since registered a new worker process from
  a different machine *after* the job's last heartbeat (the old one stopped, then a new
  one started: a worker container was recreated).

A late heartbeat alone proves nothing (a slow database, a paused VM): the sweep fails
such a job but leaves its volume locked; an operator who knows better releases it
(``release.release_job``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy.orm import Session

from common.db.models import Host, Job
from common.procs import pid_alive

_lock = threading.Lock()
_running: set[str] = set()


def worker_name(host: str) -> str:
    """``HOST@machine:pid`` — which worker of which Docker host ran a job."""
    return f"{host}@{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def running_here(job_id: str) -> Iterator[bool]:
    """Mark ``job_id`` as running in this process for the block. Yields False (and marks
    nothing) when it already runs here — a duplicate message to drop."""
    with _lock:
        if job_id in _running:
            yield False
            return
        _running.add(job_id)
    try:
        yield True
    finally:
        with _lock:
            _running.discard(job_id)


def is_running_here(job_id: str) -> bool:
    with _lock:
        return job_id in _running


def parse(worker: str | None) -> tuple[str, str, int] | None:
    """(host, machine, pid) of a worker name, None if it is not one."""
    if not worker or "@" not in worker:
        return None
    host, _, rest = worker.partition("@")
    machine, _, pid = rest.rpartition(":")
    return (host, machine, int(pid)) if machine and pid.isdigit() else None


def is_dead(session: Session, job: Job) -> bool:
    """Whether the process that ran ``job`` is known to be dead (see the module doc)."""
    parsed = parse(job.worker)
    if parsed is None:
        return False
    _host, machine, pid = parsed
    if machine == socket.gethostname():
        if pid == os.getpid():
            return not is_running_here(job.id)
        return not pid_alive(pid)
    row = session.get(Host, job.host)
    info = (row.info or {}) if row is not None else {}
    current, since = parse(info.get("worker")), info.get("worker_since")
    if current is None or current[1] == machine or not since:
        return False
    last = job.heartbeat_at or job.started_at
    return last is not None and datetime.fromisoformat(since) > last
