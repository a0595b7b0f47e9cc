"""Small helpers for the private-message tests: send, read the inbox, read a thread."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text

from dovecote.core import clock
from dovecote.models import Message, Thread, ThreadMessage, User
from dovecote.pm.repository import DELETED_MESSAGE, NEW_MESSAGE
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
#
# The primary facts are the messages (sender, status, file), where each is listed
# (thread_messages), the threads' people, the follows, and what each member did: deleting the
# thread (cleared_before_id) and reading it (last_read_id, which only moves forward). Everything
# else is derived, and each check below lists the rows where a derived value disagrees with
# what the facts give (no rows: consistent). On PostgreSQL concurrent sends can reach a member
# row out of id order, so a check states what holds in any arrival order.


@dataclass(frozen=True)
class Derived:
    """A derived value and the query listing the rows where it drifted from its facts."""

    what: str
    drift: str


# `m` names no message of thread `tm.thread_id`: one listed there, or one since deleted (deleted
# messages are unlisted everywhere; their sender is one of the thread's two people).
_NOT_OF_THREAD = """(m.id IS NULL
    OR NOT (EXISTS (SELECT 1 FROM thread_messages l
                    WHERE l.thread_id = tm.thread_id AND l.message_id = m.id)
            OR (m.status = 'deleted' AND m.sender_id IN (t.user_low_id, t.user_high_id))))"""

MEMBER_ROWS = [
    Derived(
        "each one-to-one thread has a member row for each of its two people, and no other",
        """
SELECT t.id, side.user_id, 'missing' FROM threads t
JOIN (SELECT id, user_low_id AS user_id FROM threads
      UNION ALL SELECT id, user_high_id FROM threads) side ON side.id = t.id
WHERE t.group_id IS NULL AND NOT EXISTS (SELECT 1 FROM thread_members tm
    WHERE tm.thread_id = t.id AND tm.user_id = side.user_id)
UNION ALL
SELECT tm.thread_id, tm.user_id, 'not a member' FROM thread_members tm
JOIN threads t ON t.id = tm.thread_id
WHERE t.group_id IS NULL AND tm.user_id NOT IN (t.user_low_id, t.user_high_id)
""",
    ),
    Derived(
        "last_message_id, last_incoming_id and message_count follow the thread's listing "
        "(thread, user, stored last, incoming, count, then the listing's)",
        """
SELECT tm.thread_id, tm.user_id, tm.last_message_id, tm.last_incoming_id, tm.message_count,
    COALESCE(MAX(l.message_id), 0),
    COALESCE(MAX(CASE WHEN m.sender_id != tm.user_id THEN l.message_id END), 0),
    COUNT(CASE WHEN l.message_id > tm.cleared_before_id THEN 1 END)
FROM thread_members tm
LEFT JOIN thread_messages l ON l.thread_id = tm.thread_id
LEFT JOIN messages m ON m.id = l.message_id
GROUP BY tm.thread_id, tm.user_id, tm.last_message_id, tm.last_incoming_id, tm.message_count,
    tm.cleared_before_id
HAVING tm.last_message_id != COALESCE(MAX(l.message_id), 0)
    OR tm.last_incoming_id != COALESCE(MAX(CASE WHEN m.sender_id != tm.user_id
        THEN l.message_id END), 0)
    OR tm.message_count != COUNT(CASE WHEN l.message_id > tm.cleared_before_id THEN 1 END)
""",
    ),
    Derived(
        "visible_since_id names the message of the thread that last revealed it: after the "
        "member's delete while visible, and while hidden not after it unless since deleted "
        "(thread, user, cleared, last, visible_since)",
        f"""
