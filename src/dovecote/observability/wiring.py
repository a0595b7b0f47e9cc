"""The application's wiring for metrics and logs (called once, by app.create_app)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from dovecote.core.errors import AuthenticationFailed, NotAuthenticated, NotFound
from dovecote.core.settings import Settings
from dovecote.observability import metrics, pools
from dovecote.observability.middleware import Observe

MIN_TOKEN_LENGTH = 16


def metrics_token(settings: Settings) -> bytes | None:
    """The configured /metrics token; ValueError (naming the setting, not echoing the value)
    when it is too short to be a secret."""
    if settings.metrics_token is None:
        return None
    token = settings.metrics_token.get_secret_value()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"DOVECOTE_METRICS_TOKEN must be at least {MIN_TOKEN_LENGTH} characters long; "
            f"it is {len(token)}."
        )
    return hashlib.sha256(token.encode()).digest()


def install(app: FastAPI, settings: Settings) -> None:
    token = metrics_token(settings)
    _outermost(app)
    _watch_pools(app)
    _metrics_route(app, token)


def _outermost(app: FastAPI) -> None:
    """Observe outside Starlette's ServerErrorMiddleware, which `add_middleware` cannot reach:
    a 500 must carry its request id and be counted like any other answer."""
    build = app.build_middleware_stack

    def build_observed() -> ASGIApp:
        return Observe(build())

    app.build_middleware_stack = build_observed  # type: ignore[method-assign]


def _watch_pools(app: FastAPI) -> None:
    """Wrap the app's lifespan: pool gauges from the moment its database exists."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            watcher = pools.PoolWatcher(application.state.dovecote.database)
            watcher.start()
            try:
                yield state
            finally:
                await watcher.stop()

    app.router.lifespan_context = lifespan


def _metrics_route(app: FastAPI, token: bytes | None) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        if token is None:  # not published on the API's address unless a token is set
            raise NotFound()
        scheme, _, offered = request.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(offered.strip().encode()).digest()
        if scheme.lower() != "bearer" or not offered:
            raise NotAuthenticated()
        if not hmac.compare_digest(digest, token):
            raise AuthenticationFailed()
        pools.sample_all()
        body, content_type = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=content_type)
