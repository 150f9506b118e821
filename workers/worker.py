"""The ``worker`` entry: the Celery worker of one Docker host, with its host loops
(``common.jobs.loops.HostLoops``: heartbeat, inventory, housekeeping) beside it and its
quick lane (``workers.quick``) in a child process. Run it as ``python -m workers --host
NAME`` or through ``volkeeper worker``."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import warnings

from celery.exceptions import SecurityWarning
from celery.signals import worker_ready

from common.config import Settings, get_settings
from common.db.migrate import upgrade
from common.errors import VolkeeperError
from common.jobs import context
from common.jobs.loops import HostLoops
from common.jobs.names import TASK_VALIDATE, queue_for
from workers.celery_app import create_celery
from workers.quick import PARENT_ENV, QuickLane, die_with_parent


def run_worker(host: str, *, concurrency: int = 2, quick_only: bool = False) -> None:
    """Consume ``host.<host>`` with ``concurrency`` slots until stopped (``quick_only``:
    the quick lane's child, consuming ``host.<host>.quick`` with two slots)."""
    quiet_root_warning()
    os.environ["VOLKEEPER_HOST_NAME"] = host
    get_settings.cache_clear()
    settings = get_settings()
    if not settings.redis_url or not settings.database_url:
        raise VolkeeperError("a worker needs VOLKEEPER_REDIS_URL and VOLKEEPER_DATABASE_URL",
                             "set both to the control plane's Redis and PostgreSQL")
    worker_ready.connect(freeze_start, weak=False)
    celery_args = ["--pool", "threads", "--loglevel", settings.log_level, "-E",
                   "--without-gossip", "--without-mingle"]
    if quick_only:
        if not die_with_parent(int(os.environ.get(PARENT_ENV, "0"))):
            return
        create_celery(settings).worker_main([
            "worker", "-Q", queue_for(host, TASK_VALIDATE), "-n", f"{host}.quick@%h",
            "--concurrency", "2", *celery_args])
        return
    ctx = context.current()
    upgrade(ctx.db)
    loops = HostLoops(ctx, sweep=False)  # the API owns the fleet's stale-job sweep
    loops.start()
    lane = QuickLane(host)
    lane.start()
    try:
        create_celery(settings).worker_main([
            "worker", "-Q", queue_for(host), "-n", f"{host}@%h",
            "--concurrency", str(concurrency), *celery_args])
    finally:
        lane.stop()
        loops.stop()


def quiet_root_warning() -> None:
    """Silence Celery's "running the worker with superuser privileges … absolutely not
    recommended" warning, and only it: the agent runs as root by design (it reads and
    writes every volume's files; deploy/README.md), and accepts JSON only — no pickle, the
    reason for Celery's warning."""
    warnings.filterwarnings("ignore", message=r"\s*You're running the worker with "
                            "superuser privileges", category=SecurityWarning)


def freeze_start(**_: object) -> None:
    """(Celery's ``worker_ready``) Move every object the worker's start left alive — the
    Celery app, its pool, consumer and connections, a few hundred thousand objects that
    live as long as the worker — into the permanent generation (``gc.freeze``), so the
    collections a job's allocations start no longer traverse them: a migration's steps
    build records of ~25,000 entries each, and every older collection they started walked
    the whole worker's heap again (``kept.keeping`` measured 0.19 s of it in a 0.3 s
    backup). ``volkeeper worker`` froze what existed before Celery started
    (``cli.startup.resume``)."""
    gc.freeze()


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers",
                                     description="The Celery worker of one Docker host.")
    parser.add_argument("--host", required=True, help="name of this Docker host (queue host.NAME)")
    parser.add_argument("--concurrency", type=int, default=2, help="long jobs run at once")
    parser.add_argument("--quick-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging(get_settings())
    try:
        run_worker(args.host, concurrency=args.concurrency, quick_only=args.quick_only)
    except VolkeeperError as e:
        parser.exit(1, f"error: {e.message}\n" + (f"hint: {e.hint}\n" if e.hint else ""))
