from __future__ import annotations

import httpx

from tests.conftest import World


async def test_seed_request_is_answered_with_201(client: httpx.AsyncClient, world: World) -> None:
    sender, recipient = await world.user("anna"), await world.user("bruno")
    await world.follow(recipient, sender)

    response = await client.post(
        "/api/v2/pm/", json={"recipients": [recipient.id], "message": "string"}, headers=sender.auth
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sender_id"] == sender.id
    assert body["message"] == "string"
    assert body["status"] == "created"
    assert body["file"] is None
    assert body["receiver"]["id"] == recipient.id
    assert body["group"] is None
