"""Redis down: sends still succeed and this process's sockets still hear about them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import World
from tests.realtime_helpers import next_frame, socket


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"redis_url": "redis://127.0.0.1:1/0"}  # nothing listens on port 1


async def test_a_send_succeeds_and_is_delivered_locally_while_redis_is_down(
    base: str, client: httpx.AsyncClient, world: World
) -> None:
    anna, bruno = await world.user("anna"), await world.user("bruno")
    await world.follow(bruno, anna)
    async with socket(base, bruno.token) as ws:
        response = await client.post(
            "/api/v2/pm/", json={"recipients": [bruno.id], "message": "hi"}, headers=anna.auth
        )
        assert response.status_code == 201
        data = await next_frame(ws)
    assert data["notification_obj"]["message"]["id"] == response.json()["id"]
