"""/metrics in one process: what real requests count, read back with prometheus_client's own
text parser. (Several worker processes: tests/test_observability_serve.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from dovecote.app import create_app
from dovecote.core.settings import Settings
from tests.conftest import PG_URL, World
from tests.realtime_helpers import HEARTBEAT, WAIT, next_frame, serving, socket

TOKEN = "metrics-token-" + "m" * 20
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"metrics_token": TOKEN, "ratelimit_enabled": True, "ratelimit_search": "2/minute"}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_need_the_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "authentication_failed"
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


async def test_no_metrics_on_the_api_without_a_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": None}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answer = await http.get("/metrics", headers=SCRAPE)
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "not_found"


def test_a_short_token_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="DOVECOTE_METRICS_TOKEN must be at least 16") as caught:
        create_app(settings.model_copy(update={"metrics_token": SecretStr("short-token")}))
    assert "short-token" not in str(caught.value)


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    before = await scrape(client)

    sent = await client.post(
        "/api/v2/pm/", json={"recipients": [bruno.id], "message": "hi"}, headers=anna.auth
    )
    assert sent.status_code == 201
    message_id = sent.json()["id"]
    for spelling in (f"/api/v2/pm/{message_id}/", f"/api/v2/pm/{message_id}"):
        assert (await client.get(spelling, headers=bruno.auth)).status_code == 200
    assert (await client.get("/api/v2/pm/999999/", headers=bruno.auth)).status_code == 404
    assert (await client.get("/no/such/place")).status_code == 404
    assert (await client.request("BREW", "/healthz")).status_code == 405
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "dovecote_http_requests_total"
    one = "/api/v2/pm/{id}/"
    assert delta(requests, method="POST", route="/api/v2/pm/", status="201") == 1
    assert delta(requests, method="GET", route=one, status="200") == 2  # both spellings
    assert delta(requests, method="GET", route=one, status="404") == 1
    assert delta(requests, method="GET", route="<unmatched>", status="404") == 1
    assert delta(requests, method="OTHER", route="/healthz", status="405") == 1
    latency = "dovecote_http_request_duration_seconds_count"
    assert delta(latency, method="GET", route=one) == 3
    buckets = "dovecote_http_request_duration_seconds_bucket"
    assert delta(buckets, method="GET", route=one, le="+Inf") == 3
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(str(message_id) in str(route) for route in routes)  # no ids in labels


async def test_sends_are_counted_by_outcome(client: httpx.AsyncClient, world: World) -> None:
    anna, bruno, carla = await world.user("anna"), await world.user("bruno"), await world.user()
    await world.follow(bruno, anna)
    before = await scrape(client)

    ok = {"recipients": [bruno.id], "message": "hi"}
    assert (await client.post("/api/v2/pm/", json=ok, headers=anna.auth)).status_code == 201
    assert (await client.post("/api/v2/pm", json=ok, headers=anna.auth)).status_code == 201
    refused = {"recipients": [carla.id], "message": "hi"}
    answer = await client.post("/api/v2/pm/", json=refused, headers=anna.auth)
    assert answer.status_code == 403
    code = answer.json()["errors"][0]["code"]
    empty = await client.post("/api/v2/pm/", json={"recipients": [bruno.id]}, headers=anna.auth)
    assert empty.status_code == 400
    field_code = empty.json()["errors"][0]["messages"][0]["code"]
    assert (await client.post("/api/v2/pm/", json=ok)).status_code == 401
    after = await scrape(client)

    def delta(outcome: str, code: str) -> float:
        labels = {"outcome": outcome, "code": code}
        return value(after, "dovecote_sends_total", **labels) - value(
            before, "dovecote_sends_total", **labels
        )

    assert delta("created", "") == 2
    assert delta("refused", code) == 1
    assert delta("refused", field_code) == 1
    assert delta("refused", "not_authenticated") == 1


async def test_rate_limit_refusals_are_counted_by_limit(
    client: httpx.AsyncClient, world: World
) -> None:
    user = await world.user("searcher")
    before = await scrape(client)
    codes = [
        (await client.get("/api/v2/pm/search/?user=x", headers=user.auth)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    after = await scrape(client)
    name = "dovecote_rate_limited_total"
    assert value(after, name, limit="search:user") - value(before, name, limit="search:user") == 1
    assert value(after, name, limit="search:ip") == value(before, name, limit="search:ip")


async def test_pool_use(client: httpx.AsyncClient, app: FastAPI, settings: Settings) -> None:
    database = app.state.dovecote.database
    pools = ["main"] if PG_URL else ["writer", "reader"]
    at_rest = await scrape(client)
    for pool in pools:
        assert value(at_rest, "dovecote_db_pool_size", pool=pool) >= 1
    reader = pools[-1]
    async with database.reader.connect():  # one connection held while /metrics answers
        held = await scrape(client)
    size = value(held, "dovecote_db_pool_size", pool=reader)
    expected = settings.db_pool_size * 2 if PG_URL else settings.db_pool_size  # + overflow
    assert size == expected
    used = "dovecote_db_pool_checked_out"
    assert value(held, used, pool=reader) == value(at_rest, used, pool=reader) + 1


@pytest.mark.skipif(not PG_URL, reason="the statements pool exists on PostgreSQL only")
async def test_statement_pool_use(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.mutual(anna, bruno)
    body = {"recipients": [bruno.id], "message": "first"}
    for _ in range(2):  # the second send into the thread is the one-statement path
        assert (await client.post("/api/v2/pm/", json=body, headers=anna.auth)).status_code == 201
    samples = await scrape(client)
    assert value(samples, "dovecote_db_pool_size", pool="statements") == settings.db_pool_size
    assert value(samples, "dovecote_db_pool_checked_out", pool="statements") == 0


async def test_live_sockets_and_frames(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    before = await scrape(client)
    async with serving(app) as base, socket(base, bruno.token) as ws:
        opened = await scrape(client)
        body = {"recipients": [bruno.id], "message": "live"}
        assert (await client.post("/api/v2/pm/", json=body, headers=anna.auth)).status_code == 201
        assert (await next_frame(ws))["event_id"] >= 1
        await ws.send(HEARTBEAT)
        async with asyncio.timeout(WAIT):
            assert await ws.recv() == HEARTBEAT
        during = await scrape(client)
        assert ws.response is not None
        assert len(ws.response.headers["x-request-id"]) == 32
    async with asyncio.timeout(WAIT):  # the server side of the socket ends a moment later
        while value(await scrape(client), "dovecote_websockets_open") != value(  # noqa: ASYNC110
            before, "dovecote_websockets_open"
        ):
            await asyncio.sleep(0.05)

    opened_now = "dovecote_websockets_open"
    assert value(opened, opened_now) == value(before, opened_now) + 1
    frames = "dovecote_websocket_frames_sent_total"
    assert value(during, frames, kind="event") - value(before, frames, kind="event") == 1
    assert value(during, frames, kind="heartbeat") - value(before, frames, kind="heartbeat") == 1
