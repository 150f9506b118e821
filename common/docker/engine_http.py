"""Plain JSON requests to a Docker engine on a unix socket with the standard library alone.

A one-shot command that only looks (``volkeeper volumes``: the engine's version, its
volumes, the containers using them, their sizes) needs three or four ``GET`` requests, and
a backup or restore a few more (inspect or create its volume); the Docker SDK with
requests and urllib3 costs ~70 ms and ~8-10 MiB of such a command to import.
``request_json`` does them with ``http.client`` over the socket. Everything else
(streams, exec, events, container control, TCP and TLS engines) goes through the SDK
(``adapter``).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from typing import Any
from urllib.parse import urlencode

UNIX_PREFIX = "unix://"
#: the ``Server`` header Docker Engine sends with every answer: ``Docker/<version> (<os>)``
_SERVER = re.compile(r"Docker/(\S+) \(")


class EngineError(Exception):
    """The engine answered with an error status; ``status`` and its ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_path(base_url: str) -> str | None:
    """The socket's path of a ``unix://`` engine URL; None for any other kind."""
    if base_url.startswith(UNIX_PREFIX):
        return "/" + base_url[len(UNIX_PREFIX):].lstrip("/")
    return None


def get_json(path: str, endpoint: str, timeout: float, **params: Any) -> Any:
    """``GET endpoint?params`` on the engine listening on the unix socket ``path``, decoded.

    Raises ``OSError`` when the engine cannot be reached (or stops answering) and
    ``EngineError`` for an error status."""
    return request_json(path, "GET", endpoint, timeout, **params)


def request_json(path: str, method: str, endpoint: str, timeout: float,
                 body: Any = None, **params: Any) -> Any:
    """``METHOD endpoint?params`` (with ``body`` as JSON, if given) on the engine on the
    unix socket ``path``; the decoded answer (None when it has no body). Raises like
    ``get_json``."""
    query = f"?{urlencode(params)}" if params else ""
    headers = {"Host": "docker"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = _UnixConnection(path, timeout)
    try:
        conn.request(method, endpoint + query, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except http.client.HTTPException as e:
        raise ConnectionError(f"bad answer from the engine: {e}") from e
    finally:
        conn.close()
    if response.status >= 400:
        try:
            message = str(json.loads(raw).get("message") or "")
        except (ValueError, AttributeError):
            message = raw[:200].decode(errors="replace")
        raise EngineError(response.status, message or response.reason)
    return json.loads(raw) if raw else None


def server_version(path: str, timeout: float) -> str | None:
    """The engine's version as its ``Server`` header tells it, from ``GET /_ping`` (a
    fraction of a millisecond; ``/version`` asks containerd and runc too: ~4 ms). None
    when the header is not Docker Engine's (another engine, a proxy): ask ``/version``.
    Raises like ``get_json``."""
    conn = _UnixConnection(path, timeout)
    try:
        conn.request("GET", "/_ping", headers={"Host": "docker"})
        response = conn.getresponse()
        response.read()
    except http.client.HTTPException as e:
        raise ConnectionError(f"bad answer from the engine: {e}") from e
    finally:
        conn.close()
    if response.status >= 400:
        raise EngineError(response.status, response.reason)
    found = _SERVER.match(response.getheader("Server") or "")
    return found.group(1) if found else None
