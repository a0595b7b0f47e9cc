"""What the web page needs from the server (issue 11): its OAuth client, the list answer of a
send, and frames that do not echo a send back to the page that made it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from dovecote.app import create_app
from dovecote.core import migrate
from dovecote.core.settings import Settings
from tests.conftest import REDIS_URL, Member, World
from tests.pm_support import send
from tests.realtime_helpers import HEARTBEAT, WAIT, next_frame, notify_url, serving

PM = "/api/v2/pm/"
PASSWORD = "correct horse battery"
PAGE = "tab-aaaaaaaaaaaaaaaa"  # the sending page's connection id
OTHER_TAB = "tab-bbbbbbbbbbbbbbbb"


def live(base: str, who: Member, connection: str | None = None, origin: str | None = None) -> Any:
    url = notify_url(base) + (f"&connection={connection}" if connection else "")
    return connect(
        url,
        subprotocols=[Subprotocol(f"__{who.token}")],
        origin=Origin(origin) if origin else None,
        open_timeout=WAIT,
        ping_interval=None,
    )


async def message_count(world: World) -> int:
    return int((await world.sql("SELECT count(*) FROM messages"))[0][0])


# --- the first-party OAuth client ------------------------------------------------------------


def test_the_migration_registers_the_page_client(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    migrate.upgrade(url)
    assert asyncio.run(_clients(url)) == [("dovecote-web", False, None)]


async def _clients(url: str) -> list[tuple[Any, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text("SELECT client_id, confidential, secret_hash FROM oauth_clients")
                )
            ).all()
    finally:
        await engine.dispose()
    return [tuple(r) for r in rows]


async def ensure_page_client(world: World) -> None:
    """On PostgreSQL each test starts from truncated tables: put back the migration's row."""
    await world.sql(
        "INSERT INTO oauth_clients (client_id, name, confidential, created_at) "
        "SELECT 'dovecote-web', 'Dovecote web page', :no, CURRENT_TIMESTAMP "
        "WHERE NOT EXISTS (SELECT 1 FROM oauth_clients WHERE client_id = 'dovecote-web')",
        no=False,
    )


