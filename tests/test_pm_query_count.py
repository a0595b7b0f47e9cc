"""An inbox page and a thread page cost the same few SQL statements whatever the data size
(SPEC §3.2: "the cost of one page must not grow with the number of threads or messages")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from tests.conftest import Member, World
from tests.pm_support import assert_state_consistent, inbox, seed_threads, send, thread

INBOX_STATEMENTS = 1  # the caller, their inbox count, the page and its people: one statement
THREAD_STATEMENTS = 2  # the caller with their member row and the two people; the page


@contextmanager
def statements(app: FastAPI) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the app's engines run inside the block (BEGIN/COMMIT excluded)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, _many: bool) -> None:
        if sql.split()[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            seen.append((sql, params))

    engines = [engine.sync_engine for engine in app.state.dovecote.database.engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def two_people(world: World) -> tuple[Member, Member]:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    return anna, bruno


async def measure_inbox(app: FastAPI, client: httpx.AsyncClient, member: Member) -> int:
    await inbox(client, member)  # warm: engines connected, statements compiled
    with statements(app) as seen:
        page = await inbox(client, member, limit=20)
    assert len(page["results"]) == min(page["count"], 20)
    return len(seen)


async def measure_thread(app: FastAPI, client: httpx.AsyncClient, member: Member, tid: int) -> int:
    await thread(client, member, thread=tid)  # also marks it seen: both runs read a seen thread
    with statements(app) as seen:
        page = await thread(client, member, thread=tid, limit=20)
    assert len(page["results"]) == min(page["count"], 20)
    return len(seen)


async def test_an_inbox_page_costs_the_same_for_3_threads_or_400(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await two_people(world)
    await send(client, bruno, anna)
    await seed_threads(world, anna, threads=2, messages=1)
    small = await measure_inbox(app, client, anna)

    await seed_threads(world, anna, threads=400, messages=1)
    big = await measure_inbox(app, client, anna)

    assert (await inbox(client, anna))["count"] == 403
    assert small == big == INBOX_STATEMENTS
    await assert_state_consistent(world)


async def test_a_thread_page_costs_the_same_for_5_messages_or_2000(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    anna, _ = await two_people(world)
    small_thread = await seed_threads(world, anna, threads=1, messages=5)
    big_thread = await seed_threads(world, anna, threads=1, messages=2000)

    small = await measure_thread(app, client, anna, small_thread)
    big = await measure_thread(app, client, anna, big_thread)
    assert small == big == THREAD_STATEMENTS

    page = await thread(client, anna, thread=big_thread)
    with statements(app) as older:
        deep = await client.get(page["next"], headers=anna.auth)
    assert deep.status_code == 200 and len(deep.json()["results"]) == 20
    assert len(older) == THREAD_STATEMENTS
    await assert_state_consistent(world)


async def test_reading_an_unread_thread_adds_one_write(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await two_people(world)
    tid = (await send(client, bruno, anna))["thread_id"]
    await seed_threads(world, anna, threads=1, messages=300)

    with statements(app) as seen:
        await thread(client, anna, thread=tid)

    assert len(seen) == THREAD_STATEMENTS + 1
    writes = [sql for sql, _ in seen if not sql.lstrip().upper().startswith("SELECT")]
    assert len(writes) == 1 and writes[0].lstrip().upper().startswith("UPDATE THREAD_MEMBERS")


async def test_pages_come_from_bounded_indexed_queries(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    """The page statements have a LIMIT and, on SQLite, walk an index in order (no full scan,
    no sort of every thread or message): the shape that keeps a page's cost flat."""
    anna, _ = await two_people(world)
    await seed_threads(world, anna, threads=50, messages=1)
    busy = await seed_threads(world, anna, threads=50, messages=200)
    await world.sql(  # anna deleted the first fifty
        "UPDATE thread_members SET cleared_before_id = last_message_id, message_count = 0 "
        "WHERE user_id = :anna AND thread_id < :busy - 49",
        anna=anna.id,
        busy=busy,
    )

    with statements(app) as seen:
        await inbox(client, anna)
        await thread(client, anna, thread=busy)
    pages = [(sql, params) for sql, params in seen if "LIMIT" in sql.upper()]
    assert len(pages) == 2

    if app.state.dovecote.database.dialect != "sqlite":
        await _assert_postgresql_uses_the_indexes(world, pages)
        return
    plans = [await _sqlite_plan(world, sql, params) for sql, params in pages]
    for plan in plans:
        assert not any("TEMP B-TREE" in line for line in plan), plan
        # A SCAN may only read a materialised page (`anon_*`: the 20 rows the LIMIT kept).
        full_scans = [
            line
            for line in plan
            if line.startswith("SCAN") and "USING" not in line and "anon_" not in line
        ]
        assert full_scans == [], "\n".join(plan)
    inbox_plan, thread_plan = plans
    assert any(
        "thread_members USING INDEX ix_thread_members_user_id_last_message_id_thread_id" in line
        for line in inbox_plan
    ), inbox_plan
    assert (
        "thread_messages" in thread_plan[0] and "(thread_id=? AND message_id>?)" in thread_plan[0]
    )


async def test_threads_deleted_by_the_member_are_not_in_the_inbox_index(world: World) -> None:
    """A member who deleted thousands of threads does not pay for them on every inbox page:
    the index the inbox walks is partial, holding only the threads the member can see."""
    if world.database.dialect == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE name = :name"
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"

    [row] = await world.sql(query, name="ix_thread_members_user_id_last_message_id_thread_id")

    assert "last_message_id > cleared_before_id" in str(row[0]).replace("(", "").replace(")", "")


async def _sqlite_plan(world: World, sql: str, params: Any) -> list[str]:
    async with world.database.read_sessions() as session:
        connection = await session.connection()
        raw = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(params))
        return [str(row[-1]) for row in raw]


async def _assert_postgresql_uses_the_indexes(world: World, pages: list[tuple[str, Any]]) -> None:
    """With so little data the planner may rightly prefer a scan; forbidding scans and sorts
    shows the indexes serve both the filter and the order."""
    async with world.database.read_sessions() as session:
        connection = await session.connection()
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await connection.exec_driver_sql("SET LOCAL enable_sort = off")
        for sql, params in pages:
            raw = await connection.exec_driver_sql(f"EXPLAIN {sql}", tuple(params))
            plan = "\n".join(str(row[0]) for row in raw)
            assert "Seq Scan" not in plan and "Sort" not in plan, plan
        await session.rollback()
