"""A send into an existing thread: on PostgreSQL one self-committing statement (pm.one_statement)
that also confirms the caller; on SQLite the general path. Same answers, same refusals, same
state either way, checked here from the sender's and the attacker's side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dovecote.pm import one_statement
from tests.conftest import Member, World
from tests.pm_support import PM, assert_state_consistent, error_code, send
from tests.test_pm_query_count import statements

COUNTED = ("messages", "thread_messages", "events")


async def counts(world: World) -> dict[str, int]:
    return {t: (await world.sql(f"SELECT COUNT(*) FROM {t}"))[0][0] for t in COUNTED}


async def assert_events_gap_free(world: World) -> None:
    rows = await world.sql(
        "SELECT u.id, u.last_event_id, COUNT(e.id), COALESCE(MAX(e.id), 0) FROM users u "
        "LEFT JOIN events e ON e.user_id = u.id GROUP BY u.id, u.last_event_id"
    )
    assert all(last == n == top for _, last, n, top in rows), rows


async def post(client: httpx.AsyncClient, sender: Member, *to: Member) -> httpx.Response:
    return await client.post(
        PM, json={"recipients": [m.id for m in to], "message": "again"}, headers=sender.auth
    )


@pytest.fixture
async def talking(world: World, client: httpx.AsyncClient) -> tuple[Member, Member]:
    """anna and bruno follow each other and already share a thread."""
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    await send(client, anna, bruno, text="first")
    return anna, bruno


@contextmanager
def one_statement_runs(app: FastAPI) -> Iterator[list[int]]:
    """Counts the one-statement sends the app runs (PostgreSQL's fast path)."""
    database = app.state.dovecote.database
    runs: list[int] = []
    original = database.autocommit

    @asynccontextmanager
    async def counting() -> AsyncIterator[Any]:
        runs.append(1)
        async with original() as connection:
            yield connection

    database.autocommit = counting
    try:
        yield runs
    finally:
        del database.autocommit


async def test_a_send_in_an_existing_thread(
    app: FastAPI, client: httpx.AsyncClient, world: World, talking: tuple[Member, Member]
) -> None:
    anna, bruno = talking
    with statements(app) as seen, one_statement_runs(app) as runs:
        response = await post(client, bruno, anna)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sender"]["username"] == "bruno" and body["receiver"]["username"] == "anna"
    assert body["message"] == "again" and body["status"] == "created"
    stored = await world.sql("SELECT body, sender_id FROM messages WHERE id = :id", id=body["id"])
    assert [tuple(r) for r in stored] == [("again", bruno.id)]
    if world.database.dialect == "postgresql":  # no session statement, no BEGIN: one round trip
        assert (seen, runs) == ([], [1])
    await assert_state_consistent(world)
    await assert_events_gap_free(world)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ("unfollow", 403, "recipient_not_follower"),
        ("INSERT INTO hides VALUES (:bruno, :anna, '2026-01-01')", 403, "recipient_blocked"),
        ("UPDATE users SET deleted = true WHERE id = :bruno", 403, "recipient_deleted"),
        ("UPDATE users SET is_active = false WHERE id = :bruno", 403, "recipient_deleted"),
        ("UPDATE users SET deleted = true WHERE id = :anna", 401, "authentication_failed"),
        ("UPDATE users SET is_active = false WHERE id = :anna", 401, "authentication_failed"),
    ],
)
async def test_refused_in_an_existing_thread_stores_nothing(
    client: httpx.AsyncClient,
    world: World,
    talking: tuple[Member, Member],
    change: str,
    status: int,
    code: str,
) -> None:
    anna, bruno = talking
    if change == "unfollow":
        await world.unfollow(bruno, anna)  # through the repository: the counters follow
    else:
        if "hides" in change:
            change = change.replace("VALUES (", "(user_id, hidden_id, created_at) VALUES (")
        await world.sql(change, anna=anna.id, bruno=bruno.id)
    before = await counts(world)

    response = await post(client, anna, bruno)

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert await counts(world) == before
    await assert_state_consistent(world)


