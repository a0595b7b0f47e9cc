"""The FastAPI application: wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dovecote import __version__
from dovecote.auth.router import router as auth_router
from dovecote.community import service as community
from dovecote.community.router import router as community_router
from dovecote.core import api_docs, cors, handlers, openapi
from dovecote.core.broker import Broker, LocalBroker
from dovecote.core.db import create_database
from dovecote.core.handlers import error_body
from dovecote.core.middleware import BodySizeLimit
from dovecote.core.openapi import errors
from dovecote.core.ratelimit import RateLimiter
from dovecote.core.settings import Settings, get_settings
from dovecote.core.state import AppState
from dovecote.housekeeping import service as housekeeping
from dovecote.moderation.router import router as moderation_router
from dovecote.observability import metrics
from dovecote.observability import wiring as observability
from dovecote.pm.router import router as pm_router
from dovecote.realtime.hub import Hub
from dovecote.realtime.router import router as realtime_router
from dovecote.realtime.router import socket_router as realtime_socket_router
from dovecote.uploads.access import start_cleanup
from dovecote.uploads.router import router as uploads_router
from dovecote.uploads.storage import create_storage
from dovecote.user_settings.router import router as user_settings_router
from dovecote.users.router import router as users_router
from dovecote.webapp import router as webapp

log = logging.getLogger("dovecote")

DESCRIPTION = """Private messages between the members of a community, wire-compatible with
SelfCommunity's private-message API v2. Authenticate with `Authorization: Bearer <token>`
(a HS256 JWT or an OAuth 2.0 access token). Every error answer has the shape
`{"detail": ..., "errors": [{"code": ..., "message": ...}]}`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    secret = settings.jwt_secret_bytes()  # refuse to start with a bad secret, before serving
    community.check_overrides(settings)  # and with preferences the clients would not read

    lifespan = _lifespan(settings, secret)
    app = FastAPI(
        title="Dovecote",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # served from the package by core.api_docs, not from a CDN
        redoc_url=None,  # ReDoc would load from a CDN; /docs is the interactive documentation
    )
    handlers.install(app)
    app.add_middleware(BodySizeLimit, settings=settings)
    cors.install(app, settings)  # outermost: error answers carry the CORS headers too
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(moderation_router)
    app.include_router(user_settings_router)
    app.include_router(community_router)
    app.include_router(uploads_router)  # before pm: its /api/v2/pm/{id}/ would shadow ours
    app.include_router(realtime_router)  # before pm's: /api/v2/pm/events/ is not /{id}/
    app.include_router(realtime_socket_router)
    app.include_router(pm_router)
    _health(app)
    observability.install(app, settings)  # request ids, access log, /metrics
    api_docs.install(app)  # /docs, before the page's routes
    webapp.install(app, settings)  # last: the page's routes never shadow the API's
    openapi.install(app)
    return app


def _lifespan(
    settings: Settings, secret: bytes
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What a serving process holds: the database, live delivery, storage and background tasks."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = create_database(settings)
        # Live delivery: one hub of sockets per process, a broker between processes.
        hub = Hub(settings.ws_queue_size, db_concurrency=max(1, settings.db_pool_size // 2))
        broker = _broker(settings)
        await broker.start(hub)
        app.state.dovecote = AppState(
            settings, database, secret, broker, RateLimiter(settings, metrics.rate_limited), hub
        )
        app.state.uploads_storage = storage = create_storage(settings)
        background = [
            task
            for task in (
                start_cleanup(database, settings, storage),
                housekeeping.start(database, settings),
            )
            if task is not None
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await hub.close()  # sockets get 1001 before the database goes
            await broker.close()
            await database.dispose()

    return lifespan


def _broker(settings: Settings) -> Broker:
    if settings.redis_url:
        from dovecote.realtime.redis_broker import RedisBroker

        return RedisBroker(settings.redis_url, settings.live_channel)
    return LocalBroker()


def _health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: the database (and Redis, when configured) answers",
        responses=errors(503),
    )
    async def readyz() -> JSONResponse:
        state: AppState = app.state.dovecote
        try:
            async with state.database.reader.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse(
                error_body("The database is unavailable.", "database_unavailable"), 503
            )
        if state.settings.redis_url and not await _redis_answers(state.settings.redis_url):
            return JSONResponse(error_body("Redis is unavailable.", "redis_unavailable"), 503)
        return JSONResponse({"status": "ok"})


async def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except Exception as exc:
        log.warning("readiness check failed: Redis: %s", exc)
        return False
    finally:
        await client.aclose()
