"""Jobs: submitting them, running them, recording what they did — framework-free, shared by
the API, the CLI, the Celery workers and the embedded mode.

- A *job* is one unit of work on one host (backup, restore, verify …): a ``jobs`` row with
  its state machine queued → running → succeeded | failed | cancelled and a lock (one job
  per volume).
- *Submitting* (``service``, ``operations``): validate a request against the catalog, write
  the row (queued) and hand a *task* to a ``dispatch.Dispatcher`` by *name* (``names``).
  Fleet: a Celery message to queue ``host.<name>`` (``api.dispatch``); embedded: a thread of
  this process (``inprocess``). Fronts never import the task code.
- *Running*: ``tasks.TASKS`` maps each task name to the function a worker calls with the
  message's arguments. A job task loads its row through ``runner.run_job``, which calls the
  job's *body* (``volume_jobs``, ``stored_jobs``, ``repo_jobs``: context, row, progress
  tracker → engine) and finishes the row whatever happens. Everything a body needs comes
  from the process's ``context.JobContext`` (settings, database, bus, Docker, targets).
- *Recording* (``record``): the engine's typed outcomes become catalog rows and markers.
- *The host side* (``host``, ``loops.HostLoops``): register the host, heartbeat, inventory,
  clean up after killed jobs; the stale-job sweep (``sweep``) has one owner per mode.
- *Embedded* (``embedded.EmbeddedRuntime``): all of it in one process with SQLite.
- *Migrations* (``migrations``, ``migration_flow``, ``migration_plan``,
  ``migration_steps``, ``evacuations``): a ``migrations`` row driven by a coordinator that
  queues ordinary child jobs (backup, restore, and the steps of ``migration_steps``) on
  the hosts they touch and advances as they finish; see docs/migration.md.
"""
