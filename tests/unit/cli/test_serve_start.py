"""``volkeeper serve`` says it listens only once it does: a port in use, a database URL
that cannot be used or a database that cannot be opened is one clear error, and no
"listening on" line before it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.cmds_server import _announcing_server

REPO = Path(__file__).resolve().parents[3]


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    base |= {"VOLKEEPER_HOME": str(tmp_path / "home"),
             "VOLKEEPER_DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    return subprocess.run([sys.executable, "-m", "cli.main", "serve", *args],
                          env=base | env, cwd=REPO, capture_output=True, text=True, timeout=60)


def _refused(p: subprocess.CompletedProcess[str], error: str) -> None:
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "listening on" not in p.stderr and "console:" not in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr[-2000:]
    assert f"error: {error}" in p.stderr, p.stderr[-2000:]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_in_use_is_one_error_and_no_listening_line(
        tmp_path: Path, taken_port: int) -> None:
    p = _serve(tmp_path, "--port", str(taken_port))
    _refused(p, f"cannot listen on 127.0.0.1:{taken_port}: Address already in use")
    assert "--port" in p.stderr


def test_a_database_url_that_cannot_be_used_is_one_error_without_its_password(
        tmp_path: Path) -> None:
    p = _serve(tmp_path, "--port", "1", VOLKEEPER_DATABASE_URL="nosuchdb://vk:s3cretpw@h/x",
               VOLKEEPER_REDIS_URL="redis://127.0.0.1:1/0", VOLKEEPER_API_TOKEN="t0ken")
    _refused(p, "the database URL nosuchdb://vk:***@h/x cannot be used")
    assert "s3cretpw" not in p.stderr + p.stdout


def test_an_embedded_database_that_cannot_be_opened_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "home" / "volkeeper.db").mkdir(parents=True)  # not a file
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _refused(_serve(tmp_path, "--port", str(port)), "cannot reach the database sqlite:")


class _FakeServer:
    """What ``uvicorn.Server.startup`` does, as far as the announcement cares."""

    def __init__(self, fails: bool) -> None:
        self.fails, self.started, self.should_exit = fails, False, False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.fails:
            raise SystemExit(3)  # uvicorn: the application's start-up failed
        self.started = True


@pytest.mark.parametrize("fails", [False, True])
def test_the_listening_line_comes_only_after_a_successful_start(fails: bool) -> None:
    said: list[str] = []
    server = _announcing_server(_FakeServer, lambda: said.append("listening"))(fails)
    if fails:
        with pytest.raises(SystemExit):
            asyncio.run(server.startup())
    else:
        asyncio.run(server.startup())
    assert said == ([] if fails else ["listening"])
