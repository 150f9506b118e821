"""Fleet dispatcher: a Celery *client* that sends tasks by name to the queues of a host
(``host.<name>``, and ``host.<name>.quick`` for the quick tasks)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from common.config import Settings
from common.errors import Unavailable
from common.jobs.names import queue_for
from common.secretbox import seal_task_secrets


class CeleryDispatcher:
    """``secrets`` never enter a message in the clear: they are sealed with the secret box
    (``VOLKEEPER_SECRET_KEY``) and bound to the job; the worker opens them."""

    def __init__(self, broker_url: str, settings: Settings) -> None:
        self.settings = settings
        self.app = Celery("volkeeper-api", broker=broker_url)
        self.app.conf.update(
            task_serializer="json", broker_connection_retry_on_startup=True,
            broker_connection_timeout=5, task_send_sent_event=True,
            broker_transport_options={"visibility_timeout": 12 * 3600},
        )

    def send(self, task: str, host: str, kwargs: dict[str, Any], *,
             secrets: dict[str, Any] | None = None) -> None:
        sealed = (seal_task_secrets(secrets, kwargs.get("job_id"), self.settings)
                  if secrets else {})
        shown = kwargs | dict.fromkeys(sealed, "***")
        try:
            self.app.send_task(task, kwargs=kwargs | sealed,
                               queue=queue_for(host, task), kwargsrepr=repr(shown),
                               retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2,
                                                         "interval_step": 0.5})
        except Exception as e:
            raise Unavailable(f"the broker is unreachable ({type(e).__name__})",
                              "check VOLKEEPER_REDIS_URL and that Redis runs") from e
