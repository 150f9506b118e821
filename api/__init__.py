"""The REST API (FastAPI) under ``/api/v1`` and the web console.

One router per resource (hosts, volumes, targets, backups, restores, jobs, health). Routes
validate input, call ``common.jobs.service`` and read ``common.db``; work is queued by
task name through a ``Dispatcher`` — the API never imports the workers or the engine.
"""
