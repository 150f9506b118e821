"""Policies: what is backed up, when, where, how long it is kept and how fresh it must be
— the pure rules, free of any framework or database.

- ``schedule``: when a policy runs (cron in a time zone, presets, ``@every``), DST-safe,
  with jitter, and the one make-up run after downtime (``Schedule.due_runs``).
- ``retention``: which backups of a volume on a target a policy keeps and why
  (restic's ``forget --keep-*`` rules, plus: pinned and the newest good backup are kept,
  safety snapshots are not counted).
- ``selection``: which volumes a policy applies to (names, hosts, a label selector on
  the volume or a container using it, a Compose project) and conflicts between policies.
- ``rpo``: the recovery point objective and whether a volume is overdue.
- ``scheduler``: the leased loop that starts due runs — backups, and the verify and
  drill *cadences* (``verify_schedule``, ``drill_schedule``), each claimed once per slot.

The database glue and the services (create, update, run, preview) live in
``common.jobs.policies``; what a due verify or drill queues, in ``common.jobs.policy_checks``.
"""
