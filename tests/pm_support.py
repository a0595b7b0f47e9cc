"""Small helpers for the private-message tests: send, read the inbox, read a thread."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from dovecote.core import clock
from tests.conftest import Member

PM = "/api/v2/pm/"


async def send(client: httpx.AsyncClient, sender: Member, *to: Member, text: str = "hi") -> Any:
    """Send one message (as the seed does) and return the answer; time moves on 1 ms so that
    every message has its own timestamp."""
    clock.advance(timedelta(milliseconds=1))
    response = await client.post(
        PM, json={"recipients": [m.id for m in to], "message": text}, headers=sender.auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def get_ok(client: httpx.AsyncClient, member: Member, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params, headers=member.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def inbox(client: httpx.AsyncClient, member: Member, **params: Any) -> Any:
    return await get_ok(client, member, PM, **params)


async def thread(client: httpx.AsyncClient, member: Member, **params: Any) -> Any:
    return await get_ok(client, member, PM, **params)


def headlines(page: Any) -> list[str]:
    return [snippet["headline"] for snippet in page["results"]]


def statuses(page: Any) -> dict[int, str]:
    return {snippet["id"]: snippet["thread_status"] for snippet in page["results"]}


def texts(page: Any) -> list[str]:
    return [message["message"] for message in page["results"]]


def error_code(response: httpx.Response) -> str:
    """The stable code of an error answer, whether it names a field or not."""
    item = response.json()["errors"][0]
    return str(item["messages"][0]["code"] if "messages" in item else item["code"])


def error_field(response: httpx.Response) -> str | None:
    item = response.json()["errors"][0]
    return item.get("field")