async def test_the_page_signs_in_refreshes_and_signs_out_with_its_client(
    client: httpx.AsyncClient, world: World
) -> None:
    await ensure_page_client(world)
    await world.user("anna", password=PASSWORD)
    config = (await client.get("/web-config.json")).json()
    form = {"client_id": config["oauth_client_id"], "username": "anna"}
    wrong = await client.post(
        "/oauth/token/", data={**form, "grant_type": "password", "password": "nope"}
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    signed_in = await client.post(
        "/oauth/token/", data={**form, "grant_type": "password", "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    refreshed = await client.post(
        "/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "client_id": "dovecote-web",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    access = refreshed.json()["access_token"]
    me = await client.get("/api/v2/user/me/", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200 and me.json()["username"] == "anna"
    revoked = await client.post(
        "/oauth/revoke_token/", data={"client_id": "dovecote-web", "token": access}
    )
    assert revoked.status_code == 200
    gone = await client.get("/api/v2/user/me/", headers={"Authorization": f"Bearer {access}"})
    assert gone.status_code == 401


# --- the send's answer -----------------------------------------------------------------------


async def test_the_page_asks_for_the_list_answer_others_keep_the_seeds(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user()
    await world.mutual(anna, bruno, carla)
    seed = await send(client, anna, bruno, text="default")
    assert isinstance(seed, dict) and seed["message"] == "default"  # the server's default

    listed = await client.post(
        PM,
        json={"recipients": [bruno.id, carla.id], "message": "to both"},
        headers={**anna.auth, "X-Dovecote-Send-Response": "list"},
    )
    assert listed.status_code == 201, listed.text
    body = listed.json()
    assert isinstance(body, list) and len(body) == 2  # what react-ui reads: res.data[0], .map
    assert {m["receiver"]["id"] for m in body} == {bruno.id, carla.id}
    assert len({m["id"] for m in body}) == 1

    asked = await send(
        client, anna, bruno, text="object", headers={"X-Dovecote-Send-Response": "Object"}
    )
    assert isinstance(asked, dict)


@pytest.mark.parametrize("settings_overrides", [{"pm_send_response": "list"}])
async def test_a_list_server_answers_an_object_when_asked(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    assert isinstance(await send(client, anna, bruno, text="a"), list)
    single = await send(
        client, anna, bruno, text="b", headers={"X-Dovecote-Send-Response": "object"}
    )
    assert single["message"] == "b"


async def test_bad_hints_are_400_and_store_nothing(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    for headers in (
        {"X-Dovecote-Send-Response": "array"},
        {"X-Dovecote-Connection": "short"},
        {"X-Dovecote-Connection": "has spaces in it"},
        {"X-Dovecote-Connection": "x" * 65},
    ):
        response = await client.post(
            PM, json={"recipients": [bruno.id], "message": "no"}, headers={**anna.auth, **headers}
        )
        assert response.status_code == 400, (headers, response.text)
        assert response.json()["errors"][0]["field"]
    assert await message_count(world) == 0


# --- frames and the page that sent ------------------------------------------------------------


async def test_the_sending_page_gets_no_echo_its_other_devices_do(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    async with (
        live(base, anna, PAGE) as sending_tab,
        live(base, anna, OTHER_TAB) as other_tab,
        live(base, anna) as phone,
        live(base, bruno, PAGE) as bruno_tab,  # the same id, someone else's: not skipped
    ):
        sent = await send(client, anna, bruno, text="once", headers={"X-Dovecote-Connection": PAGE})
        for ws in (other_tab, phone, bruno_tab):
            data = await next_frame(ws)
            assert data["notification_obj"]["message"]["id"] == sent["id"]
        # bruno answers: the sending tab's next frame is that answer, so it never got its own.
        reply = await send(client, bruno, anna, text="received")
        data = await next_frame(sending_tab)
        assert data["notification_obj"]["message"]["id"] == reply["id"]
        assert data["event_id"] == 2  # event 1 (its own send) was passed over, not lost
        for ws in (other_tab, phone, bruno_tab):  # bruno's tab: his send, made without an id
            assert (await next_frame(ws))["notification_obj"]["message"]["id"] == reply["id"]

        # A send without the header (curl, another client) reaches every socket.
        plain = await send(client, anna, bruno, text="from elsewhere")
        for ws in (sending_tab, other_tab, phone, bruno_tab):
            assert (await next_frame(ws))["notification_obj"]["message"]["id"] == plain["id"]


async def test_catching_up_replays_everything(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    await send(client, anna, bruno, text="one", headers={"X-Dovecote-Connection": PAGE})
    polled = await client.get("/api/v2/pm/events/", params={"since": 0}, headers=anna.auth)
    assert [f["data"]["event_id"] for f in polled.json()["results"]] == [1]


async def test_a_malformed_connection_id_refuses_the_socket(base: str, world: World) -> None:
    anna = await world.user("anna")
    with pytest.raises(InvalidStatus) as refused:
        async with live(base, anna, "bad id!"):
            pass
    assert refused.value.response.status_code == 400


# --- the socket's Origin rule -------------------------------------------------------------------


async def open_and_beat(ws: ClientConnection) -> None:
    await ws.send(HEARTBEAT)
    async with asyncio.timeout(WAIT):
        assert await ws.recv() == HEARTBEAT


class TestSocketOrigins:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"cors_origins": "https://community.example"}

    async def test_allowed_own_and_foreign_origins(self, base: str, world: World) -> None:
        anna = await world.user("anna")
        own = base.replace("ws://", "http://")
        for origin in (None, "https://community.example", own):
            async with live(base, anna, origin=origin) as ws:
                await open_and_beat(ws)
        with pytest.raises(InvalidStatus) as refused:
            async with live(base, anna, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        assert b"origin_not_allowed" in refused.value.response.body


# --- across server processes (Redis) ------------------------------------------------------------


@pytest.mark.skipif(not REDIS_URL, reason="DOVECOTE_TEST_REDIS_URL is not set")
class TestAcrossProcesses:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        channel = f"dovecote:test:{secrets.token_hex(6)}"
        return {"redis_url": REDIS_URL, "live_channel": channel, "ws_recheck_seconds": 3600}

    @pytest.fixture
    async def second_base(self, settings: Settings) -> AsyncIterator[str]:
        """Another server process in all but name: its own hub, broker and engines."""
        application = create_app(settings)
        async with LifespanManager(application), serving(application) as url:
            yield url

    async def test_the_skip_travels_with_the_nudge(
        self, client: httpx.AsyncClient, world: World, second_base: str
    ) -> None:
        anna, bruno = await world.user("anna"), await world.user("bruno")
        await world.mutual(anna, bruno)
        # The page's socket is held by the other process; the send goes to this one.
        async with live(second_base, anna, PAGE) as sending_tab, live(second_base, anna) as phone:
            sent = await send(
                client, anna, bruno, text="once", headers={"X-Dovecote-Connection": PAGE}
            )
            data = await next_frame(phone)
            assert data["notification_obj"]["message"]["id"] == sent["id"]
            reply = await send(client, bruno, anna, text="received")
            data = await next_frame(sending_tab)
            assert data["notification_obj"]["message"]["id"] == reply["id"]
