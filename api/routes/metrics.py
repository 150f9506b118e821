"""``GET /metrics``: Prometheus text format, computed from the database at scrape time
(``common.metrics``), at the root like every exporter's (not under ``/api/v1``).

Authentication: a bearer token — the scrape-only ``VOLKEEPER_METRICS_TOKEN`` or any API
token (viewer or above); ``VOLKEEPER_METRICS_PUBLIC=true`` serves it without one (volume
and host names are not for everyone)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import State, authenticate
from common import metrics
from common.errors import Unauthorized

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request, state: State) -> Response:
    await run_in_threadpool(_allow, request, state)
    body, content_type = await run_in_threadpool(metrics.render, state.db, state.settings)
    return Response(body, media_type=content_type)


def _allow(request: Request, state: State) -> None:
    s = state.settings
    if s.metrics_public:
        return
    given = request.headers.get("authorization", "").partition(" ")[2].strip()
    if s.metrics_token and given and hmac.compare_digest(
            given.encode(), s.metrics_token.get_secret_value().encode()):
        return
    try:
        authenticate(request, state)
    except Unauthorized:
        raise Unauthorized("GET /metrics needs a bearer token",
                           "configure Prometheus with `authorization: {credentials: TOKEN}` "
                           "using VOLKEEPER_METRICS_TOKEN or an API token (viewer); or set "
                           "VOLKEEPER_METRICS_PUBLIC=true") from None
