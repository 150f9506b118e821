"""Running the Celery worker of one Docker host: the body of ``volkeeper worker`` (the CLI
loads this module by name, so it never imports the worker side otherwise)."""

from __future__ import annotations

import os

from common.config import Settings


def run(settings: Settings, host: str, concurrency: int, quick_only: bool) -> None:
    """The host's worker (and its quick lane child), until it is stopped."""
    from common.db.migrate import upgrade
    from common.jobs.names import TASK_VALIDATE, queue_for
    from workers import agent, context
    from workers.celery_app import create_celery
    from workers.quick import PARENT_ENV, QuickLane, die_with_parent

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
    host_agent = agent.HostAgent(ctx)
    host_agent.start()
    lane = QuickLane(host)
    lane.start()
    try:
        create_celery(settings).worker_main([
            "worker", "-Q", queue_for(host), "-n", f"{host}@%h",
            "--concurrency", str(concurrency), *celery_args])
    finally:
        lane.stop()
        host_agent.stop()
