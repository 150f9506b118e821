"""``DockerHost.version`` on a unix socket: Docker Engine's ``Server`` header of
``/_ping`` when it carries the version, ``/version`` otherwise (another engine, a proxy)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.docker import DockerHost
from common.errors import DockerError


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    server_header = ""
    asked: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Engine

    def version_string(self) -> str:
        return self.server.server_header

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        body = b"OK" if self.path == "/_ping" else json.dumps({"Version": "9.9.9"}).encode()
        status = 500 if self.server.server_header == "broken" else 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[_Engine]:
    server = _Engine(str(tmp_path / "docker.sock"), _Handler)
    server.asked = []
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_docker_engine_tells_its_version_in_the_ping_answer(engine: _Engine) -> None:
    engine.server_header = "Docker/20.10.24+dfsg1 (linux)"
    assert DockerHost(f"unix://{engine.server_address}").version() == "20.10.24+dfsg1"
    assert engine.asked == ["/_ping"]


@pytest.mark.parametrize("header", ["Libpod/4.3.1 (linux)", "", "Docker"])
def test_another_server_header_asks_the_version_endpoint(engine: _Engine,
                                                         header: str) -> None:
    engine.server_header = header
    assert DockerHost(f"unix://{engine.server_address}").version() == "9.9.9"
    assert engine.asked == ["/_ping", "/version"]


def test_an_error_answer_is_a_docker_error(engine: _Engine) -> None:
    engine.server_header = "broken"
    with pytest.raises(DockerError):
        DockerHost(f"unix://{engine.server_address}").version()


def test_a_dead_socket_is_a_docker_error(tmp_path: Path) -> None:
    with pytest.raises(DockerError):
        DockerHost(f"unix://{tmp_path}/none.sock").version()