SELECT tm.thread_id, tm.user_id, tm.cleared_before_id, tm.last_message_id, tm.visible_since_id
FROM thread_members tm
JOIN threads t ON t.id = tm.thread_id
LEFT JOIN messages m ON m.id = tm.visible_since_id
WHERE {_NOT_OF_THREAD}
   OR (tm.last_message_id > tm.cleared_before_id AND tm.visible_since_id <= tm.cleared_before_id)
   OR (tm.last_message_id <= tm.cleared_before_id AND tm.visible_since_id > tm.cleared_before_id
       AND m.status != 'deleted')
""",
    ),
    Derived(
        "last_read_id is 0 or a message of the thread, covers the member's own messages and "
        "everything before their delete (thread, user, last_read, cleared, own newest)",
        f"""
SELECT tm.thread_id, tm.user_id, tm.last_read_id, tm.cleared_before_id, own.newest
FROM thread_members tm
JOIN threads t ON t.id = tm.thread_id
LEFT JOIN messages m ON m.id = tm.last_read_id
LEFT JOIN (SELECT l.thread_id, s.sender_id, MAX(l.message_id) AS newest
           FROM thread_messages l JOIN messages s ON s.id = l.message_id
           GROUP BY l.thread_id, s.sender_id) own
    ON own.thread_id = tm.thread_id AND own.sender_id = tm.user_id
WHERE (tm.last_read_id != 0 AND {_NOT_OF_THREAD})
   OR tm.last_read_id < tm.cleared_before_id
   OR tm.last_read_id < COALESCE(own.newest, 0)
""",
    ),
    Derived(
        "cleared_before_id is 0 or a message of the thread (thread, user, cleared)",
        f"""
SELECT tm.thread_id, tm.user_id, tm.cleared_before_id
FROM thread_members tm
JOIN threads t ON t.id = tm.thread_id
LEFT JOIN messages m ON m.id = tm.cleared_before_id
WHERE tm.cleared_before_id != 0 AND {_NOT_OF_THREAD}
""",
    ),
]

USER_COUNTERS = [
    Derived(
        "inbox_count counts the user's visible threads (user, stored, real)",
        """
SELECT u.id, u.inbox_count, (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_message_id > tm.cleared_before_id)
FROM users u
WHERE u.inbox_count != (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_message_id > tm.cleared_before_id)
""",
    ),
    Derived(
        "unread_threads counts the user's threads with a message they have not read "
        "(user, stored, real)",
        """
SELECT u.id, u.unread_threads, (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_incoming_id > tm.last_read_id AND tm.last_incoming_id > tm.cleared_before_id)
FROM users u
WHERE u.unread_threads != (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_incoming_id > tm.last_read_id AND tm.last_incoming_id > tm.cleared_before_id)
""",
    ),
    Derived(
        "followers_counter and followings_counter count the follows "
        "(user, followers, followings, then the follows')",
        """
SELECT u.id, u.followers_counter, u.followings_counter,
    (SELECT COUNT(*) FROM follows f WHERE f.followed_id = u.id),
    (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id)
FROM users u
WHERE u.followers_counter != (SELECT COUNT(*) FROM follows f WHERE f.followed_id = u.id)
   OR u.followings_counter != (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id)
""",
    ),
    Derived(
        "last_event_id ends the user's gap-free run of kept events "
        "(user, last_event_id, kept, oldest, newest)",
        """
SELECT u.id, u.last_event_id, COUNT(e.id), MIN(e.id), MAX(e.id)
FROM users u LEFT JOIN events e ON e.user_id = u.id
GROUP BY u.id, u.last_event_id
HAVING COUNT(e.id) > 0
   AND (MAX(e.id) != u.last_event_id OR COUNT(e.id) != MAX(e.id) - MIN(e.id) + 1)
""",
    ),
]

MESSAGES = [
    Derived(
        "a message is listed while not deleted, only in threads of its sender "
        "(thread or NULL, message, status, sender)",
        """
SELECT l.thread_id, m.id, m.status, m.sender_id
FROM thread_messages l
JOIN messages m ON m.id = l.message_id
JOIN threads t ON t.id = l.thread_id
WHERE m.status = 'deleted'
   OR (t.group_id IS NULL AND m.sender_id NOT IN (t.user_low_id, t.user_high_id))
