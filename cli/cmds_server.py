"""Long-running and admin commands: serve, worker, db upgrade. They are the composition
root's business: ``serve`` hands uvicorn the API's factory by name, ``worker`` loads the
worker side by name (the one place the CLI reaches ``workers``, lazily)."""

from __future__ import annotations

import errno
import importlib
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import startup
from cli.front import CliError
from cli.render import err

if TYPE_CHECKING:
    from common.config import Settings

LOCAL = ("127.0.0.1", "localhost", "::1")


def _settings() -> Settings:
    from cli.settings import settings

    return settings()


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("botocore", "urllib3", "docker", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(
    bind: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the API and the web console (embedded: with the in-process worker)."""
    startup.resume()  # a server runs with the cyclic collector on
    import uvicorn

    settings = _settings()
    bind = bind or settings.bind
    port = port or settings.port
    if settings.mode == "embedded" and bind not in LOCAL:
        raise CliError(f"embedded mode listens on 127.0.0.1 only, not {bind}",
                       "run the fleet (VOLKEEPER_DATABASE_URL, VOLKEEPER_REDIS_URL, "
                       "VOLKEEPER_API_TOKEN) to serve other machines")
    _logging(settings.log_level)
    _database_ready(settings)
    # uvicorn's own start-up and request lines stay quiet (its warnings and errors show);
    # ours says where it listens, once it does. VOLKEEPER_LOG_LEVEL=DEBUG brings them back.
    debug = settings.log_level.upper() == "DEBUG"
    sockets = _listen(bind, port)  # a port in use is one clear error, before the app starts
    base_url = f"http://{'[::1]' if bind == '::1' else bind}:{port}"
    if settings.mode == "embedded":
        from common.auth import ensure_token_file

        ensure_token_file(settings)

    def started() -> None:
        err().print(f"volkeeper ({settings.mode}) listening on http://{bind}:{port}",
                    highlight=False)
        if settings.mode == "embedded":
            _print_login(settings, base_url)

    config = uvicorn.Config("api.main:app_from_env", factory=True,
                            log_level="debug" if debug else "warning", access_log=debug,
                            log_config=None)
    server = _announcing_server(uvicorn.Server, started)(config)
    try:
        server.run(sockets=sockets)
    except SystemExit as e:
        if server.started:
            raise
        raise CliError("volkeeper serve did not start: the application's start-up failed "
                       "(the error is above)", "fix what it names and start it again; "
                       "VOLKEEPER_LOG_LEVEL=DEBUG shows more") from e
    finally:
        for sock in sockets:
            sock.close()
    if not server.started:
        raise CliError("volkeeper serve did not start (the error is above)",
                       "VOLKEEPER_LOG_LEVEL=DEBUG shows more")


def _listen(bind: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``bind`` names (as uvicorn binds them); a port in
    use or an address this machine does not have is a CliError saying which."""
    try:
        infos = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CliError(f"cannot listen on {bind}: {e.strerror}",
                       "give an address of this machine with --bind or VOLKEEPER_BIND"
                       ) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in infos:
            if any(s.family == family and s.getsockname()[:2] == address[:2]
                   for s in sockets):
                continue  # the same address twice (getaddrinfo lists duplicates)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(2048)
    except OSError as e:
        for sock in sockets:
            sock.close()
        hint = ("another process listens there (another volkeeper serve?): stop it, or "
                "choose another port with --port or VOLKEEPER_PORT"
                if e.errno == errno.EADDRINUSE else
                "give an address and port this user may listen on (--bind/--port or "
                "VOLKEEPER_BIND/VOLKEEPER_PORT)")
        raise CliError(f"cannot listen on {bind}:{port}: {e.strerror}", hint) from None
    return sockets


def _announcing_server(base: type[Any], started: Callable[[], None]) -> type[Any]:
    """``base`` (``uvicorn.Server``) calling ``started`` once its start-up has succeeded
    (the application's start-up done, its sockets serving) — never before, never when
    it fails."""

    class AnnouncingServer(base):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                started()

    return AnnouncingServer


def _database_ready(settings: Settings) -> None:
    """The database (the fleet's, or embedded SQLite) reached and migrated before uvicorn
    starts: a database that is down or cannot be opened is one clear error
    (``common.db.migrate``), not a traceback of the app's start-up (whose own upgrade
    then finds the schema current)."""
    from common.db import Database
    from common.db.migrate import upgrade

    db = Database(settings.effective_database_url)
    try:
        upgrade(db, quiet=settings.mode == "embedded")
    finally:
        db.dispose()


def _print_login(settings: Settings, base_url: str) -> None:
    """One line: the console login link on a terminal (the token rides in the fragment);
    where the output is kept (a service's log) only where the token file is."""
    import sys

    from common.auth import ensure_token_file, login_url, token_file

    secret = ensure_token_file(settings)
    if sys.stderr.isatty():
        err().print(f"console: {login_url(base_url, secret)}", highlight=False, soft_wrap=True)
    else:
        err().print(f"console: {base_url}/login (token: the content of "
                    f"{token_file(settings)})", highlight=False, soft_wrap=True)


def worker(
    host: Annotated[str, typer.Option(help="Name of this Docker host (queue host.NAME).")],
    concurrency: Annotated[int, typer.Option(help="Long jobs run at once.")] = 2,
    quick_only: Annotated[bool, typer.Option(
        "--quick-only", hidden=True, help="Internal: the quick-task consumer.")] = False,
) -> None:
    """Run the Celery worker of one Docker host (fleet). It also starts the host's quick
    lane: a child consumer for dry runs and inventory, so they never wait behind backups."""
    startup.resume()  # a worker runs with the cyclic collector on
    from common.config import get_settings

    os.environ["VOLKEEPER_HOST_NAME"] = host
    get_settings.cache_clear()
    settings = _settings()
    if not settings.redis_url or not settings.database_url:
        raise CliError("a worker needs VOLKEEPER_REDIS_URL and VOLKEEPER_DATABASE_URL",
                       "set both to the control plane's Redis and PostgreSQL")
    _logging(settings.log_level)
    # the composition root's one reach into the worker side, by name
    importlib.import_module("workers.worker").run_worker(
        host, concurrency=concurrency, quick_only=quick_only)


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (API and workers also do this on start)."""
    startup.resume()
    from common.db import Database
    from common.db.migrate import stored_revision, upgrade

    db = Database(_settings().effective_database_url)
    upgrade(db)
    err().print(f"database at revision {stored_revision(db)}", highlight=False)
