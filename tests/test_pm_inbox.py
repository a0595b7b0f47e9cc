"""The inbox, GET /api/v2/pm/ (SPEC §3.2): one snippet per thread, newest activity first."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.conftest import Member, World
from tests.pm_support import (
    PM,
    assert_state_consistent,
    error_code,
    headlines,
    inbox,
    seed_threads,
    send,
    statuses,
    thread,
)


@pytest.fixture
async def trio(world: World) -> tuple[Member, Member, Member]:
    anna, bruno, carla = (
        await world.user("anna"),
        await world.user("bruno"),
        await world.user("carla"),
    )
    await world.mutual(anna, bruno, carla)
    return anna, bruno, carla


async def test_an_empty_inbox_is_an_empty_page(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")

    page = await inbox(client, anna)

    assert page == {"count": 0, "next": None, "previous": None, "results": []}


async def test_the_inbox_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(PM)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_snippet_names_the_thread_its_people_and_its_latest_message(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    await send(client, anna, bruno, text="first")
    sent = await send(client, bruno, anna, text="second")

    page = await inbox(client, anna)

    assert page["count"] == 1
    [snippet] = page["results"]
    assert snippet["id"] == sent["thread_id"]
    assert "group" in snippet and snippet["group"] is None
    assert snippet["headline"] == "second"
    assert snippet["sender"]["id"] == bruno.id
    assert snippet["receiver"]["id"] == anna.id
    assert snippet["thread_status"] == "new"
    assert datetime.fromisoformat(snippet["last_message_at"]) == datetime.fromisoformat(
        sent["created_at"]
    )


async def test_the_most_recent_activity_comes_first(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    with_bruno = (await send(client, anna, bruno, text="to bruno"))["thread_id"]
    with_carla = (await send(client, anna, carla, text="to carla"))["thread_id"]
    assert [s["id"] for s in (await inbox(client, anna))["results"]] == [with_carla, with_bruno]

    await send(client, bruno, anna, text="bruno answers")

    page = await inbox(client, anna)
    assert [s["id"] for s in page["results"]] == [with_bruno, with_carla]
    assert headlines(page) == ["bruno answers", "to carla"]


async def test_a_message_from_someone_else_is_new_until_read(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    thread_id = (await send(client, anna, bruno))["thread_id"]

    assert statuses(await inbox(client, anna)) == {thread_id: "seen"}
    assert statuses(await inbox(client, bruno)) == {thread_id: "new"}

    await thread(client, bruno, thread=thread_id)

    assert statuses(await inbox(client, bruno)) == {thread_id: "seen"}
    assert statuses(await inbox(client, anna)) == {thread_id: "seen"}


async def test_ones_own_messages_never_make_ones_thread_new(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    thread_id = (await send(client, anna, bruno))["thread_id"]
    for _ in range(3):
        await send(client, anna, bruno)

    assert statuses(await inbox(client, anna)) == {thread_id: "seen"}

    await send(client, bruno, anna, text="reply")
    assert statuses(await inbox(client, anna)) == {thread_id: "new"}
    assert statuses(await inbox(client, bruno)) == {thread_id: "seen"}


async def test_sending_marks_the_thread_read_for_the_sender(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    thread_id = (await send(client, bruno, anna, text="question"))["thread_id"]
    assert statuses(await inbox(client, anna)) == {thread_id: "new"}

    await send(client, anna, bruno, text="answer")

    assert statuses(await inbox(client, anna)) == {thread_id: "seen"}
    assert statuses(await inbox(client, bruno)) == {thread_id: "new"}


async def test_one_send_to_two_people_shows_two_threads(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    response = await client.post(
        PM, json={"recipients": [bruno.id, carla.id], "message": "hello both"}, headers=anna.auth
    )
    assert response.status_code == 201

    page = await inbox(client, anna)

    assert page["count"] == 2
    assert headlines(page) == ["hello both", "hello both"]
    assert {s["receiver"]["id"] for s in page["results"]} == {bruno.id, carla.id}
    assert (await inbox(client, bruno))["count"] == 1
    assert (await inbox(client, carla))["count"] == 1


async def test_others_threads_do_not_show(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, carla = trio
    await send(client, anna, bruno)

    assert await inbox(client, carla) == {"count": 0, "next": None, "previous": None, "results": []}


async def test_the_inbox_pages_with_limit_and_offset(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    people = [await world.user(f"p{i}") for i in range(5)]
    for person in people:
        await world.follow(person, anna)
        await send(client, anna, person, text=person.username)

    first = await inbox(client, anna, limit=2)
    assert first["count"] == 5
    assert headlines(first) == ["p4", "p3"]
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/v2/pm/?limit=2&offset=2"

    second = (await client.get(first["next"], headers=anna.auth)).json()
    assert headlines(second) == ["p2", "p1"]
    assert second["previous"] == "http://testserver/api/v2/pm/?limit=2"

    last = (await client.get(second["next"], headers=anna.auth)).json()
    assert headlines(last) == ["p0"]
    assert last["next"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=1000", 100),
        ("limit=0", 20),
        ("limit=undefined&offset=undefined", 20),
        ("", 20),
        ("limit=999999999999999", 100),
    ],
)
async def test_page_sizes_default_to_20_and_are_clamped_at_100(
    client: httpx.AsyncClient, world: World, query: str, expected: int
) -> None:
    anna = await world.user("anna")
    await seed_threads(world, anna, threads=120, messages=1)

    page = (await client.get(f"{PM}?{query}", headers=anna.auth)).json()

    assert page["count"] == 120
    assert len(page["results"]) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=-1", "limit"),
        ("offset=-5", "offset"),
        ("limit=ten", "limit"),
        ("offset=1.5", "offset"),
    ],
)
async def test_bad_paging_values_are_refused_by_name(
    client: httpx.AsyncClient, world: World, query: str, field: str
) -> None:
    anna = await world.user("anna")

    response = await client.get(f"{PM}?{query}", headers=anna.auth)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert error_code(response) in {"invalid", "min_value"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=ten", "Input should be a valid integer, unable to parse string as an integer"),
        ("thread=0", "Input should be greater than or equal to 1"),
    ],
)
async def test_a_bad_query_value_gets_one_message_not_the_undefined_alternative(
    client: httpx.AsyncClient, world: World, query: str, message: str
) -> None:
    anna = await world.user("anna")
    field = query.split("=")[0]

    response = await client.get(f"{PM}?{query}", headers=anna.auth)

    assert response.status_code == 400
    assert response.json() == {
        "detail": message,
        "errors": [{"field": field, "messages": [{"code": "invalid", "message": message}]}],
    }


async def test_an_offset_past_the_end_is_an_empty_page(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member]
) -> None:
    anna, bruno, _ = trio
    await send(client, anna, bruno)

    page = await inbox(client, anna, offset=10**12)

    assert page["count"] == 1
    assert page["results"] == []
    assert page["next"] is None


async def test_links_use_the_public_url_or_the_request_host(
    client: httpx.AsyncClient, world: World
) -> None:
    anna = await world.user("anna")
    people = [await world.user(f"p{i}") for i in range(3)]
    for person in people:
        await world.follow(person, anna)
        await send(client, anna, person)

    page = (
        await client.get(PM, params={"limit": 1}, headers={**anna.auth, "Host": "chat.example"})
    ).json()

    assert page["next"] == "http://chat.example/api/v2/pm/?limit=1&offset=1"


async def test_a_file_message_without_text_is_headlined_by_the_file_name(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member], world: World
) -> None:
    anna, bruno, _ = trio
    sent = await send(client, anna, bruno, text="placeholder text")
    [(file_id,)] = await world.sql(
        "INSERT INTO files (uuid, owner_id, filename, mimetype, filesize, storage_key,"
        " parts_received, finished, attached, created_at)"
        " VALUES ('f-1', :owner, 'holiday.jpg', 'image/jpeg', 10, 'k', 1, :yes, :yes,"
        " CURRENT_TIMESTAMP) RETURNING id",
        owner=anna.id,
        yes=True,
    )
    await world.sql(
        "UPDATE messages SET body = '', file_id = :file WHERE id = :id", file=file_id, id=sent["id"]
    )

    assert headlines(await inbox(client, bruno)) == ["holiday.jpg"]


async def test_inbox_counts_match_the_listed_threads_through_a_busy_day(
    client: httpx.AsyncClient, trio: tuple[Member, Member, Member], world: World
) -> None:
    anna, bruno, carla = trio
    ab = (await send(client, anna, bruno, text="1"))["thread_id"]
    await send(client, anna, bruno, carla, text="2")
    await client.delete(PM, params={"thread": ab}, headers=bruno.auth)
    await send(client, carla, bruno, text="3")
    await send(client, bruno, anna, text="4")
    await client.delete(PM, params={"user": carla.id}, headers=anna.auth)

    for member, expected in ((anna, 1), (bruno, 2), (carla, 2)):
        page = await inbox(client, member)
        assert page["count"] == len(page["results"]) == expected, member.username
    await assert_state_consistent(world)