UNION ALL
SELECT NULL, m.id, m.status, m.sender_id FROM messages m
WHERE m.status != 'deleted'
  AND NOT EXISTS (SELECT 1 FROM thread_messages l WHERE l.message_id = m.id)
""",
    ),
    Derived(
        "a hidden message keeps neither its text nor its file (message, body, file)",
        "SELECT id, body, file_id FROM messages WHERE status = 'hidden' "
        "AND (body != '' OR file_id IS NOT NULL)",
    ),
    Derived(
        "a message's file is a finished, attached upload of its sender's, not a thumbnail "
        "(message, sender, file owner, finished, attached, parent)",
        """
SELECT m.id, m.sender_id, f.owner_id, f.finished, f.attached, f.parent_id
FROM messages m JOIN files f ON f.id = m.file_id
WHERE f.owner_id != m.sender_id OR NOT f.finished OR NOT f.attached
   OR f.parent_id IS NOT NULL
""",
    ),
]

# Users whose log is whole (nothing of it pruned): every delivery to them has its event.
_WHOLE_LOGS = """(SELECT u.id FROM users u LEFT JOIN events e ON e.user_id = u.id
    GROUP BY u.id, u.last_event_id HAVING COUNT(e.id) = u.last_event_id)"""

EVENTS = [
    Derived(
        "an event goes to a member of its thread and names a message of it "
        "(user, event, thread, message)",
        f"""
SELECT e.user_id, e.id, e.thread_id, e.message_id
FROM events e
LEFT JOIN thread_members tm ON tm.thread_id = e.thread_id AND tm.user_id = e.user_id
LEFT JOIN threads t ON t.id = e.thread_id
LEFT JOIN messages m ON m.id = e.message_id
WHERE tm.user_id IS NULL OR {_NOT_OF_THREAD}
""",
    ),
    Derived(
        "each member of a thread has one new-message event for each message it lists or "
        "listed, and one deleted-message event for each of them since deleted or hidden "
        "(user, thread, message, status, new events, deleted events)",
        f"""
WITH delivered AS (
    SELECT thread_id, message_id FROM thread_messages
    UNION SELECT thread_id, message_id FROM events
), logged AS (
    SELECT user_id, thread_id, message_id,
        SUM(CASE WHEN activity_type = {NEW_MESSAGE} THEN 1 ELSE 0 END) AS sent,
        SUM(CASE WHEN activity_type = {DELETED_MESSAGE} THEN 1 ELSE 0 END) AS removed
    FROM events GROUP BY user_id, thread_id, message_id
)
SELECT tm.user_id, d.thread_id, m.id, m.status, COALESCE(g.sent, 0), COALESCE(g.removed, 0)
FROM delivered d
JOIN thread_members tm ON tm.thread_id = d.thread_id
JOIN {_WHOLE_LOGS} whole ON whole.id = tm.user_id
JOIN messages m ON m.id = d.message_id
LEFT JOIN logged g
    ON g.user_id = tm.user_id AND g.thread_id = d.thread_id AND g.message_id = d.message_id
WHERE COALESCE(g.sent, 0) != 1
   OR COALESCE(g.removed, 0) != CASE WHEN m.status = 'created' THEN 0 ELSE 1 END
""",
    ),
]

CHECKS = [*MEMBER_ROWS, *USER_COUNTERS, *MESSAGES, *EVENTS]


async def assert_state_consistent(world: World) -> None:
    """Every derived value in the messaging tables matches the facts it is derived from."""
    drifted = {}
    for check in CHECKS:
        rows = [tuple(r) for r in await world.sql(check.drift)]
        if rows:
            drifted[check.what] = rows[:20]
    assert not drifted, "\n".join(f"{what}:\n  {rows}" for what, rows in drifted.items())
