"""An API client over any httpx transport: remote HTTP or the in-process embedded app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import httpx

from common.config import Settings


class CliError(Exception):
    """An error to show the user: message, optional hint, exit code."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.hint, self.exit_code = message, hint, exit_code


class ApiClient:
    def __init__(self, http: httpx.Client, embedded: bool) -> None:
        self.http = http
        self.embedded = embedded

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, "/api/v1" + path, **kwargs)
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach the volkeeper API: {e}",
                           "check --server / VOLKEEPER_SERVER and that `volkeeper serve` runs"
                           ) from e
        if resp.status_code >= 400:
            try:
                err = resp.json().get("error", {})
            except ValueError:
                err = {"message": resp.text[:500]}
            raise CliError(err.get("message", f"HTTP {resp.status_code}"), err.get("hint"))
        if resp.status_code == 204:
            return None
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params={k: v for k, v in params.items()
                                                   if v is not None})


@contextlib.contextmanager
def open_client(settings: Settings, server: str | None, token: str | None,
                volume_sizes: bool = False) -> Iterator[ApiClient]:
    """A remote client when a server is named, else an embedded in-process one (whose
    inventory measures volume sizes only with ``volume_sizes``)."""
    if server:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as http:
            yield ApiClient(http, embedded=False)
        return
    if settings.mode == "fleet":
        raise CliError("VOLKEEPER_DATABASE_URL is set but no --server was given",
                       "pass --server URL (or VOLKEEPER_SERVER) to talk to the fleet API")
    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)
    from fastapi.testclient import TestClient

    from api.main import create_app
    from common.jobs.embedded import EmbeddedRuntime

    logging.getLogger("common.jobs").setLevel(logging.WARNING)
    runtime = EmbeddedRuntime(settings, background=False)
    runtime.start(volume_sizes=volume_sizes)
    try:
        app = create_app(settings, dispatcher=runtime.dispatcher, bus=runtime.bus,
                         db=runtime.db)
        with TestClient(app, base_url="http://embedded",
                        raise_server_exceptions=False) as http:
            yield ApiClient(http, embedded=True)
    finally:
        runtime.close()
