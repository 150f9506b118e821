"""The Celery application: broker, per-host queues and reliability settings.

Each worker consumes only ``host.<name>`` (see ``common.jobs.names.queue_for``). Tasks are
acknowledged late with a prefetch of one, so a message is only gone once its job has been
recorded; the broker's visibility timeout is longer than any job, and a job whose worker dies
is failed by the stale-job sweep (``common.jobs.sweep``), not re-run blindly.
"""

from __future__ import annotations

from celery import Celery

from common.config import Settings


def create_celery(settings: Settings) -> Celery:
    app = Celery("volkeeper", broker=settings.redis_url or "memory://",
                 include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=f"host.{settings.host_name}",
        broker_transport_options={"visibility_timeout": 12 * 3600},
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app
