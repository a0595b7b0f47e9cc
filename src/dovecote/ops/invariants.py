"""The schema's invariants: every denormalised fact that the writes keep in step, stated as a
query listing the rows that break it (their keys and values, named in brackets after each
check's name). All must list nothing, on SQLite and PostgreSQL alike.

The one statement of what "consistent" means: the port's and the restore's verification, the
tests (tests/pm_support.assert_state_consistent, after every scenario) and the benchmark
(bench/checks.py) all check these.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dovecote.pm.repository import DELETED_MESSAGE, NEW_MESSAGE

# The primary facts are the messages (sender, status, file), where each is listed
# (thread_messages), the threads' people, the follows, and what each member did: deleting the
# thread (cleared_before_id) and reading it (last_read_id, which only moves forward). Everything
# else is derived, and each check below lists the rows where a derived value disagrees with
# what the facts give (no rows: consistent). On PostgreSQL concurrent sends can reach a member
# row out of id order, so a check states what holds in any arrival order.


# `m` names no message of thread `tm.thread_id`: one listed there, or one since deleted (deleted
# messages are unlisted everywhere; their sender is one of the thread's two people).
_NOT_OF_THREAD = """(m.id IS NULL
    OR NOT (EXISTS (SELECT 1 FROM thread_messages l
                    WHERE l.thread_id = tm.thread_id AND l.message_id = m.id)
            OR (m.status = 'deleted' AND m.sender_id IN (t.user_low_id, t.user_high_id))))"""

MEMBER_ROWS: dict[str, str] = {
    "threads are ordered pairs (thread, low, high)": """
SELECT id, user_low_id, user_high_id FROM threads WHERE NOT user_low_id < user_high_id
""",
    ("each one-to-one thread has a member row for each of its two people, and no other"): (
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
"""
    ),
    (
        "last_message_id, last_incoming_id and message_count follow the thread's listing "
        "(thread, user, stored last, incoming, count, then the listing's)"
    ): (
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
"""
    ),
    (
        "visible_since_id names the message of the thread that last revealed it: after the "
        "member's delete while visible, and while hidden not after it unless since deleted "
        "(thread, user, cleared, last, visible_since)"
    ): (
        f"""
SELECT tm.thread_id, tm.user_id, tm.cleared_before_id, tm.last_message_id, tm.visible_since_id
FROM thread_members tm
JOIN threads t ON t.id = tm.thread_id
LEFT JOIN messages m ON m.id = tm.visible_since_id
WHERE {_NOT_OF_THREAD}
   OR (tm.last_message_id > tm.cleared_before_id AND tm.visible_since_id <= tm.cleared_before_id)
   OR (tm.last_message_id <= tm.cleared_before_id AND tm.visible_since_id > tm.cleared_before_id
       AND m.status != 'deleted')
"""
    ),
    (
        "last_read_id is 0 or a message of the thread, covers the member's own messages and "
        "everything before their delete (thread, user, last_read, cleared, own newest)"
    ): (
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
"""
    ),
    ("cleared_before_id is 0 or a message of the thread (thread, user, cleared)"): (
        f"""
SELECT tm.thread_id, tm.user_id, tm.cleared_before_id
FROM thread_members tm
JOIN threads t ON t.id = tm.thread_id
LEFT JOIN messages m ON m.id = tm.cleared_before_id
WHERE tm.cleared_before_id != 0 AND {_NOT_OF_THREAD}
"""
    ),
}

