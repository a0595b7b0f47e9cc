"""Housekeeping: idempotency keys past their TTL and events past their retention go, in batches,
with one runner at a time across processes; a cursor older than what is kept hears "reload"."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from typer.testing import CliRunner

from dovecote.app import create_app
from dovecote.cli import app as cli
from dovecote.core import clock, security
from dovecote.core.db import Database, create_database, run_alone
from dovecote.core.settings import Settings, get_settings
from dovecote.housekeeping import service as housekeeping
from dovecote.realtime import service as realtime
from tests.conftest import SECRET, Member, World
from tests.pm_support import send
from tests.realtime_helpers import WAIT, socket

KEY_TTL = 3_600
RETENTION = 5_400
PM = "/api/v2/pm/"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "idempotency_ttl_seconds": KEY_TTL,
        "events_retention_seconds": RETENTION,
        "housekeeping_batch_size": 2,  # several batches even for these few rows
        "housekeeping_interval_seconds": 0,  # passes run only where a test runs them
    }


def lasting(member: Member) -> Member:
    """The member with a token that outlives the clock moves of these tests."""
    token = security.issue_jwt(SECRET.encode(), member.id, lifetime=timedelta(days=30))
    return Member(member.id, member.username, token)


@pytest.fixture
async def pair(world: World) -> tuple[Member, Member]:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    return lasting(anna), lasting(bruno)


async def rows(world: World, statement: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await world.sql(statement)]


def database_of(app: FastAPI) -> Database:
    database: Database = app.state.dovecote.database
    return database


async def test_a_pass_removes_expired_keys_and_old_events_and_nothing_still_needed(
    app: FastAPI, client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    for i in range(3):  # t0: three keys, six events (one per side)
        await send(client, anna, bruno, text=f"old {i}", headers={"Idempotency-Key": f"old-{i}"})
    clock.advance(timedelta(seconds=KEY_TTL + 1))
    fresh = await send(
        client, anna, bruno, text="fresh", headers={"Idempotency-Key": "fresh"}
    )  # t0 + TTL + 1

    removed = await housekeeping.run_once(database_of(app), app.state.dovecote.settings)

    assert removed == housekeeping.Removed(idempotency_keys=3, events=0)
    assert await rows(world, "SELECT key FROM idempotency_keys") == [("fresh",)]
    retry = await send(
        client, anna, bruno, text="fresh", headers={"Idempotency-Key": "fresh"}
    )  # still exactly-once
    assert retry["id"] == fresh["id"]

    clock.advance(timedelta(seconds=RETENTION - KEY_TTL))  # t0 + retention + 1
    removed = await housekeeping.run_once(database_of(app), app.state.dovecote.settings)

    assert removed == housekeeping.Removed(idempotency_keys=0, events=6)
    kept = await rows(world, "SELECT user_id, id FROM events ORDER BY user_id, id")
    assert kept == [(anna.id, 4), (bruno.id, 4)]
    assert await rows(world, "SELECT key FROM idempotency_keys") == [("fresh",)]
    assert len(await world.sql("SELECT id FROM messages")) == 4, "messages are not pruned"


async def test_a_reclaimed_key_is_not_purged(
    app: FastAPI, client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await send(client, anna, bruno, text="first", headers={"Idempotency-Key": "k"})
    clock.advance(timedelta(seconds=KEY_TTL + 1))
    again = await send(
        client, anna, bruno, text="second use after the TTL", headers={"Idempotency-Key": "k"}
    )

    removed = await housekeeping.run_once(database_of(app), app.state.dovecote.settings)

    assert removed is not None and removed.idempotency_keys == 0
    retry = await send(
        client, anna, bruno, text="second use after the TTL", headers={"Idempotency-Key": "k"}
    )
    assert retry["id"] == again["id"]


async def test_two_runners_at_once_only_one_does_the_work(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    """Two processes: two Database objects (engines, pools) on the same database."""
    anna, bruno = pair
    for i in range(5):
        await send(client, anna, bruno, text=f"m{i}", headers={"Idempotency-Key": f"k{i}"})
    clock.advance(timedelta(seconds=RETENTION + 1))
    one, other = create_database(settings), create_database(settings)
    try:
        async with run_alone(one, housekeeping.JOB, housekeeping.LEASE_SECONDS) as turn:
            assert turn is not None
            assert await housekeeping.run_once(other, settings) is None  # stays out
            assert await turn.keep()
        together = await asyncio.gather(
            housekeeping.run_once(one, settings), housekeeping.run_once(other, settings)
        )
    finally:
        await one.dispose()
        await other.dispose()
    done = [r for r in together if r is not None]
    assert sum(r.idempotency_keys for r in done) == 5
    assert sum(r.events for r in done) == 10


async def test_a_runner_that_stalls_past_its_sqlite_lease_loses_it(
    app: FastAPI, settings: Settings
) -> None:
    if database_of(app).dialect != "sqlite":
        pytest.skip("PostgreSQL's advisory lock lives as long as its connection")
    one, other = create_database(settings), create_database(settings)
    try:
        async with run_alone(one, housekeeping.JOB, housekeeping.LEASE_SECONDS) as stalled:
            assert stalled is not None
            clock.advance(timedelta(seconds=housekeeping.LEASE_SECONDS + 1))
            async with run_alone(other, housekeeping.JOB, housekeeping.LEASE_SECONDS) as turn:
                assert turn is not None, "an expired lease is free"
                assert not await stalled.keep(), "the stalled runner learns it lost the lease"
    finally:
        await one.dispose()
        await other.dispose()


async def test_serve_runs_housekeeping_periodically(
    settings: Settings, world: World, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await send(client, anna, bruno, text="old")
    clock.advance(timedelta(seconds=RETENTION + 1))
    periodic = create_app(settings.model_copy(update={"housekeeping_interval_seconds": 1}))
    async with LifespanManager(periodic):
        async with asyncio.timeout(WAIT):
            while await world.sql("SELECT id FROM events"):  # noqa: ASYNC110 - polls the db
                await asyncio.sleep(0.1)


# --- catching up from a cursor older than what is kept ----------------------------------------


async def pruned_backlog(
    app: FastAPI, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    """Bruno's events 1 and 2 removed by housekeeping, 3 and 4 kept."""
    anna, bruno = pair
    await send(client, anna, bruno, text="one")
    await send(client, anna, bruno, text="two")
    clock.advance(timedelta(seconds=RETENTION + 1))
    await send(client, anna, bruno, text="three")
    await send(client, anna, bruno, text="four")
    removed = await housekeeping.run_once(database_of(app), app.state.dovecote.settings)
    assert removed is not None and removed.events == 4


