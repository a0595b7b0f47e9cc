"""Gap-free catch-up: every event exactly once and in order, whatever live delivery drops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from dovecote.core.broker import LiveEvent
from dovecote.realtime import service
from tests.conftest import World
from tests.pm_support import send
from tests.realtime_helpers import WAIT, frames, next_frame, socket


class DroppingBroker:
    """While `dropping`, the app's broker loses what is published (a lost pub/sub message)."""

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        broker = app.state.dovecote.broker
        self._publish = broker.publish
        self.dropping = False
        self.dropped = 0
        self._changed = asyncio.Condition()
        monkeypatch.setattr(broker, "publish", self.publish)

    async def publish(self, events: Sequence[LiveEvent]) -> None:
        if self.dropping:
            async with self._changed:
                self.dropped += len(events)
                self._changed.notify_all()
            return
        await self._publish(events)

    async def wait_dropped(self, count: int) -> None:
        """Publishing runs after the response: wait until `count` events were lost."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: self.dropped >= count)


@pytest.fixture
def lossy(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> DroppingBroker:
    return DroppingBroker(app, monkeypatch)


def ids(data: list[dict[str, Any]]) -> list[int]:
    return [d["event_id"] for d in data]


def messages(data: list[dict[str, Any]]) -> list[int]:
    return [d["notification_obj"]["message"]["id"] for d in data]


async def test_reconnecting_with_since_gets_every_missed_event_once_in_order(
    base: str, client: httpx.AsyncClient, world: World, lossy: DroppingBroker
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    async with socket(base, bruno.token) as ws:
        first = (await send(client, anna, bruno, text="one"))["id"]
        seen = await next_frame(ws)
    assert seen["event_id"] == 1

    lossy.dropping = True  # live delivery is down while Bruno is away, and after
    missed = [(await send(client, anna, bruno, text=f"missed {i}"))["id"] for i in range(3)]
    await lossy.wait_dropped(6)  # three messages, two users each

    async with socket(base, bruno.token, since=seen["event_id"]) as ws:
        replayed = await frames(ws, 3)
        lossy.dropping = False
        last = (await send(client, anna, bruno, text="back"))["id"]
        live = await next_frame(ws)
    assert ids(replayed) == [2, 3, 4]
    assert messages(replayed) == missed
    assert (live["event_id"], live["notification_obj"]["message"]["id"]) == (5, last)
    assert first not in messages([*replayed, live])


async def test_a_live_gap_is_filled_from_the_database(
    base: str, client: httpx.AsyncClient, world: World, lossy: DroppingBroker
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    async with socket(base, bruno.token) as ws:
        lossy.dropping = True
        missed = [(await send(client, anna, bruno, text=f"lost {i}"))["id"] for i in range(2)]
        await lossy.wait_dropped(4)
        lossy.dropping = False
        last = (await send(client, anna, bruno, text="arrives"))["id"]  # its id jumps past last + 1
        got = await frames(ws, 3)
        after = (await send(client, anna, bruno, text="and then"))["id"]
        tail = await next_frame(ws)
    assert ids(got) == [1, 2, 3]
    assert messages(got) == [*missed, last]
    assert (tail["event_id"], tail["notification_obj"]["message"]["id"]) == (4, after)


async def test_no_duplicate_at_the_seam_between_backlog_and_live(
    base: str, client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event committed while the backlog is being read is both in the backlog and
    nudged live: it must be sent once."""
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    backlog_reading = asyncio.Event()
    go_on = asyncio.Event()
    read_backlog = service.frames_after

    async def slow_backlog(*args: Any) -> Any:
        if not backlog_reading.is_set():
            backlog_reading.set()
            await go_on.wait()
        return await read_backlog(*args)

    monkeypatch.setattr(service, "frames_after", slow_backlog)
    async with socket(base, bruno.token, since=0) as ws:
        await asyncio.wait_for(backlog_reading.wait(), 10)
        during = (await send(client, anna, bruno, text="during the backlog read"))[
            "id"
        ]  # nudged live too
        go_on.set()
        after = (await send(client, anna, bruno, text="after"))["id"]
        got = await frames(ws, 2)
    assert ids(got) == [1, 2]
    assert messages(got) == [during, after]


async def test_the_rest_twin_pages_through_events(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    sent = [(await send(client, anna, bruno, text=f"m{i}"))["id"] for i in range(5)]

    first = await client.get("/api/v2/pm/events/?since=0&limit=2", headers=bruno.auth)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["count"] == 5
    assert [r["type"] for r in page["results"]] == ["interaction"] * 2
    assert [r["data"]["event_id"] for r in page["results"]] == [1, 2]
    assert page["next"].startswith("http://testserver/api/v2/pm/events/")
    assert "since=2" in page["next"]

    rest = await client.get("/api/v2/pm/events?since=2&limit=100", headers=bruno.auth)
    body = rest.json()
    assert body["count"] == 3
    assert [r["data"]["notification_obj"]["message"]["id"] for r in body["results"]] == sent[2:]
    assert body["next"] is None

    caught_up = await client.get("/api/v2/pm/events/?since=5", headers=bruno.auth)
    assert caught_up.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_the_rest_twin_shows_only_the_callers_events(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user()
    await world.follow(bruno, anna)
    await send(client, anna, bruno, text="private")
    response = await client.get("/api/v2/pm/events/", headers=carla.auth)
    assert response.json()["results"] == []
    assert response.json()["count"] == 0


@pytest.mark.parametrize(
    "query", ["since=abc", "since=-3", f"since={2**63}", "limit=-1", "limit=x"]
)
async def test_the_rest_twin_rejects_bad_cursors(
    client: httpx.AsyncClient, world: World, query: str
) -> None:
    anna = await world.user("anna")
    response = await client.get(f"/api/v2/pm/events/?{query}", headers=anna.auth)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] in ("since", "limit")


async def test_the_rest_twin_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/pm/events/")
    assert response.status_code == 401


async def test_catching_up_costs_the_same_few_queries_for_one_event_or_many(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user()
    await world.mutual(anna, bruno, carla)
    for i in range(12):
        await send(client, anna if i % 2 else carla, bruno, text=f"m{i}")
    state = app.state.dovecote
    statements: list[str] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):  # not SQLite's BEGIN
            statements.append(args[2])

    engine = state.database.reader.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        one = await service.frames_after(state.database, state.settings, bruno.id, 11, 100)
        one_cost, statements[:] = len(statements), []
        many = await service.frames_after(state.database, state.settings, bruno.id, 0, 100)
        many_cost = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (len(one), len(many)) == (1, 12)
    assert one_cost == many_cost == 3