USER_COUNTERS: dict[str, str] = {
    ("inbox_count counts the user's visible threads (user, stored, real)"): (
        """
SELECT u.id, u.inbox_count, (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_message_id > tm.cleared_before_id)
FROM users u
WHERE u.inbox_count != (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_message_id > tm.cleared_before_id)
"""
    ),
    (
        "unread_threads counts the user's threads with a message they have not read "
        "(user, stored, real)"
    ): (
        """
SELECT u.id, u.unread_threads, (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_incoming_id > tm.last_read_id AND tm.last_incoming_id > tm.cleared_before_id)
FROM users u
WHERE u.unread_threads != (SELECT COUNT(*) FROM thread_members tm WHERE tm.user_id = u.id
    AND tm.last_incoming_id > tm.last_read_id AND tm.last_incoming_id > tm.cleared_before_id)
"""
    ),
    (
        "followers_counter and followings_counter count the follows "
        "(user, followers, followings, then the follows')"
    ): (
        """
SELECT u.id, u.followers_counter, u.followings_counter,
    (SELECT COUNT(*) FROM follows f WHERE f.followed_id = u.id),
    (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id)
FROM users u
WHERE u.followers_counter != (SELECT COUNT(*) FROM follows f WHERE f.followed_id = u.id)
   OR u.followings_counter != (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id)
"""
    ),
    (
        "last_event_id ends the user's gap-free run of kept events "
        "(user, last_event_id, kept, oldest, newest)"
    ): (
        """
SELECT u.id, u.last_event_id, COUNT(e.id), MIN(e.id), MAX(e.id)
FROM users u LEFT JOIN events e ON e.user_id = u.id
GROUP BY u.id, u.last_event_id
HAVING COUNT(e.id) > 0
   AND (MAX(e.id) != u.last_event_id OR COUNT(e.id) != MAX(e.id) - MIN(e.id) + 1)
"""
    ),
}

MESSAGES: dict[str, str] = {
    (
        "a message is listed while not deleted, only in threads of its sender "
        "(thread or NULL, message, status, sender)"
    ): (
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
"""
    ),
    ("a hidden message keeps neither its text nor its file (message, body, file)"): (
        "SELECT id, body, file_id FROM messages WHERE status = 'hidden' "
        "AND (body != '' OR file_id IS NOT NULL)"
    ),
    (
        "a message's file is a finished, attached upload of its sender's, not a thumbnail "
        "(message, sender, file owner, finished, attached, parent)"
    ): (
        """
SELECT m.id, m.sender_id, f.owner_id, f.finished, f.attached, f.parent_id
FROM messages m JOIN files f ON f.id = m.file_id
WHERE f.owner_id != m.sender_id OR NOT f.finished OR NOT f.attached
   OR f.parent_id IS NOT NULL
"""
    ),
}

# Users whose log is whole (nothing of it pruned): every delivery to them has its event.
_WHOLE_LOGS = """(SELECT u.id FROM users u LEFT JOIN events e ON e.user_id = u.id
    GROUP BY u.id, u.last_event_id HAVING COUNT(e.id) = u.last_event_id)"""

EVENTS: dict[str, str] = {
    (
        "an event goes to a member of its thread and names a message of it "
        "(user, event, thread, message)"
    ): (
        f"""
SELECT e.user_id, e.id, e.thread_id, e.message_id
FROM events e
LEFT JOIN thread_members tm ON tm.thread_id = e.thread_id AND tm.user_id = e.user_id
LEFT JOIN threads t ON t.id = e.thread_id
LEFT JOIN messages m ON m.id = e.message_id
WHERE tm.user_id IS NULL OR {_NOT_OF_THREAD}
"""
    ),
    (
        "each member of a thread has one new-message event for each message it lists or "
        "listed, and one deleted-message event for each of them since deleted or hidden "
        "(user, thread, message, status, new events, deleted events)"
    ): (
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
"""
    ),
}

INVARIANTS: dict[str, str] = {**MEMBER_ROWS, **USER_COUNTERS, **MESSAGES, **EVENTS}


def count_query(offenders_sql: str) -> str:
    """The number of offenders of one invariant, as one scalar query."""
    return f"SELECT count(*) FROM ({offenders_sql}) AS offenders"


async def broken(
    connection: AsyncConnection | AsyncSession, checks: dict[str, str] = INVARIANTS
) -> dict[str, int]:
    """Invariant name -> number of offending rows, for those that do not hold."""
    found = {}
    for name, sql in checks.items():
        count = int((await connection.execute(text(count_query(sql)))).scalar_one())
        if count:
            found[name] = count
    return found


async def offenders(
    connection: AsyncConnection | AsyncSession,
    checks: dict[str, str] = INVARIANTS,
    limit: int = 20,
) -> dict[str, list[tuple[object, ...]]]:
    """Invariant name -> the first offending rows, for those that do not hold (diagnostics)."""
    found = {}
    for name, sql in checks.items():
        rows = (await connection.execute(text(f"{sql} LIMIT {int(limit)}"))).all()
        if rows:
            found[name] = [tuple(row) for row in rows]
    return found