async def test_a_user_gone_since_the_token_was_issued_hears_401_before_a_bad_body(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member]
) -> None:
    anna, _ = talking
    await world.sql("UPDATE users SET deleted = true WHERE id = :anna", anna=anna.id)

    response = await client.post(PM, json={"recipients": "x"}, headers=anna.auth)

    assert response.status_code == 401, response.text


async def test_staff_need_not_be_followed(client: httpx.AsyncClient, world: World) -> None:
    boss, carla = await world.user("boss", role="moderator"), await world.user("carla")
    await send(client, boss, carla)
    before = await counts(world)

    response = await post(client, boss, carla)

    assert response.status_code == 201, response.text
    assert (await counts(world))["messages"] == before["messages"] + 1


async def test_several_recipients_some_threads_new(
    client: httpx.AsyncClient, world: World, talking: tuple[Member, Member]
) -> None:
    anna, bruno = talking
    carla = await world.user("carla")
    await world.mutual(anna, carla)

    both = await client.post(
        PM, json={"recipients": [carla.id, bruno.id], "message": "to you both"}, headers=anna.auth
    )
    again = await client.post(
        PM, json={"recipients": [carla.id, bruno.id], "message": "and again"}, headers=anna.auth
    )

    assert both.status_code == again.status_code == 201, (both.text, again.text)
    first, second = both.json(), again.json()
    assert first["receiver"]["username"] == second["receiver"]["username"] == "carla"
    await assert_state_consistent(world)
    await assert_events_gap_free(world)


async def test_concurrent_sends_between_the_same_people(
    client: httpx.AsyncClient, world: World
) -> None:
    """Crossing sends, in both directions and to several people at once, lock the same member
    and user rows: none may fail (a deadlock is retried) and the state stays exact."""
    people = [await world.user(f"p{i}") for i in range(4)]
    await world.mutual(*people)
    for a in people:
        for b in people:
            if a.id < b.id:
                await send(client, a, b)

    async def burst(sender: Member, *to: Member) -> int:
        return (await post(client, sender, *to)).status_code

    jobs = [burst(a, *[b for b in people if b is not a]) for a in people]
    jobs += [burst(a, b) for a in people for b in people if a is not b]
    statuses = await asyncio.gather(*(jobs * 3))

    assert set(statuses) == {201}
    await assert_state_consistent(world)
    await assert_events_gap_free(world)


async def test_the_statement_walks_indexes(world: World) -> None:
    """Every table the statement reads is reached through an index, whatever the data size."""
    if world.database.dialect != "postgresql":
        pytest.skip("the one-statement send is PostgreSQL's")
    async with world.database.autocommit() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        plan = await connection.fetch(
            f"EXPLAIN {one_statement.SEND}", 1, [2], "x", None, ["admin"], 37, [1, 2]
        )
    lines = "\n".join(r[0] for r in plan)
    assert "Seq Scan" not in lines, lines


@pytest.mark.parametrize(
    "query, status",
    [
        ("", 200),
        ("?limit=5", 200),
        ("?limit=abc", 400),
        ("?group=1", 400),
        ("?thread={tid}", 200),
        ("?thread=999999", 404),
        ("?thread=0", 400),
        ("?thread={tid}&before_message=1&from_message=1", 400),
        ("?user={bruno}", 200),
        ("?user={anna}", 200),
    ],
)
async def test_a_gone_caller_hears_401_from_every_page_whatever_the_query(
    client: httpx.AsyncClient,
    world: World,
    talking: tuple[Member, Member],
    query: str,
    status: int,
) -> None:
    """The inbox and thread pages confirm their caller inside their own statements (as the
    send does); a token whose user is gone hears 401: never a page, an empty page, a 404 or a
    complaint about the query."""
    anna, bruno = talking
    [(tid,)] = await world.sql("SELECT id FROM threads")
    url = PM + query.format(tid=tid, anna=anna.id, bruno=bruno.id)
    before = await client.get(url, headers=anna.auth)
    assert before.status_code == status, before.text  # what the same query hears while active
    await world.sql("UPDATE users SET is_active = false WHERE id = :anna", anna=anna.id)

    response = await client.get(url, headers=anna.auth)

    assert response.status_code == 401, response.text
    assert error_code(response) == "authentication_failed"
