"""Live sockets that must go: idle, too slow, revoked, deleted user, server shutting down."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dovecote.auth import service as auth_service
from dovecote.core.db import standalone_unit
from dovecote.realtime import service
from dovecote.realtime.serving import GracefulServer
from tests.conftest import World
from tests.pm_support import send
from tests.realtime_helpers import (
    HEARTBEAT,
    WAIT,
    closed_with,
    next_frame,
    running,
    socket,
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ws_queue_size": 2, "ws_recheck_seconds": 0.2}


async def oauth_token(client: httpx.AsyncClient, app: FastAPI, world: World) -> tuple[str, str]:
    """(client_id, access token) for a new user `olga` with a password."""
    await world.user("olga", password="olga-secret-pw")
    state = app.state.dovecote
    async with standalone_unit(state.database) as uow:
        ctx = auth_service.Context(uow, state.settings, state.jwt_secret)
        client_id, _ = await auth_service.create_client(ctx, "app", confidential=False)
    response = await client.post(
        "/oauth/token/",
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": "olga",
            "password": "olga-secret-pw",
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return client_id, token


async def test_a_consumer_that_cannot_keep_up_is_closed_with_1013(
    base: str, client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    stuck = asyncio.Event()

    async def never_done(*_args: Any) -> Any:  # the writer hangs, as on a dead TCP peer
        stuck.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(service, "frames_after", never_done)
    async with socket(base, bruno.token, since=0) as ws:  # the writer hangs from the start
        await asyncio.wait_for(stuck.wait(), WAIT)
        for i in range(3):  # the mailbox holds 2 nudges
            await send(client, anna, bruno, text=f"message {i}")
        assert await closed_with(ws) == 1013


async def test_revoking_the_token_closes_its_sockets_at_once(
    base: str, client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    client_id, token = await oauth_token(client, app, world)
    async with socket(base, token) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        response = await client.post(
            "/oauth/revoke_token/", data={"client_id": client_id, "token": token}
        )
        assert response.status_code == 200
        assert await closed_with(ws) == 4401


async def test_a_deleted_user_loses_open_sockets(base: str, world: World) -> None:
    anna = await world.user("anna")
    async with socket(base, anna.token) as ws:
        await world.sql("UPDATE users SET deleted = :yes WHERE id = :id", yes=True, id=anna.id)
        assert await closed_with(ws) == 4401


async def test_a_lost_nudge_is_recovered_by_the_periodic_check(
    base: str,
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)

    async def lost(_events: Any) -> None:
        return None

    async with socket(base, bruno.token) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        monkeypatch.setattr(app.state.dovecote.broker, "publish", lost)
        await send(client, anna, bruno, text="nobody nudged")
        data = await next_frame(ws)
    assert data["event_id"] == 1


async def test_shutdown_closes_sockets_with_1001(base: str, app: FastAPI, world: World) -> None:
    anna = await world.user("anna")
    async with socket(base, anna.token) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        await app.state.dovecote.hub.close()
        assert await closed_with(ws) == 1001


async def test_a_server_shutting_down_says_1001_before_uvicorn_would_say_1012(
    app: FastAPI, world: World
) -> None:
    anna = await world.user("anna")
    async with running(GracefulServer, app) as (url, server), socket(url, anna.token) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        server.should_exit = True  # what SIGTERM does
        assert await closed_with(ws) == 1001
