"""The Celery side of the fleet, glue only: the Celery app and its per-host queue routing
(``celery_app``), one Celery task per entry of ``common.jobs.tasks.TASKS`` (``tasks``), the
quick lane (``quick``) and the ``worker`` entry that runs them beside the host loops of
``common.jobs.loops`` (``volkeeper worker`` in ``cli/`` loads it by name)."""
