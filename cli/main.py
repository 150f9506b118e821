"""``volkeeper`` — every verb of the product. Run ``volkeeper --help``.

Start-up stays light: the command modules import only Typer and this package; each
command imports what it needs (the embedded services, httpx, rich) when it runs."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from typing import Annotated

import typer

from cli import (
    cmds_catalog,
    cmds_jobs,
    cmds_security,
    cmds_server,
    evacuate_cmds,
    migrate_cmds,
    migrate_target_cmd,
    policy_cmds,
    repair_cmd,
    repo_cmds,
    startup,
)
from cli.front import CliError, Options

app = typer.Typer(help="Backup, restore and verify Docker volumes across a fleet of hosts.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None)


@app.callback()
def _global(
    server: Annotated[str | None, typer.Option(
        envvar="VOLKEEPER_SERVER", help="API URL; without it the CLI runs embedded.")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="VOLKEEPER_API_TOKEN", help="API bearer token.", show_default=False)] = None,
) -> None:
    Options.server, Options.token = server, token


for command in (cmds_server.serve, cmds_server.worker, cmds_catalog.volumes, cmds_jobs.backup,
                cmds_jobs.restore, cmds_jobs.verify, cmds_jobs.drill, cmds_jobs.rollback,
                cmds_catalog.backups, cmds_catalog.jobs,
                cmds_catalog.job, cmds_catalog.cancel, cmds_security.audit, repair_cmd.repair):
    app.command()(command)
app.command()(policy_cmds.apply)
app.command()(migrate_cmds.migrate)
app.command()(migrate_cmds.migrations)
app.command()(migrate_cmds.migration)
app.command()(evacuate_cmds.evacuate)
app.command()(evacuate_cmds.evacuations)
app.command()(evacuate_cmds.evacuation)
app.command("migrate-target")(migrate_target_cmd.migrate_target)
app.add_typer(policy_cmds.policy_app, name="policy")
app.add_typer(policy_cmds.retention_app, name="retention")
app.add_typer(cmds_security.tokens_app, name="tokens")
app.add_typer(cmds_catalog.targets_app, name="targets")
app.add_typer(cmds_catalog.hosts_app, name="hosts")
app.add_typer(cmds_server.db_app, name="db")
repo_cmds.register(app)


class _Quiet(logging.Handler):
    """One-shot commands: a library's warning is one plain line on stderr, no traceback.
    The warning of an embedded job that failed is left out: the command prints the job's
    error itself (``common.errors.OUTCOME``)."""

    def emit(self, record: logging.LogRecord) -> None:
        from common.errors import OUTCOME  # (loaded by whatever logged)

        if getattr(record, OUTCOME, False):
            return
        sys.stderr.write(f"volkeeper: {record.getMessage()}\n")


def main() -> None:
    """The console script: run the command, then end the process at once (see _exit)."""
    startup.pause()  # until the command's front is open (cli.startup)
    startup.no_plugins()
    try:
        _run()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    _exit(code or 0)


def _run() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = _Quiet(logging.WARNING)
        root.addHandler(handler)
    try:
        _only(sys.argv[1:])()
    except CliError as e:
        _error(e.message, e.hint)
        sys.exit(e.exit_code)
    except Exception as e:
        from common.errors import VolkeeperError

        if isinstance(e, VolkeeperError):
            _error(e.message, e.hint)
        else:
            logging.getLogger("volkeeper").debug("internal error", exc_info=True)
            _error(f"internal error ({type(e).__name__}: {e})",
                   "please report it; run with VOLKEEPER_LOG_LEVEL=DEBUG for details")
        sys.exit(1)


def _only(args: list[str]) -> typer.Typer:
    """``app`` with only the command (or command group) ``args`` invoke, when that is
    plain to see: Typer turns every registered command into a Click command before it
    parses (~50 of them, signatures and type hints read: ~20-40 ms of a short command).
    ``--help``, an unknown name or an unusual option go to the whole ``app``."""
    name, rest = None, iter(args)
    for arg in rest:
        if arg in ("--server", "--token"):
            next(rest, None)
        elif not arg.startswith(("--server=", "--token=")):
            name = None if arg.startswith("-") else arg
            break
    if name is None:
        return app
    from typer.main import get_command_name

    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else ""))
                == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if len(commands) + len(groups) != 1:
        return app
    one = copy.copy(app)
    one.registered_commands, one.registered_groups = commands, groups
    return one


def _exit(code: int) -> None:
    """End without the interpreter's teardown. Every command has finished its work here
    (jobs waited for, the database closed, worker processes told to stop); what is left is
    freeing the heap object by object and unloading ~800 modules, 0.05-0.15 s of a short
    command's time. Output and logs are flushed first; the kernel closes the files."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def _error(message: str, hint: str | None) -> None:
    from cli.render import err

    err().print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    if hint:
        err().print(f"[yellow]hint:[/] {hint}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
