"""The schema's invariants: every denormalised fact that the writes keep in step, stated as a
query listing the rows that break it. All must list nothing, on SQLite and PostgreSQL alike.

Used by the port's and the restore's verification, by the tests (tests/pm_support.py) and by
the benchmark (bench/checks.py), so there is one statement of what "consistent" means.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# name -> a query whose rows are the offenders (their keys and the stored values).
# What every send, read and delete keeps in step with the messages.
MESSAGING: dict[str, str] = {
    "threads are ordered pairs": """
        SELECT id, user_low_id, user_high_id FROM threads WHERE NOT user_low_id < user_high_id""",
    "each one-to-one thread has its two member rows": """
        SELECT t.id, (SELECT count(*) FROM thread_members m WHERE m.thread_id = t.id) AS members
        FROM threads t WHERE t.user_low_id IS NOT NULL
          AND (SELECT count(*) FROM thread_members m WHERE m.thread_id = t.id) != 2""",
    "last_message_id is the thread's newest message": """
        SELECT m.thread_id, m.user_id, m.last_message_id FROM thread_members m
        WHERE m.last_message_id != coalesce((SELECT max(tm.message_id) FROM thread_messages tm
                                             WHERE tm.thread_id = m.thread_id), 0)""",
    "last_incoming_id is the newest message from the other side": """
        SELECT m.thread_id, m.user_id, m.last_incoming_id FROM thread_members m
        WHERE m.last_incoming_id != coalesce(
          (SELECT max(tm.message_id) FROM thread_messages tm
           JOIN messages g ON g.id = tm.message_id
           WHERE tm.thread_id = m.thread_id AND g.sender_id != m.user_id), 0)""",
    "message_count counts the messages the member sees": """
        SELECT m.thread_id, m.user_id, m.message_count FROM thread_members m
        WHERE m.message_count != (SELECT count(*) FROM thread_messages tm
                                  WHERE tm.thread_id = m.thread_id
                                    AND tm.message_id > m.cleared_before_id)""",
    "a member has read their own messages": """
        SELECT m.thread_id, m.user_id, m.last_read_id FROM thread_members m
        WHERE m.last_read_id < coalesce(
          (SELECT max(tm.message_id) FROM thread_messages tm
           JOIN messages g ON g.id = tm.message_id
           WHERE tm.thread_id = m.thread_id AND g.sender_id = m.user_id), 0)""",
    "inbox_count is the number of visible threads": """
        SELECT u.id, u.inbox_count FROM users u
        WHERE u.inbox_count != (SELECT count(*) FROM thread_members m WHERE m.user_id = u.id
                                  AND m.last_message_id > m.cleared_before_id)""",
    "unread_threads counts the threads with a message the user has not read": """
        SELECT u.id, u.unread_threads FROM users u
        WHERE u.unread_threads != (SELECT count(*) FROM thread_members m WHERE m.user_id = u.id
                                     AND m.last_message_id > m.cleared_before_id
                                     AND m.last_incoming_id > m.last_read_id
                                     AND m.last_incoming_id > m.cleared_before_id)""",
    "last_event_id is at least the user's newest event": """
        SELECT u.id, u.last_event_id FROM users u
        WHERE u.last_event_id <
          coalesce((SELECT max(e.id) FROM events e WHERE e.user_id = u.id), 0)""",
}

# The follow graph's counters (the users' profile shows them).
FOLLOWS: dict[str, str] = {
    "followers_counter counts the user's followers": """
        SELECT u.id, u.followers_counter FROM users u
        WHERE u.followers_counter != (SELECT count(*) FROM follows f WHERE f.followed_id = u.id)""",
    "followings_counter counts whom the user follows": """
        SELECT u.id, u.followings_counter FROM users u
        WHERE u.followings_counter !=
          (SELECT count(*) FROM follows f WHERE f.follower_id = u.id)""",
}

INVARIANTS: dict[str, str] = {**MESSAGING, **FOLLOWS}


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
