"""A socket on which the client falls silent is closed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import World
from tests.realtime_helpers import HEARTBEAT, closed_with, socket


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ws_idle_timeout_seconds": 1.0}


async def test_a_silent_socket_is_closed_as_idle(base: str, world: World) -> None:
    anna = await world.user("anna")
    async with socket(base, anna.token) as ws:
        await ws.send(HEARTBEAT)
        assert await ws.recv() == HEARTBEAT
        assert await closed_with(ws) == 4408
