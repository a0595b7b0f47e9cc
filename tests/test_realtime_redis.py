"""Live delivery across server processes through Redis (skipped without a test Redis)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket as sockets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from dovecote.app import create_app
from dovecote.core.settings import Settings
from tests.conftest import PG_URL, REDIS_URL, SECRET, World
from tests.pm_support import send
from tests.realtime_helpers import HEARTBEAT, WAIT, frames, next_frame, serving, socket

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="DOVECOTE_TEST_REDIS_URL is not set")

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def channel() -> str:
    return f"dovecote:test:{secrets.token_hex(6)}"  # runs sharing the Redis stay apart


@pytest.fixture
def settings_overrides(channel: str) -> dict[str, Any]:
    # No periodic re-check: what is recovered here is recovered by the broker's resync.
    return {"redis_url": REDIS_URL, "live_channel": channel, "ws_recheck_seconds": 3600}


@pytest.fixture
async def second_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """Another server process in all but name: its own hub, broker and database engines."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def second_base(second_app: FastAPI) -> AsyncIterator[str]:
    async with serving(second_app) as url:
        yield url


class LossyRedis:
    """While `dropping`, the first app's PUBLISHes never reach Redis (a lost message)."""

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        connection = app.state.dovecote.broker._publisher
        self._publish = connection.publish
        self.dropping = False
        self.dropped = 0
        self._changed = asyncio.Condition()
        monkeypatch.setattr(connection, "publish", self.publish)

    async def publish(self, channel: str, payload: bytes) -> int:
        if not self.dropping:
            return int(await self._publish(channel, payload))
        async with self._changed:
            self.dropped += 1
            self._changed.notify_all()
        return 0

    async def wait_dropped(self, count: int) -> None:
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: self.dropped >= count)


def ids(data: Sequence[dict[str, Any]]) -> list[int]:
    return [d["event_id"] for d in data]


async def test_a_message_crosses_to_a_socket_held_by_another_process(
    client: httpx.AsyncClient, world: World, second_base: str
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    async with socket(second_base, bruno.token) as ws:
        message_id = (await send(client, anna, bruno, text="across"))["id"]
        data = await next_frame(ws)
    assert data["notification_obj"]["message"]["id"] == message_id


async def test_messages_lost_by_redis_are_recovered_live_and_on_reconnect(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    second_base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    lossy = LossyRedis(app, monkeypatch)
    async with socket(second_base, bruno.token) as ws:
        await send(client, anna, bruno, text="heard")
        assert (await next_frame(ws))["event_id"] == 1
        lossy.dropping = True
        lost = [(await send(client, anna, bruno, text=f"lost {i}"))["id"] for i in range(2)]
        await lossy.wait_dropped(2)
        lossy.dropping = False
        heard = (await send(client, anna, bruno, text="heard again"))["id"]  # reveals the gap
        live = await frames(ws, 3)
    assert ids(live) == [2, 3, 4]
    assert [d["notification_obj"]["message"]["id"] for d in live] == [*lost, heard]

    lossy.dropping = True
    away = [(await send(client, anna, bruno, text=f"while away {i}"))["id"] for i in range(2)]
    await lossy.wait_dropped(4)
    async with socket(second_base, bruno.token, since=4) as ws:
        replayed = await frames(ws, 2)
    assert ids(replayed) == [5, 6]
    assert [d["notification_obj"]["message"]["id"] for d in replayed] == away


async def test_a_dropped_subscription_resyncs_every_socket(
    client: httpx.AsyncClient,
    app: FastAPI,
    second_app: FastAPI,
    world: World,
    second_base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    lossy = LossyRedis(app, monkeypatch)
    async with socket(second_base, bruno.token) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        lossy.dropping = True
        lost = (await send(client, anna, bruno, text="published while the link was down"))["id"]
        await lossy.wait_dropped(1)
        await kill_subscription(second_app.state.dovecote.broker.client_name)
        data = await next_frame(ws)  # no new nudge: the resubscription's resync finds it
    assert (data["event_id"], data["notification_obj"]["message"]["id"]) == (1, lost)


async def kill_subscription(client_name: str) -> None:
    assert REDIS_URL
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        for entry in await admin.client_list():
            if entry.get("name") == client_name and "P" in entry.get("flags", ""):
                await admin.client_kill_filter(_id=entry["id"])
                return
        raise AssertionError("the second process holds no subscription")
    finally:
        await admin.aclose()


# --- real server processes -------------------------------------------------------------------


def free_port() -> int:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def processes(database_url: str, channel: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `uvicorn dovecote.app:create_app` processes sharing PostgreSQL and Redis."""
    if not PG_URL:
        pytest.skip("two processes need DOVECOTE_TEST_DATABASE_URL (PostgreSQL)")
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "DOVECOTE_DATABASE_URL": database_url,
        "DOVECOTE_REDIS_URL": REDIS_URL or "",
        "DOVECOTE_LIVE_CHANNEL": channel,
        "DOVECOTE_JWT_SECRET": SECRET,
        "DOVECOTE_RATELIMIT_ENABLED": "false",
        "DOVECOTE_DATA_DIR": str(tmp_path / "processes"),
    }
    ports = [free_port(), free_port()]
    command = [sys.executable, "-m", "uvicorn", "dovecote.app:create_app", "--factory"]
    running = [
        subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(p), "--log-level", "warning"],
            env=env,
        )
        for p in ports
    ]
    try:
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()


async def ready(url: str) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def test_two_server_processes_deliver_to_each_others_sockets(
    world: World, processes: list[str]
) -> None:
    first, second = processes
    await asyncio.gather(ready(first), ready(second))
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    as_ws = [url.replace("http://", "ws://") for url in processes]
    async with (
        httpx.AsyncClient(base_url=first) as via_first,
        httpx.AsyncClient(base_url=second) as via_second,
        socket(as_ws[1], bruno.token) as bruno_on_second,
        socket(as_ws[0], bruno.token) as bruno_on_first,
        socket(as_ws[0], anna.token) as anna_on_first,
    ):
        sent = (await send(via_first, anna, bruno, text="from the first process"))["id"]
        for ws in (bruno_on_second, bruno_on_first, anna_on_first):
            assert (await next_frame(ws))["notification_obj"]["message"]["id"] == sent
        reply = (await send(via_second, bruno, anna, text="from the second process"))["id"]
        data = await next_frame(anna_on_first)
        assert data["notification_obj"]["message"]["id"] == reply
        assert data["notification_obj"]["message"]["sender"]["username"] == "bruno"
