"""argon2 runs off the event loop, a bounded number at a time, and client secrets skip it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from dovecote.core import security
from tests.conftest import World
from tests.test_oauth import PASSWORD, TOKEN, make_client

THREADS = 2


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"password_hash_threads": THREADS}


class _Ticker:
    """Measures the event loop's worst lag: how much later than asked a short sleep returns."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, time.perf_counter() - before - self.period)

    async def __aenter__(self) -> _Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


def _one_hash_seconds() -> float:
    hasher = PasswordHasher()  # security's parameters: argon2-cffi's defaults
    stored = hasher.hash(PASSWORD)
    started = time.perf_counter()
    hasher.verify(stored, PASSWORD)
    return time.perf_counter() - started


async def _login(client: httpx.AsyncClient, client_id: str, password: str) -> int:
    form = {"grant_type": "password", "client_id": client_id, "username": "anna"}
    response = await client.post(TOKEN, data={**form, "password": password})
    return response.status_code


async def test_logins_do_not_stall_the_event_loop(client: httpx.AsyncClient, world: World) -> None:
    await world.user("anna", password=PASSWORD)
    client_id, _ = await make_client(world)
    hash_seconds = _one_hash_seconds()
    await _login(client, client_id, PASSWORD)  # warm: first request's imports and connections

    async with _Ticker() as ticker:
        statuses = await asyncio.gather(
            *(_login(client, client_id, PASSWORD if i % 2 else "wrong password") for i in range(6))
        )

    assert sorted(statuses) == [200, 200, 200, 400, 400, 400]
    # Inline, each hash stalled the loop for a whole hash time (~200 ms); off the loop the
    # worst lag is scheduling noise. Half a hash and at most 100 ms leaves room for a busy box.
    assert ticker.worst < min(0.1, hash_seconds / 2), (ticker.worst, hash_seconds)


async def test_at_most_the_configured_number_of_hashes_run_at_once(
    client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.user("anna", password=PASSWORD)
    client_id, _ = await make_client(world)
    real = security._hasher
    running, peak, lock = 0, 0, threading.Lock()

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                return real.verify(stored, password)
            finally:
                with lock:
                    running -= 1

    monkeypatch.setattr(security, "_hasher", Counting())
    statuses = await asyncio.gather(*(_login(client, client_id, PASSWORD) for _ in range(6)))

    assert statuses == [200] * 6
    assert peak == THREADS


async def test_client_secrets_are_keyed_digests_not_argon2(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("anna", password=PASSWORD)
    client_id, secret = await make_client(world, confidential=True)
    assert secret is not None
    (stored,) = await world.sql(
        "SELECT secret_hash FROM oauth_clients WHERE client_id = :c", c=client_id
    )
    server_secret = world.app.state.dovecote.jwt_secret

    assert stored[0] == security.client_secret_digest(server_secret, secret)
    assert stored[0].startswith("hmac-sha256$") and secret not in stored[0]
    assert await _login(client, client_id, PASSWORD) == 401  # no secret given
    form = {"grant_type": "password", "client_id": client_id, "client_secret": secret}
    ok = await client.post(TOKEN, data={**form, "username": "anna", "password": PASSWORD})
    assert ok.status_code == 200
    bad = await client.post(
        TOKEN,
        data={**form, "client_secret": secret + "x", "username": "anna", "password": PASSWORD},
    )
    assert bad.status_code == 401


async def test_an_argon2_client_secret_from_before_still_works_and_is_replaced(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("anna", password=PASSWORD)
    client_id, _ = await make_client(world, confidential=True)
    secret = "an-old-secret-" + "y" * 40
    legacy = PasswordHasher().hash(secret)
    await world.sql(
        "UPDATE oauth_clients SET secret_hash = :h WHERE client_id = :c", h=legacy, c=client_id
    )
    form = {"grant_type": "password", "client_id": client_id, "username": "anna"}

    wrong = await client.post(TOKEN, data={**form, "client_secret": "guess", "password": PASSWORD})
    (after_wrong,) = await world.sql(
        "SELECT secret_hash FROM oauth_clients WHERE client_id = :c", c=client_id
    )
    right = await client.post(TOKEN, data={**form, "client_secret": secret, "password": PASSWORD})
    (after_right,) = await world.sql(
        "SELECT secret_hash FROM oauth_clients WHERE client_id = :c", c=client_id
    )
    again = await client.post(TOKEN, data={**form, "client_secret": secret, "password": PASSWORD})

    assert wrong.status_code == 401 and after_wrong[0] == legacy
    assert right.status_code == 200, right.text
    server_secret = world.app.state.dovecote.jwt_secret
    assert after_right[0] == security.client_secret_digest(server_secret, secret)
    assert again.status_code == 200


async def test_a_login_holds_no_transaction_while_it_hashes(
    client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While argon2 runs for a login, another request can write (SQLite has one writer)."""
    await world.user("anna", password=PASSWORD)
    other = await world.user("bruno")
    client_id, _ = await make_client(world)
    hashing, release = threading.Event(), threading.Event()
    real = security._hasher

    class Paused:
        def verify(self, stored: str, password: str) -> bool:
            hashing.set()
            release.wait(10)
            return real.verify(stored, password)

    monkeypatch.setattr(security, "_hasher", Paused())
    login = asyncio.create_task(_login(client, client_id, PASSWORD))
    assert await asyncio.to_thread(hashing.wait, 10)
    try:
        write = await asyncio.wait_for(
            world.sql("UPDATE users SET bio = 'busy' WHERE id = :id", id=other.id), timeout=5
        )
    finally:
        release.set()

    assert write == []
    assert await login == 200
