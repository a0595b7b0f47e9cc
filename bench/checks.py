"""The schema's invariants, checked in SQL after seeding and again after the send benchmark
(so the numbers are for sends that kept the data right): the project's own list
(dovecote.ops.invariants) plus what holds for the synthetic community only."""

from __future__ import annotations

from bench.target import Target
from dovecote.ops import invariants

# Each query counts rows that break one invariant: all must answer 0.
INVARIANTS = {
    **{name: invariants.count_query(sql) for name, sql in invariants.INVARIANTS.items()},
    # The seeded community: everyone who talks follows each other, and no event was pruned.
    "both members of a thread follow each other": """
        SELECT count(*) FROM threads t WHERE
          NOT EXISTS (SELECT 1 FROM follows f
                      WHERE f.follower_id = t.user_low_id AND f.followed_id = t.user_high_id)
          OR NOT EXISTS (SELECT 1 FROM follows f
                      WHERE f.follower_id = t.user_high_id AND f.followed_id = t.user_low_id)""",
    "last_event_id is the user's newest event, numbered without gaps": """
        SELECT count(*) FROM users u WHERE u.last_event_id !=
          (SELECT count(*) FROM events e WHERE e.user_id = u.id)""",
}


async def broken_invariants(target: Target) -> dict[str, int]:
    """Invariant name -> number of offending rows, for those that do not hold."""
    broken = {}
    for name, sql in INVARIANTS.items():
        bad = int(await target.scalar(sql))
        if bad:
            broken[name] = bad
    return broken
