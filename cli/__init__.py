"""The ``volkeeper`` command (Typer + rich). Every command is a client of the REST API:
with ``--server URL`` over HTTP, without it against the same API app hosted in-process
(embedded mode), so there is one code path for both."""
