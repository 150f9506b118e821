"""The ``volkeeper`` command (Typer + rich), a front of its own beside the API.

Every command talks to one interface (``cli.front.Front``) with two implementations: with
``--server URL`` the REST API over HTTP, without it the services of ``common.jobs`` called
in this process (embedded mode: SQLite, jobs in threads). Both return the same views, so
output is identical either way. Modules: ``main`` (the app), ``cmds_*`` and ``repo_cmds``
(the verbs), ``front``/``remote``/``local`` (the interface), ``render`` (tables, progress).
"""
