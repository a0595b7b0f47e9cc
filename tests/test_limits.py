"""Abuse limits: rate limits (429 + Retry-After) and request body caps (413)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, World


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "ratelimit_enabled": True,
        "ratelimit_send": "3/minute",
        "ratelimit_search": "2/minute",
        "ratelimit_login": "2/minute",
        "ratelimit_upload": "3/minute",
        "max_body_bytes": 4096,
    }


async def test_sends_over_the_limit_get_429_with_retry_after(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await world.user("s"), await world.user("r")
    await world.follow(recipient, sender)
    body = {"recipients": [recipient.id], "message": "hi"}

    answers = [await client.post("/api/v2/pm/", json=body, headers=sender.auth) for _ in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    limited = answers[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["errors"][0]["code"] == "throttled"
    rows = await world.sql("SELECT count(*) FROM messages")
    assert rows[0][0] == 3


async def test_refused_sends_do_not_count_against_the_limit(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, follower, stranger = [await world.user(n) for n in ("s", "f", "x")]
    await world.follow(follower, sender)
    refused = [
        {"recipients": [], "message": "hi"},  # 400: no recipient
        {"recipients": [stranger.id], "message": "hi"},  # 403: does not follow the sender
        {"recipients": [999_999], "message": "hi"},  # 400: no such user
    ]

    burst = [
        (await client.post("/api/v2/pm/", json=body, headers=sender.auth)).status_code
        for body in refused * 4
    ]
    good = {"recipients": [follower.id], "message": "hi"}
    sends = [
        (await client.post("/api/v2/pm/", json=good, headers=sender.auth)).status_code
        for _ in range(4)
    ]

    assert burst == [400, 403, 400] * 4
    assert sends == [201, 201, 201, 429]


async def test_limits_are_per_user(client: httpx.AsyncClient, world: World) -> None:
    a, b, r = await world.user("a"), await world.user("b"), await world.user("r")
    await world.follow(r, a)
    await world.follow(r, b)
    body = {"recipients": [r.id], "message": "hi"}
    for _ in range(3):
        await client.post("/api/v2/pm/", json=body, headers=a.auth)

    assert (await client.post("/api/v2/pm/", json=body, headers=a.auth)).status_code == 429
    assert (await client.post("/api/v2/pm/", json=body, headers=b.auth)).status_code == 201


async def test_search_is_limited(client: httpx.AsyncClient, world: World) -> None:
    user = await world.user("searcher")
    codes = [
        (await client.get("/api/v2/pm/search/?user=x", headers=user.auth)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]


async def test_login_attempts_are_limited(client: httpx.AsyncClient, world: World) -> None:
    form = {
        "grant_type": "password",
        "client_id": "nope",
        "username": "victim",
        "password": "guess",
    }
    codes = [(await client.post("/oauth/token/", data=form)).status_code for _ in range(3)]
    assert codes[-1] == 429


async def test_an_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, world: World
) -> None:
    sender, recipient = await world.user("s"), await world.user("r")
    await world.follow(recipient, sender)
    answer = await client.post(
        "/api/v2/pm/",
        json={"recipients": [recipient.id], "message": "x" * 5000},
        headers=sender.auth,
    )
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["code"] == "body_too_large"


async def test_a_streamed_body_growing_past_the_cap_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    sender = await world.user("s")

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1024

    answer = await client.post(
        "/api/v2/pm/",
        content=chunks(),
        headers={**sender.auth, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    rows = await world.sql("SELECT count(*) FROM messages")
    assert rows[0][0] == 0


@pytest.mark.skipif(not REDIS_URL, reason="DOVECOTE_TEST_REDIS_URL not set")
async def test_limits_are_shared_through_redis(world: World, settings: Any) -> None:
    from dovecote.core.errors import RateLimited
    from dovecote.core.ratelimit import RateLimiter

    shared = settings.model_copy(
        update={"redis_url": REDIS_URL, "redis_prefix": f"test-{secrets.token_hex(4)}"}
    )
    one, two = RateLimiter(shared), RateLimiter(shared)  # as in two server processes
    await one.check("send", user=1, ip=None)
    await two.check("send", user=1, ip=None)
    await one.check("send", user=1, ip=None)
    with pytest.raises(RateLimited):
        await two.check("send", user=1, ip=None)
    await one.reset()


async def test_an_unreachable_redis_fails_open(world: World, settings: Any) -> None:
    from dovecote.core.ratelimit import RateLimiter

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    limiter = RateLimiter(broken)
    for _ in range(5):
        await limiter.check("send", user=1, ip="127.0.0.1")


async def test_uploads_are_limited(client: httpx.AsyncClient, world: World) -> None:
    user = await world.user("uploader")
    codes = []
    for _ in range(4):
        answer = await client.post(
            "/api/v2/pm/upload/", files={"file": ("a.txt", b"hello")}, headers=user.auth
        )
        codes.append(answer.status_code)
    assert codes == [200, 200, 200, 429]


async def test_readiness_reports_redis_down(world: World, settings: Any) -> None:
    from asgi_lifespan import LifespanManager

    from dovecote.app import create_app

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(broken)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["errors"][0]["code"] == "redis_unavailable"
            assert (await http.get("/healthz")).status_code == 200