async def received(ws: Any, count: int) -> list[dict[str, Any]]:
    got = []
    for _ in range(count):
        async with asyncio.timeout(WAIT):
            got.append(json.loads(await ws.recv()))
    return got


def shape(frames: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(f["type"], f["data"]["event_id"]) for f in frames]


async def test_a_socket_whose_cursor_was_pruned_is_told_to_reload_then_continues(
    app: FastAPI, base: str, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await pruned_backlog(app, client, pair)
    async with socket(base, bruno.token, since=1) as ws:
        first = await received(ws, 3)
        await send(client, anna, bruno, text="live")
        live = await received(ws, 1)
    assert shape(first) == [("reload", 2), ("interaction", 3), ("interaction", 4)]
    assert first[0]["data"]["reason"] == "cursor_too_old"
    assert shape(live) == [("interaction", 5)]


async def test_a_cursor_at_the_oldest_kept_event_needs_no_reload(
    app: FastAPI, base: str, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    _, bruno = pair
    await pruned_backlog(app, client, pair)
    async with socket(base, bruno.token, since=2) as ws:
        assert shape(await received(ws, 2)) == [("interaction", 3), ("interaction", 4)]


async def test_reload_when_every_event_after_the_cursor_is_gone(
    app: FastAPI, base: str, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    await send(client, anna, bruno, text="one")
    await send(client, anna, bruno, text="two")
    clock.advance(timedelta(seconds=RETENTION + 1))
    await housekeeping.run_once(database_of(app), app.state.dovecote.settings)
    async with socket(base, bruno.token, since=0) as ws:
        reload = await received(ws, 1)
        await send(client, anna, bruno, text="three")
        live = await received(ws, 1)
    assert shape(reload) == [("reload", 2)]
    assert shape(live) == [("interaction", 3)]


async def test_a_hole_in_the_middle_is_a_reload_in_place(
    app: FastAPI, client: httpx.AsyncClient, world: World, pair: tuple[Member, Member]
) -> None:
    anna, bruno = pair
    for i in range(4):
        await send(client, anna, bruno, text=f"m{i}")
    await world.sql("DELETE FROM events WHERE user_id = :u AND id = 2", u=bruno.id)
    state = app.state.dovecote
    frames = await realtime.frames_after(state.database, state.settings, bruno.id, 0, 100)
    assert [(f.type, f.data.event_id) for f in frames] == [
        ("interaction", 1),
        ("reload", 2),
        ("interaction", 3),
        ("interaction", 4),
    ]


async def test_polling_from_a_pruned_cursor_is_410_naming_where_to_continue(
    app: FastAPI, client: httpx.AsyncClient, pair: tuple[Member, Member]
) -> None:
    _, bruno = pair
    await pruned_backlog(app, client, pair)

    gone = await client.get("/api/v2/pm/events/?since=1", headers=bruno.auth)
    assert gone.status_code == 410, gone.text
    assert gone.json()["errors"][0]["code"] == "cursor_too_old"
    assert gone.json()["event_id"] == 2

    after = await client.get("/api/v2/pm/events/?since=2", headers=bruno.auth)
    oldest = await client.get("/api/v2/pm/events/", headers=bruno.auth)
    for page in (after, oldest):
        assert page.status_code == 200, page.text
        assert [r["data"]["event_id"] for r in page.json()["results"]] == [3, 4]
        assert page.json()["count"] == 2 and page.json()["next"] is None


# --- the command line -------------------------------------------------------------------------


def test_the_cli_runs_one_pass_and_says_what_it_removed(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOVECOTE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DOVECOTE_DATABASE_URL", database_url)
    monkeypatch.setenv("DOVECOTE_JWT_SECRET", SECRET)
    monkeypatch.setenv("DOVECOTE_IDEMPOTENCY_TTL_SECONDS", str(KEY_TTL))
    monkeypatch.setenv("DOVECOTE_EVENTS_RETENTION_SECONDS", str(RETENTION))
    get_settings.cache_clear()
    try:
        asyncio.run(_old_rows(get_settings()))
        clock.advance(timedelta(seconds=RETENTION + 1))
        result = CliRunner().invoke(cli, ["housekeeping"])
        assert result.exit_code == 0, (result.stdout, result.exception)
        assert "removed 1 idempotency keys and 2 events" in result.stdout
        again = CliRunner().invoke(cli, ["housekeeping"])
        assert "removed 0 idempotency keys and 0 events" in again.stdout
    finally:
        get_settings.cache_clear()


async def _old_rows(settings: Settings) -> None:
    """One send through the app, with a key: one key, two events."""
    application = create_app(settings)
    async with LifespanManager(application):
        world = World(application)
        anna, bruno = await world.user("anna"), await world.user("bruno")
        await world.follow(bruno, anna)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await send(http, anna, bruno, text="old", headers={"Idempotency-Key": "old"})
