"""Transport-level guards: the trusted-Host check and the OpenAPI docs behind a token.

Embedded, the API answers only requests whose Host header names loopback (127.0.0.1,
localhost, [::1], any port): a web page that re-points its own DNS name at 127.0.0.1 (DNS
rebinding) sends its own name and is refused with 400. In the fleet the names come from
``VOLKEEPER_ALLOWED_HOSTS`` (default: any; the loopback names always). No CORS headers
are ever sent, so browsers keep other sites' scripts from reading any answer.

A path or query parameter holding a NUL character is refused with 422 before any route
runs (the request bodies' models refuse it too: ``common.jobs.inputs.Input``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import Viewer
from common.config import Settings
from common.jobs.inputs import text_problem

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})

#: Swagger UI for ``/api/docs``, from the CDN FastAPI names, but one exact version held
#: to its files' hashes (subresource integrity): the page runs on the API's origin, where
#: the console's session cookie works, so a changed or unpinned script (FastAPI's default:
#: ``swagger-ui-dist@5``, whatever 5.x is newest) must not run. The hashes are those of
#: the files in the npm package swagger-ui-dist 5.36.0, which the CDN serves as they are.
#: No favicon from a third site. Air-gapped, the page stays empty: read
#: ``/api/v1/openapi.json`` instead.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0"
SWAGGER_JS_SRI = "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
SWAGGER_CSS_SRI = "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc"
DOCS_PAGE = f"""<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css" integrity="{SWAGGER_CSS_SRI}"
 crossorigin="anonymous">
<title>volkeeper API</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js" integrity="{SWAGGER_JS_SRI}"
 crossorigin="anonymous"></script>
<script>
SwaggerUIBundle({{url: "/api/v1/openapi.json", dom_id: "#swagger-ui", layout: "BaseLayout",
  deepLinking: true, showExtensions: true, showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis]}});
</script>
</body>
</html>
"""


def host_name(header: str) -> str:
    """The name of a Host header without its port (``[::1]:8470`` → ``[::1]``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def allowed_names(settings: Settings) -> frozenset[str] | None:
    """The Host names this API answers; None: any."""
    if settings.mode == "embedded":
        return LOOPBACK_NAMES
    names = settings.host_names  # loopback stays allowed (the container's health check)
    return None if names is None else frozenset(names) | LOOPBACK_NAMES


def install_host_check(app: FastAPI, settings: Settings) -> None:
    allowed = allowed_names(settings)
    if allowed is None:
        return
    if settings.mode == "embedded":
        hint = ("embedded mode answers on loopback only: open http://127.0.0.1:PORT (or "
                "localhost, [::1]); to serve other machines run the fleet")
    else:
        hint = ("use one of the names this API answers, or add this one to "
                "VOLKEEPER_ALLOWED_HOSTS: " + ", ".join(sorted(allowed)))

    @app.middleware("http")
    async def trusted_host(request: Request,
                           call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("host", "")
        if host_name(given) not in allowed:
            return JSONResponse({"error": {
                "code": "untrusted_host",
                "message": f"this API does not answer requests for host {given[:200]!r}",
                "hint": hint}}, 400)
        return await call_next(request)


def install_openapi(app: FastAPI, v1: APIRouter) -> None:
    """``/api/v1/openapi.json`` and ``/api/docs``, each behind a token (any role; the
    console's session cookie works, so the docs open after the console login)."""

    @v1.get("/openapi.json", include_in_schema=False)
    def openapi(_user: Viewer) -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/docs", include_in_schema=False)
    def docs(_user: Viewer) -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE, headers={"Cache-Control": "no-cache",
                                                "Referrer-Policy": "no-referrer"})


def install_text_check(app: FastAPI) -> None:
    """422 for a NUL character in the path or a query parameter (found by fuzzing: on
    PostgreSQL ``GET /volumes?host=%00`` reached the database, which refuses it: a 500)."""

    @app.middleware("http")
    async def storable_text(request: Request,
                            call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        problem = text_problem(request.url.path, "the path") or text_problem(
            dict(request.query_params.multi_items()), "the query")
        if problem:
            return JSONResponse({"error": {
                "code": "invalid_input", "message": f"invalid request: {problem}",
                "hint": "send text without NUL characters"}}, 422)
        return await call_next(request)
