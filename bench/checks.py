"""The schema's invariants, checked in SQL after seeding and again after the send benchmark
(so the numbers are for sends that kept the data right)."""

from __future__ import annotations

from bench.target import Target

# Each query counts rows that break one invariant: all must answer 0.
INVARIANTS = {
    "threads are ordered pairs": """
        SELECT count(*) FROM threads WHERE NOT user_low_id < user_high_id""",
    "both members of a thread follow each other": """
        SELECT count(*) FROM threads t WHERE
          NOT EXISTS (SELECT 1 FROM follows f
                      WHERE f.follower_id = t.user_low_id AND f.followed_id = t.user_high_id)
          OR NOT EXISTS (SELECT 1 FROM follows f
                      WHERE f.follower_id = t.user_high_id AND f.followed_id = t.user_low_id)""",
    "each thread has its two member rows": """
        SELECT count(*) FROM threads t
        WHERE (SELECT count(*) FROM thread_members m WHERE m.thread_id = t.id) != 2""",
    "last_message_id is the thread's newest message": """
        SELECT count(*) FROM thread_members m WHERE m.last_message_id != coalesce(
          (SELECT max(tm.message_id) FROM thread_messages tm
           WHERE tm.thread_id = m.thread_id), 0)""",
    "last_incoming_id is the newest message from the other member": """
        SELECT count(*) FROM thread_members m WHERE m.last_incoming_id != coalesce(
          (SELECT max(tm.message_id) FROM thread_messages tm
           JOIN messages g ON g.id = tm.message_id
           WHERE tm.thread_id = m.thread_id AND g.sender_id != m.user_id), 0)""",
    "message_count counts the visible messages": """
        SELECT count(*) FROM thread_members m WHERE m.message_count !=
          (SELECT count(*) FROM thread_messages tm
           WHERE tm.thread_id = m.thread_id AND tm.message_id > m.cleared_before_id)""",
    "a member has read their own messages": """
        SELECT count(*) FROM thread_members m WHERE m.last_read_id < coalesce(
          (SELECT max(tm.message_id) FROM thread_messages tm
           JOIN messages g ON g.id = tm.message_id
           WHERE tm.thread_id = m.thread_id AND g.sender_id = m.user_id), 0)""",
    "inbox_count is the number of visible threads": """
        SELECT count(*) FROM users u WHERE u.inbox_count !=
          (SELECT count(*) FROM thread_members m
           WHERE m.user_id = u.id AND m.last_message_id > m.cleared_before_id)""",
    "last_event_id is the user's newest event, numbered without gaps": """
        SELECT count(*) FROM users u WHERE u.last_event_id !=
          (SELECT count(*) FROM events e WHERE e.user_id = u.id)
          OR u.last_event_id !=
            coalesce((SELECT max(e.id) FROM events e WHERE e.user_id = u.id), 0)""",
}


async def broken_invariants(target: Target) -> dict[str, int]:
    """Invariant name -> number of offending rows, for those that do not hold."""
    broken = {}
    for name, sql in INVARIANTS.items():
        bad = int(await target.scalar(sql))
        if bad:
            broken[name] = bad
    return broken
