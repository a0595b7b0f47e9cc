"""Helpers for the live-delivery tests: a real server on a free port and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

HEARTBEAT = "--1a61c1de89b75ddfbb684b8d224ee3ae--"
WAIT = 10.0  # seconds to wait for something that must happen; never a timing assertion


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (its lifespan already running) with uvicorn on a free port; yield ws://..."""
    async with running(uvicorn.Server, app) as (url, _server):
        yield url


@asynccontextmanager
async def running(
    server_class: type[uvicorn.Server], app: FastAPI
) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = server_class(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task


def notify_url(base: str, since: int | None = None, path: str = "/ws/notify") -> str:
    url = f"{base}{path}?subscribe-user"
    return url if since is None else f"{url}&since={since}"


def socket(base: str, token: str, *, since: int | None = None, path: str = "/ws/notify") -> Any:
    """Open /ws/notify the way the SelfCommunity WSClient does (token as `__<token>`)."""
    return connect(
        notify_url(base, since, path),
        subprotocols=[Subprotocol(f"__{token}")],
        open_timeout=WAIT,
        ping_interval=None,
    )


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        raw = await ws.recv()
    assert isinstance(raw, str)
    frame: dict[str, Any] = json.loads(raw)
    assert frame["type"] == "interaction"
    data: dict[str, Any] = frame["data"]
    return data


async def frames(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_frame(ws) for _ in range(count)]


async def closed_with(ws: ClientConnection) -> int | None:
    """Wait for the server to close the socket; its close code."""
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
    return ws.close_code
