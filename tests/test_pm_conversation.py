"""The whole life of a conversation, as the people in it see it (SPEC §3.2 to 3.7)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from dovecote.core import clock
from tests.conftest import Member, World
from tests.pm_support import (
    PM,
    assert_state_consistent,
    get_ok,
    headlines,
    inbox,
    send,
    statuses,
    texts,
    thread,
)


async def older_pages(client: httpx.AsyncClient, member: Member, first: Any) -> list[list[str]]:
    """Follow `next` (before_message) from a first page until the first message."""
    pages = [texts(first)]
    while first["next"]:
        first = await get_ok(client, member, first["next"])
        pages.append(texts(first))
    return pages


async def test_a_conversation_from_first_message_to_revival(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna", real_name="Anna Rossi")
    bruno = await world.user("bruno", real_name="Bruno Bianchi")
    carla = await world.user("carla", real_name="Carla Verdi")
    mod = await world.user("moderna", role="moderator")
    await world.mutual(anna, bruno)
    await world.follow(carla, anna)  # carla may hear from anna, not the other way round

    # anna opens with bruno, then writes to carla: her inbox shows carla first, both seen
    ab = (await send(client, anna, bruno, text="ciao bruno"))["thread_id"]
    ac = (await send(client, anna, carla, text="ciao carla"))["thread_id"]
    assert headlines(await inbox(client, anna)) == ["ciao carla", "ciao bruno"]
    assert statuses(await inbox(client, anna)) == {ac: "seen", ab: "seen"}
    assert statuses(await inbox(client, bruno)) == {ab: "new"}
    assert statuses(await inbox(client, carla)) == {ac: "new"}

    # bruno and anna talk: m1..m7 in the thread; bruno's answer moves it back to the top
    for i in range(1, 7):
        sender, recipient = (bruno, anna) if i % 2 else (anna, bruno)
        await send(client, sender, recipient, text=f"m{i}")
    assert headlines(await inbox(client, anna)) == ["m6", "ciao carla"]
    assert statuses(await inbox(client, anna))[ab] == "seen"  # her own m6 was last
    assert statuses(await inbox(client, bruno))[ab] == "new"
    await assert_state_consistent(world)

    # bruno reads from the newest page back to the first message, 3 at a time
    newest = await thread(client, bruno, thread=ab, limit=3)
    assert statuses(await inbox(client, bruno))[ab] == "seen"
    assert await older_pages(client, bruno, newest) == [
        ["m4", "m5", "m6"],
        ["m1", "m2", "m3"],
        ["ciao bruno"],
    ]
    ids = [m["id"] for m in (await thread(client, anna, user=bruno.id))["results"]]
    forward = await thread(client, anna, user=bruno.id, from_message=ids[2], limit=2)
    assert texts(forward) == ["m2", "m3"]

    # anna deletes a fresh message within the window, and an old one after it
    oops = await send(client, anna, bruno, text="wrong chat")
    assert statuses(await inbox(client, bruno))[ab] == "new"
    clock.advance(timedelta(seconds=30))
    assert (await client.delete(f"{PM}{oops['id']}/", headers=anna.auth)).status_code == 204
    assert statuses(await inbox(client, bruno))[ab] == "seen"
    assert headlines(await inbox(client, bruno)) == ["m6"]
    clock.advance(timedelta(minutes=2))
    assert (await client.delete(f"{PM}{ids[-1]}/", headers=anna.auth)).status_code == 204
    assert headlines(await inbox(client, bruno)) == ["Message deleted"]
    assert (await thread(client, bruno, thread=ab))["count"] == 7
    # bruno may not delete anna's message; carla does not even see it
    assert (await client.delete(f"{PM}{ids[0]}/", headers=bruno.auth)).status_code == 403
    assert (await client.delete(f"{PM}{ids[0]}/", headers=carla.auth)).status_code == 404
    await assert_state_consistent(world)

    # bruno deletes the thread: gone for him, intact for anna; anna's next message revives it
    assert (
        await client.delete(PM, params={"user": anna.id}, headers=bruno.auth)
    ).status_code == 204
    assert (await inbox(client, bruno))["count"] == 0
    assert (await thread(client, anna, thread=ab))["count"] == 7
    await send(client, anna, bruno, text="still there?")
    revived = await inbox(client, bruno)
    assert revived["count"] == 1 and statuses(revived) == {ab: "new"}
    assert texts(await thread(client, bruno, thread=ab)) == ["still there?"]
    assert statuses(await inbox(client, bruno)) == {ab: "seen"}
    assert len((await thread(client, anna, thread=ab))["results"]) == 8
    await assert_state_consistent(world)

    # search: anna finds her followers only, the moderator finds everyone
    found = await get_ok(client, anna, f"{PM}search/", user="r")
    assert sorted(u["username"] for u in found["results"]) == ["bruno", "carla"]
    assert (await get_ok(client, bruno, f"{PM}search/", user="carla"))["count"] == 0
    everyone = await get_ok(client, mod, f"{PM}search/", user="a")
    assert sorted(u["username"] for u in everyone["results"]) == ["anna", "bruno", "carla"]


@pytest.mark.parametrize("seed", [7, 8, 9])
async def test_state_stays_consistent_under_concurrent_traffic(
    client: httpx.AsyncClient, world: World, seed: int
) -> None:
    """Sends, reads, message deletes and thread deletes from four people at once: afterwards
    every member row and inbox count agrees with the messages themselves."""
    people = [await world.user(f"u{i}") for i in range(4)]
    await world.mutual(*people)
    rng = random.Random(seed)
    sent: list[tuple[Member, int]] = []
    talked: set[frozenset[int]] = set()  # pairs whose thread exists (a send was answered)
    sending: list[frozenset[int]] = []  # pairs with a send under way

    async def act(step: int) -> None:
        me, other = rng.sample(people, 2)
        pair = frozenset((me.id, other.id))
        roll = rng.random()
        if roll < 0.5 or not sent:
            body = {"recipients": [other.id], "message": f"s{step}"}
            sending.append(pair)
            response = await client.post(PM, json=body, headers=me.auth)
            assert response.status_code == 201, response.text
            sending.remove(pair)
            talked.add(pair)
            sent.append((me, response.json()["id"]))
        elif roll < 0.65:
            who, message_id = rng.choice(sent)
            response = await client.delete(f"{PM}{message_id}/", headers=who.auth)
            assert response.status_code == 204, response.text
        elif roll < 0.8:
            existed, racing = pair in talked, pair in sending
            response = await client.delete(PM, params={"user": other.id}, headers=me.auth)
            if existed or not (racing or pair in sending or pair in talked):
                # 204 for a thread that exists; 404 for "no thread with this user" (§3.6)
                assert response.status_code == (204 if existed else 404), response.text
            else:  # racing the pair's first send: the answer follows whichever commits first
                assert response.status_code in (204, 404), response.text
        else:
            response = await client.get(PM, params={"user": other.id}, headers=me.auth)
            assert response.status_code == 200, response.text

    for burst in range(6):
        if burst == 3:
            clock.advance(timedelta(minutes=2))  # later deletes hide instead of deleting
        await asyncio.gather(*(act(burst * 10 + i) for i in range(10)))

    await assert_state_consistent(world)
    for member in people:
        page = await inbox(client, member, limit=100)
        assert page["count"] == len(page["results"])
