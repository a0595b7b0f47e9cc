"""The database goes away under load: 503s in bounded time, then recovery on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, World
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs DOVECOTE_TEST_DATABASE_URL (PostgreSQL)")


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(database_url)
    tcp = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await tcp.start()
    yield tcp
    await tcp.cut()


@pytest.fixture
def settings_overrides(proxy: TcpProxy, database_url: str) -> dict[str, Any]:
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return {
        "database_url": through_proxy.render_as_string(hide_password=False),
        "db_timeout_seconds": 1.0,
    }


async def _send(
    client: httpx.AsyncClient, sender: Any, recipient: Any, text: str
) -> httpx.Response:
    return await client.post(
        "/api/v2/pm/", json={"recipients": [recipient.id], "message": text}, headers=sender.auth
    )


async def test_an_outage_gives_503_and_dovecote_recovers(
    client: httpx.AsyncClient, world: World, proxy: TcpProxy
) -> None:
    sender, recipient = await world.user("s"), await world.user("r")
    await world.follow(recipient, sender)
    assert (await _send(client, sender, recipient, "before")).status_code == 201

    await proxy.cut()
    started = time.monotonic()
    during = await asyncio.gather(*(_send(client, sender, recipient, f"d{i}") for i in range(8)))
    elapsed = time.monotonic() - started
    ready = await client.get("/readyz")

    assert {r.status_code for r in during} == {503}
    assert all(r.json()["errors"][0]["code"] == "database_unavailable" for r in during)
    assert elapsed < 10, "503s must come in bounded time, not hang"
    assert ready.status_code == 503
    assert (await client.get("/healthz")).status_code == 200

    await proxy.restore()
    after = [await _send(client, sender, recipient, f"after{i}") for i in range(3)]

    # Recovers without a restart, from the first request on: the failed connections were
    # dropped during the outage, so none of them is handed out again once the database is back.
    assert [r.status_code for r in after] == [201, 201, 201], [r.text for r in after]
    assert (await client.get("/readyz")).status_code == 200
    stored = await world.sql("SELECT body FROM messages ORDER BY id")
    assert [row[0] for row in stored if row[0].startswith("d")] == []  # nothing half-stored
    assert [row[0] for row in stored] == ["before", "after0", "after1", "after2"]
