"""Small helpers for the private-message tests: send, read the inbox, read a thread."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text

from dovecote.core import clock
from dovecote.models import Message, Thread, ThreadMessage, User
from dovecote.ops import invariants
from dovecote.pm.repository import NEW_MESSAGE
from tests.conftest import Member, World

PM = "/api/v2/pm/"


async def post_message(
    client: httpx.AsyncClient,
    sender: Member,
    recipients: Any,
    message: Any = "hi",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a send as the seed does, whatever the body holds; the answer is the caller's to
    judge (the tests of refusals send what a client must not)."""
    return await client.post(
        PM,
        json={"recipients": recipients, "message": message},
        headers={**sender.auth, **(headers or {})},
    )


async def send(
    client: httpx.AsyncClient,
    sender: Member,
    *to: Member,
    text: str = "hi",
    headers: dict[str, str] | None = None,
) -> Any:
    """Send one message and return the answer (201, or the test fails); time moves on 1 ms so
    that every message has its own timestamp."""
    clock.advance(timedelta(milliseconds=1))
    response = await post_message(client, sender, [m.id for m in to], text, headers)
    assert response.status_code == 201, response.text
    return response.json()


async def get_ok(client: httpx.AsyncClient, member: Member, url: str, **params: Any) -> Any:
    # (httpx would drop a query already in `url` when given even empty params)
    response = await client.get(url, params=params or None, headers=member.auth)
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


# --- bulk data and the stored state ------------------------------------------------------------


async def seed_threads(world: World, owner: Member, threads: int, messages: int) -> int:
    """Write `threads` one-to-one threads of `owner` straight into the tables, each with one
    message from the other side, the last of them with `messages` messages; returns its id.
    The per-member rows, events and counters are derived from the messages, as sending keeps
    them (assert_state_consistent holds after it)."""
    now, batch = clock.now(), secrets.token_hex(4)
    async with world.database.write_sessions() as session:
        peers = await _returning_ids(
            session,
            User,
            [
                {"username": f"b{batch}_{i}", "username_key": f"b{batch}_{i}", "date_joined": now}
                for i in range(threads)
            ],
        )
        pairs = [(min(owner.id, p), max(owner.id, p)) for p in peers]
        thread_ids = await _returning_ids(
            session,
            Thread,
            [{"user_low_id": lo, "user_high_id": hi, "created_at": now} for lo, hi in pairs],
        )
        senders = [(t, p) for t, p in zip(thread_ids, peers, strict=True)]
        busy, peer = senders[-1]
        senders += [(busy, owner.id if i % 2 else peer) for i in range(messages - 1)]
        message_ids = await _returning_ids(
            session,
            Message,
            [{"sender_id": s, "body": f"bulk {t}", "created_at": now} for t, s in senders],
        )
        await session.execute(
            insert(ThreadMessage),
            [
                {"thread_id": t, "message_id": m}
                for (t, _), m in zip(senders, message_ids, strict=True)
            ],
        )
        await session.execute(text(_DERIVE_MEMBERS), {"first": thread_ids[0]})
        await session.execute(text(_DERIVE_EVENTS), {"first": thread_ids[0]})
        await session.execute(text(_DERIVE_LAST_EVENTS))
        await session.execute(text(_DERIVE_INBOX_COUNTS))
        await session.commit()
    return busy


async def _returning_ids(session: Any, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    statement = insert(model).returning(model.id, sort_by_parameter_order=True)
    return list((await session.execute(statement, rows)).scalars())


_DERIVE_MEMBERS = """
INSERT INTO thread_members (thread_id, user_id, last_message_id, last_incoming_id,
    last_read_id, cleared_before_id, visible_since_id, message_count)
SELECT tm.thread_id, side.user_id, MAX(tm.message_id),
    COALESCE(MAX(CASE WHEN m.sender_id != side.user_id THEN tm.message_id END), 0),
    COALESCE(MAX(CASE WHEN m.sender_id = side.user_id THEN tm.message_id END), 0),
    0, MIN(tm.message_id), COUNT(*)
FROM thread_messages tm
JOIN messages m ON m.id = tm.message_id
JOIN (SELECT id AS thread_id, user_low_id AS user_id FROM threads
      UNION ALL SELECT id, user_high_id FROM threads) side ON side.thread_id = tm.thread_id
WHERE tm.thread_id >= :first
GROUP BY tm.thread_id, side.user_id
"""

# Each member's events, numbered on from their last one in message order, as sends number them.
_DERIVE_EVENTS = f"""
INSERT INTO events (user_id, id, activity_type, thread_id, message_id, created_at)
SELECT tm.user_id,
    u.last_event_id + ROW_NUMBER() OVER (PARTITION BY tm.user_id
                                         ORDER BY l.message_id, l.thread_id),
    {NEW_MESSAGE}, l.thread_id, l.message_id, m.created_at
FROM thread_messages l
JOIN messages m ON m.id = l.message_id
JOIN thread_members tm ON tm.thread_id = l.thread_id
JOIN users u ON u.id = tm.user_id
WHERE l.thread_id >= :first
"""

_DERIVE_LAST_EVENTS = """
UPDATE users SET last_event_id = COALESCE((SELECT MAX(e.id) FROM events e
    WHERE e.user_id = users.id), 0)
"""

_DERIVE_INBOX_COUNTS = """
UPDATE users SET inbox_count = (SELECT COUNT(*) FROM thread_members tm
    WHERE tm.user_id = users.id AND tm.last_message_id > tm.cleared_before_id)
"""

# --- the stored state agrees with the facts it is derived from ---------------------------------


async def assert_state_consistent(world: World) -> None:
    """Every derived value in the tables matches the facts it is derived from (the schema's
    invariants, dovecote.ops.invariants)."""
    async with world.database.read_sessions() as session:
        drifted = await invariants.offenders(session)
    assert not drifted, "\n".join(f"{what}:\n  {rows}" for what, rows in drifted.items())
