"""Live delivery over /ws/notify with a real WebSocket client against a running server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from dovecote.core import clock, security
from tests.conftest import Member, World
from tests.pm_support import send
from tests.realtime_helpers import HEARTBEAT, WAIT, frames, next_frame, socket


async def test_handshake_echoes_the_token_subprotocol(base: str, world: World) -> None:
    anna = await world.user("anna")
    async with socket(base, anna.token) as ws:
        assert ws.subprotocol == f"__{anna.token}"
    async with socket(base, anna.token, path="/ws/notify/") as ws:
        assert ws.subprotocol == f"__{anna.token}"


async def test_heartbeat_is_echoed_verbatim(base: str, world: World) -> None:
    anna = await world.user("anna")
    async with socket(base, anna.token) as ws:
        for _ in range(3):
            await ws.send(HEARTBEAT)
            async with asyncio.timeout(WAIT):
                assert await ws.recv() == HEARTBEAT


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        security.issue_jwt(b"another-secret-" + b"y" * 40, 1, lifetime=timedelta(hours=1)),
        "a.b.c",
    ],
)
async def test_bad_tokens_are_refused(base: str, token: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with socket(base, token):
            pass
    assert refused.value.response.status_code == 401


async def test_expired_token_is_refused(base: str, world: World) -> None:
    anna = await world.user("anna")
    clock.advance(timedelta(hours=2))  # world tokens live one hour
    with pytest.raises(InvalidStatus) as refused:
        async with socket(base, anna.token):
            pass
    assert refused.value.response.status_code == 401


async def test_missing_token_is_refused(base: str) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{base}/ws/notify?subscribe-user", open_timeout=WAIT):
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_deleted_users_token_is_refused(base: str, world: World) -> None:
    anna = await world.user("anna")
    await world.sql("UPDATE users SET deleted = :yes WHERE id = :id", yes=True, id=anna.id)
    with pytest.raises(InvalidStatus):
        async with socket(base, anna.token):
            pass


async def test_a_message_reaches_every_device_of_every_participant_and_nobody_else(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno, carla, dario = [x async for x in _users(world, "anna", "bruno", "carla", "dario")]
    await world.mutual(anna, bruno, carla, dario)
    async with (
        socket(base, bruno.token) as bruno_phone,
        socket(base, bruno.token) as bruno_laptop,
        socket(base, anna.token) as anna_laptop,
        socket(base, carla.token) as carla_phone,
    ):
        message_id = (await send(client, anna, bruno, text="ciao Bruno"))["id"]

        for ws in (bruno_phone, bruno_laptop):
            data = await next_frame(ws)
            assert data["activity_type"] == 37
            assert data["event_id"] == 1
            assert data["feed_serialization_id"] == f"pm-{message_id}"
            assert data["count_interactions"] == 1
            note = data["notification_obj"]
            assert note["type"] == "private_message"
            assert note["is_new"] is True
            assert note["message"]["id"] == message_id
            assert note["message"]["message"] == "ciao Bruno"
            assert note["message"]["sender"]["username"] == "anna"
            assert note["message"]["receiver"]["username"] == "bruno"
            assert note["message"]["thread_id"] == data["thread_id"]
            assert note["snippet"]["id"] == data["thread_id"]
            assert note["snippet"]["headline"] == "ciao Bruno"
            assert note["snippet"]["thread_status"] == "new"
            assert note["snippet"]["group"] is None

        mine = await next_frame(anna_laptop)  # the sender's other devices follow along
        assert mine["notification_obj"]["message"]["id"] == message_id
        assert mine["notification_obj"]["is_new"] is False
        assert mine["notification_obj"]["snippet"]["thread_status"] == "seen"
        assert mine["count_interactions"] == 0

        # Carla's first frame is about her own message: Bruno's never reached her.
        other_id = (await send(client, dario, carla, text="ciao Carla"))["id"]
        data = await next_frame(carla_phone)
        assert data["event_id"] == 1
        assert data["notification_obj"]["message"]["id"] == other_id


async def _users(world: World, *names: str) -> AsyncIterator[Member]:
    for name in names:
        yield await world.user(name)


async def test_a_deletion_arrives_as_105(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    async with socket(base, bruno.token) as ws:
        message_id = (await send(client, anna, bruno, text="oops"))["id"]
        assert (await next_frame(ws))["activity_type"] == 37
        response = await client.delete(f"/api/v2/pm/{message_id}/", headers=anna.auth)
        assert response.status_code == 204
        data = await next_frame(ws)
    assert data["activity_type"] == 105
    assert data["event_id"] == 2
    note = data["notification_obj"]
    assert note["type"] == "delete_private_message"
    assert note["message"]["id"] == message_id
    assert note["message"]["status"] == "deleted"
    assert note["message"]["message"] == ""  # the text is gone with the message
    assert note["snippet"] is None  # nothing left in the thread


async def test_a_late_deletion_shows_the_placeholder(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    message_id = (await send(client, anna, bruno, text="said too much"))["id"]
    clock.advance(timedelta(minutes=5))
    async with socket(base, bruno.token) as ws:
        await client.delete(f"/api/v2/pm/{message_id}/", headers=anna.auth)
        data = await next_frame(ws)
    note = data["notification_obj"]
    assert note["message"]["status"] == "hidden"
    assert note["message"]["message"] == "Message deleted"
    assert note["snippet"]["headline"] == "Message deleted"


async def test_since_replays_the_backlog_then_streams_live(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    sent = [(await send(client, anna, bruno, text=f"m{i}"))["id"] for i in range(3)]
    async with socket(base, bruno.token, since=1) as ws:
        replayed = await frames(ws, 2)
        live_id = (await send(client, anna, bruno, text="live"))["id"]
        live = await next_frame(ws)
    assert [f["event_id"] for f in replayed] == [2, 3]
    assert [f["notification_obj"]["message"]["id"] for f in replayed] == sent[1:]
    assert (live["event_id"], live["notification_obj"]["message"]["id"]) == (4, live_id)


async def test_without_since_only_new_events_are_sent(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    await send(client, anna, bruno, text="before")
    async with socket(base, bruno.token) as ws:
        after = (await send(client, anna, bruno, text="after"))["id"]
        data = await next_frame(ws)
    assert (data["event_id"], data["notification_obj"]["message"]["id"]) == (2, after)


@pytest.mark.parametrize("since", ["-1", "abc", str(2**63)])
async def test_a_bad_cursor_is_refused(base: str, world: World, since: str) -> None:
    anna = await world.user("anna")
    with pytest.raises(InvalidStatus) as refused:
        async with socket(base, anna.token, path=f"/ws/notify?since={since}&x"):
            pass
    assert refused.value.response.status_code == 400


async def test_a_database_outage_refuses_the_handshake_with_503(
    base: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from dovecote.realtime import service

    anna = await world.user("anna")

    async def down(*_args: object) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    monkeypatch.setattr(service, "authenticate_socket", down)
    with pytest.raises(InvalidStatus) as refused:
        async with socket(base, anna.token):
            pass
    assert refused.value.response.status_code == 503
