"""Searching people to write to, GET /api/v2/pm/search/?user=TERM (SPEC §3.7)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Member, World
from tests.pm_support import error_code, error_field, get_ok

SEARCH = "/api/v2/pm/search/"


def names(page: dict[str, object]) -> list[str]:
    return sorted(u["username"] for u in page["results"])  # type: ignore[attr-defined,index]


@pytest.fixture
async def people(world: World) -> dict[str, Member]:
    """anna is followed by marco, maria and sam; she follows mario, who does not follow her."""
    anna = await world.user("anna", real_name="Anna Rossi")
    marco = await world.user("marco", real_name="Marco Bianchi")
    maria = await world.user("Maria_B", real_name="Maria Verdi")
    sam = await world.user("sam", real_name="Samuele MARINI")
    mario = await world.user("mario", real_name="Mario Neri")
    gone = await world.user("marta", real_name="Marta Gialli")
    mod = await world.user("mod", role="moderator")
    for fan in (marco, maria, sam, gone):
        await world.follow(fan, anna)
    await world.follow(anna, mario)
    await world.sql("UPDATE users SET deleted = :yes WHERE id = :id", yes=True, id=gone.id)
    return {m.username: m for m in (anna, marco, maria, sam, mario, gone, mod)}


async def test_a_user_finds_only_their_followers(
    client: httpx.AsyncClient, people: dict[str, Member]
) -> None:
    anna = people["anna"]

    page = await get_ok(client, anna, SEARCH, user="mar")

    # marco/Maria_B by username, sam by real name; mario doesn't follow anna, marta is deleted
    assert names(page) == ["Maria_B", "marco", "sam"]
    assert page["count"] == 3
    user = next(u for u in page["results"] if u["username"] == "marco")
    assert user["id"] == people["marco"].id
    assert user["real_name"] == "Marco Bianchi"
    assert user["deleted"] is False


async def test_the_search_ignores_case(
    client: httpx.AsyncClient, people: dict[str, Member]
) -> None:
    anna = people["anna"]

    assert names(await get_ok(client, anna, SEARCH, user="MARIA")) == ["Maria_B"]
    assert names(await get_ok(client, anna, SEARCH, user="verdi")) == ["Maria_B"]
    assert names(await get_ok(client, anna, SEARCH, user="Marini")) == ["sam"]


async def test_staff_find_everyone_but_themselves_and_the_deleted(
    client: httpx.AsyncClient, people: dict[str, Member]
) -> None:
    mod = people["mod"]

    page = await get_ok(client, mod, SEARCH, user="mar")
    everyone = await get_ok(client, mod, SEARCH, user="o")

    assert names(page) == ["Maria_B", "marco", "mario", "sam"]
    assert "mod" not in names(everyone)
    assert names(everyone) == ["anna", "marco", "mario"]


async def test_the_caller_is_never_a_result(
    client: httpx.AsyncClient, people: dict[str, Member], world: World
) -> None:
    anna, marco = people["anna"], people["marco"]
    await world.follow(anna, marco)

    assert names(await get_ok(client, marco, SEARCH, user="anna")) == ["anna"]
    assert names(await get_ok(client, anna, SEARCH, user="anna")) == []


async def test_like_wildcards_are_taken_literally(
    client: httpx.AsyncClient, people: dict[str, Member]
) -> None:
    anna = people["anna"]

    assert names(await get_ok(client, anna, SEARCH, user="_")) == ["Maria_B"]
    assert names(await get_ok(client, anna, SEARCH, user="%")) == []
    assert names(await get_ok(client, anna, SEARCH, user="\\")) == []


async def test_results_are_paginated(client: httpx.AsyncClient, world: World) -> None:
    anna = await world.user("anna")
    for i in range(5):
        await world.follow(await world.user(f"fan{i}"), anna)

    first = await get_ok(client, anna, SEARCH, user="fan", limit=2)
    second = (await client.get(first["next"], headers=anna.auth)).json()
    last = (await client.get(second["next"], headers=anna.auth)).json()

    assert first["count"] == 5
    assert [u["username"] for u in first["results"]] == ["fan0", "fan1"]
    assert first["next"] == "http://testserver/api/v2/pm/search/?user=fan&limit=2&offset=2"
    assert [u["username"] for u in second["results"]] == ["fan2", "fan3"]
    assert [u["username"] for u in last["results"]] == ["fan4"]
    assert last["next"] is None and last["previous"] is not None


@pytest.mark.parametrize("query", ["", "?user=", "?user=undefined", "?user=%20%20", "?other=x"])
async def test_a_term_is_required(
    client: httpx.AsyncClient, people: dict[str, Member], query: str
) -> None:
    response = await client.get(f"{SEARCH}{query}", headers=people["anna"].auth)

    assert response.status_code == 400
    assert error_field(response) == "user"
    assert error_code(response) in {"required", "invalid"}  # `?user=` fails the length rule


async def test_an_overlong_term_is_refused(
    client: httpx.AsyncClient, people: dict[str, Member]
) -> None:
    response = await client.get(SEARCH, params={"user": "a" * 151}, headers=people["anna"].auth)

    assert response.status_code == 400
    assert error_field(response) == "user"


async def test_search_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get(SEARCH, params={"user": "a"})).status_code == 401


async def test_search_works_without_the_trailing_slash(
    client: httpx.AsyncClient, people: dict[str, Member]
) -> None:
    page = await get_ok(client, people["anna"], SEARCH[:-1], user="sam")

    assert names(page) == ["sam"]
