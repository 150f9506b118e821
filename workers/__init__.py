"""The worker side: the Celery app and its per-host queue routing, the thin tasks (load the
job → call the engine → record the outcome), the host agent (registration, heartbeat,
volume inventory) and the embedded in-process dispatcher. ``workers.main`` is what
``volkeeper worker`` (in ``cli/``) runs."""
