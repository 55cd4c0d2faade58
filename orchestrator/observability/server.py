"""The HTTP face of a process for operators: `/metrics`, `/healthz` and `/readyz`.

Workers serve it beside their polling (`ORCHESTRATOR_METRICS_PORT`); `orchestrator api`
serves it as the API process, with the approvals API mounted beside them. Gauges that
describe shared state, such as approvals pending, are read from the store at scrape time,
so every process reports the same number whichever worker recorded the request; so are
sessions by status.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from orchestrator.exceptions import OrchestratorError, StoreError
from orchestrator.logs import get_logger
from orchestrator.observability.metrics import METRICS, Metrics
from orchestrator.scripted_model import LoopbackServer
from orchestrator.store.records import ApprovalStatus, SessionStatus
from orchestrator.store.store import Store

__all__ = ["health_app", "serve_http"]

log = get_logger(__name__)


def health_app(
    store: Store, metrics: Metrics = METRICS, routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """The operator endpoints of one process, over its store and metrics, plus `routes`."""

    async def metrics_endpoint(request: Request) -> Response:
        try:
            pending = await store.list_approvals(status=ApprovalStatus.PENDING)
            metrics.approvals_pending.set(len(pending))
            counts = await store.reports.session_counts()
            for status in SessionStatus:
                metrics.sessions.labels(status.value).set(counts.get(status.value, 0))
        except StoreError as exc:
            # The rest of the page is still worth scraping; the gauge keeps its last value.
            log.warning("metrics: store unreadable", error=str(exc))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        try:
            await store.list_sessions(limit=1)
        except StoreError as exc:
            return PlainTextResponse(f"store unavailable: {exc}\n", status_code=503)
        return PlainTextResponse("ready\n")

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *routes,
        ]
    )


HTTP = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
"""uvicorn's HTTP parser for the served processes: httptools (C) when installed, which
parses a request in a fraction of h11's time (bench/README.md, gateway), else h11."""


@contextlib.asynccontextmanager
async def serve_http(
    store: Store,
    *,
    host: str,
    port: int | None,
    required: bool = False,
    routes: Sequence[BaseRoute] = (),
) -> AsyncIterator[str | None]:
    """Serve `health_app` on `host:port` while the block runs; yields its URL.

    Args:
        store: The process's store.
        host: Interface to bind (`0.0.0.0` in a container).
        port: Port to bind; 0 picks a free one; None serves nothing (yields None).
        required: Fail when the port cannot be bound, instead of logging a warning and
            going on without it (a worker still works without its metrics page).
        routes: More routes to serve beside the operator ones (the API process's
            approvals API).

    Raises:
        OrchestratorError: `required` and the server could not start.
    """
    if port is None:
        yield None
        return
    server = LoopbackServer(health_app(store, routes=routes), host=host, port=port, http=HTTP)
    try:
        await server.__aenter__()
    except (OSError, OrchestratorError) as exc:
        if required:
            raise OrchestratorError(f"cannot serve metrics on {host}:{port}: {exc}") from None
        log.warning("metrics endpoint not started", host=host, port=port, error=str(exc))
        yield None
        return
    log.info("metrics endpoint", url=f"{server.url}/metrics")
    try:
        yield server.url
    finally:
        await server.__aexit__(None, None, None)
