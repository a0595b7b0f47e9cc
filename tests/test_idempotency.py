"""Exactly-once sends: Idempotency-Key and client_message_id."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from dovecote.core import clock
from tests.conftest import Member, World


async def _pair(world: World) -> tuple[Member, Member]:
    sender, recipient = await world.user("sender"), await world.user("recipient")
    await world.follow(recipient, sender)
    return sender, recipient


async def _count(world: World, table: str) -> int:
    rows = await world.sql(f"SELECT count(*) FROM {table}")
    return int(rows[0][0])


async def test_a_retry_returns_the_first_answer_and_stores_nothing_new(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    body = {"recipients": [recipient.id], "message": "once"}
    headers = {**sender.auth, "Idempotency-Key": "k-1"}

    first = await client.post("/api/v2/pm/", json=body, headers=headers)
    retry = await client.post("/api/v2/pm/", json=body, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert await _count(world, "messages") == 1
    assert await _count(world, "events") == 2  # one for each side, not four


async def test_client_message_id_works_like_the_header(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    body = {"recipients": recipient.id, "message": "once", "client_message_id": "abc"}

    first = await client.post("/api/v2/pm/", json=body, headers=sender.auth)
    retry = await client.post("/api/v2/pm/", json=body, headers=sender.auth)

    assert retry.json()["id"] == first.json()["id"]
    assert await _count(world, "messages") == 1


async def test_the_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    headers = {**sender.auth, "Idempotency-Key": "k-2"}
    await client.post(
        "/api/v2/pm/", json={"recipients": [recipient.id], "message": "a"}, headers=headers
    )

    other = await client.post(
        "/api/v2/pm/", json={"recipients": [recipient.id], "message": "b"}, headers=headers
    )

    assert other.status_code == 422
    assert other.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert await _count(world, "messages") == 1


async def test_keys_belong_to_their_sender(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await _pair(world)
    await world.follow(sender, recipient)
    body_a = {"recipients": [recipient.id], "message": "from sender"}
    body_b = {"recipients": [sender.id], "message": "from recipient"}

    a = await client.post(
        "/api/v2/pm/", json=body_a, headers={**sender.auth, "Idempotency-Key": "same"}
    )
    b = await client.post(
        "/api/v2/pm/", json=body_b, headers={**recipient.auth, "Idempotency-Key": "same"}
    )

    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_a_refused_send_does_not_burn_its_key(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await world.user("s"), await world.user("r")
    headers = {**sender.auth, "Idempotency-Key": "k-3"}
    body = {"recipients": [recipient.id], "message": "hi"}

    refused = await client.post("/api/v2/pm/", json=body, headers=headers)
    await world.follow(recipient, sender)
    accepted = await client.post("/api/v2/pm/", json=body, headers=headers)

    assert refused.status_code == 403
    assert accepted.status_code == 201


async def test_keys_expire(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await _pair(world)
    headers = {**sender.auth, "Idempotency-Key": "k-4"}
    body = {"recipients": [recipient.id], "message": "hi"}
    first = await client.post("/api/v2/pm/", json=body, headers=headers)

    clock.advance(timedelta(hours=24, seconds=1))
    # A JWT minted before the jump has expired too; mint a fresh one for the sender.
    fresh = await world.token(sender)
    again = await client.post(
        "/api/v2/pm/",
        json=body,
        headers={"Authorization": f"Bearer {fresh}", "Idempotency-Key": "k-4"},
    )

    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]


async def test_concurrent_retries_store_one_message(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await _pair(world)
    headers = {**sender.auth, "Idempotency-Key": "race"}
    body = {"recipients": [recipient.id], "message": "race"}

    answers = await asyncio.gather(
        *(client.post("/api/v2/pm/", json=body, headers=headers) for _ in range(8))
    )

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await _count(world, "messages") == 1


async def test_a_bad_key_is_a_clear_400(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await _pair(world)
    answer = await client.post(
        "/api/v2/pm/",
        json={"recipients": [recipient.id], "message": "x"},
        headers={**sender.auth, "Idempotency-Key": "x" * 300},
    )
    assert answer.status_code == 400
