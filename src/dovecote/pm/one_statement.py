"""The PostgreSQL send as one statement: a repository module (all of its SQL is here).

A send touches eight tables. Issued one statement at a time through the ORM session it cost
BEGIN, nine statements and COMMIT, eleven round trips, and most of the server's CPU per send.
On PostgreSQL the same reads and writes fit in one data-modifying CTE run outside an explicit
transaction: one round trip, one prepared statement, atomic on its own (it commits when it
returns, so an answer built from it is durable).

The statement checks the rules before writing anything: the sender is an active user (the
JWT alone proved who they claim to be, not that they still exist) whom no moderator has
blocked at `now`, and every recipient is
someone else, active, has not hidden the sender, follows them (or the sender is staff), and
already shares a one-to-one thread with them. When any of that fails nothing is written and
the rows say why, so the caller can raise the same refusal as the general path; a missing
thread (first contact) goes to the general path, which creates it race-safely.

The writes and their locks follow `pm.repository` exactly: message, listing, member rows in
(thread, user) order, then the users' counters (`= ANY` of a sorted array: an index scan that
locks in id order), then the events numbered from the bumped `last_event_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from dovecote.auth.principal import STAFF_ROLES
from dovecote.core.db import Database
from dovecote.models import User
from dovecote.users.repository import PUBLIC_COLUMNS, Person

DEADLOCK_RETRIES = 3


def _columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c.key}" for c in PUBLIC_COLUMNS)


def _active(alias: str) -> str:
    """The one definition of an active user (models.User.active), as SQL over `alias`."""
    active = cast(ColumnElement[bool], aliased(User, name=alias).active)
    return str(active.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def _person(alias: str) -> str:
    """The public columns of `alias` as one anonymous record (asyncpg reads it as a tuple in
    PUBLIC_COLUMNS order, which is `Person`'s), NULL where the outer join found nobody."""
    return f"CASE WHEN {alias}.id IS NULL THEN NULL ELSE ROW({_columns(alias)}) END"


# $1 sender id, $2 recipient ids (deduplicated, in the request's order), $3 text, $4 now,
# $5 staff roles, $6 activity type, $7 sender and recipients sorted ascending.
SEND = f"""
WITH sender AS MATERIALIZED (
    SELECT {_columns("users")}, role, blocked_at, blocked_until,
           coalesce(role = ANY($5::text[]), false) AS is_staff,
           blocked_at IS NOT NULL AND (blocked_until IS NULL OR blocked_until > $4) AS blocked
    FROM users WHERE id = $1 AND {_active("users")}
), facts AS MATERIALIZED (
    SELECT w.id, w.ord, t.id AS thread_id,
           coalesce({_active("u")}, false) AS active,
           u.id IS NOT NULL AS known,
           EXISTS (SELECT 1 FROM follows f
                   WHERE f.follower_id = w.id AND f.followed_id = $1) AS follows_sender,
           EXISTS (SELECT 1 FROM hides h
                   WHERE h.user_id = w.id AND h.hidden_id = $1) AS hid_sender
    FROM unnest($2::bigint[]) WITH ORDINALITY AS w(id, ord)
    LEFT JOIN users u ON u.id = w.id
    LEFT JOIN threads t ON t.user_low_id = least(w.id, $1) AND t.user_high_id = greatest(w.id, $1)
), msg AS (
    INSERT INTO messages (sender_id, body, status, created_at)
    SELECT $1, $3, 'created', $4::timestamptz
    WHERE EXISTS (SELECT 1 FROM sender)
      AND NOT EXISTS (
          SELECT 1 FROM facts f, sender s
          WHERE s.blocked OR f.id = $1 OR NOT f.active OR f.hid_sender OR f.thread_id IS NULL
             OR NOT (f.follows_sender OR s.is_staff))
    RETURNING id
), listed AS (
    INSERT INTO thread_messages (thread_id, message_id)
    SELECT f.thread_id, m.id FROM facts f CROSS JOIN msg m ORDER BY f.thread_id
), members AS (
    INSERT INTO thread_members AS tm (thread_id, user_id, last_message_id, last_incoming_id,
                                      last_read_id, cleared_before_id, visible_since_id,
                                      message_count)
    SELECT d.thread_id, d.user_id, m.id,
           CASE WHEN d.user_id = $1 THEN 0 ELSE m.id END,
           CASE WHEN d.user_id = $1 THEN m.id ELSE 0 END,
           0, m.id, 1
    FROM msg m CROSS JOIN (SELECT thread_id, $1::bigint AS user_id FROM facts
                           UNION ALL SELECT thread_id, id FROM facts) AS d
    ORDER BY d.thread_id, d.user_id
    ON CONFLICT (thread_id, user_id) DO UPDATE SET
        last_message_id = greatest(tm.last_message_id, excluded.last_message_id),
        last_incoming_id = greatest(tm.last_incoming_id, excluded.last_incoming_id),
        last_read_id = greatest(tm.last_read_id, excluded.last_read_id),
        visible_since_id = CASE
            WHEN tm.last_message_id <= tm.cleared_before_id
             AND excluded.last_message_id > tm.cleared_before_id
            THEN excluded.visible_since_id ELSE tm.visible_since_id END,
        message_count = tm.message_count
            + CASE WHEN excluded.last_message_id > tm.cleared_before_id THEN 1 ELSE 0 END
    RETURNING tm.thread_id, tm.user_id, tm.visible_since_id
), per_user AS (
    SELECT mm.user_id, count(*) AS n,
           count(*) FILTER (WHERE mm.visible_since_id = m.id) AS revealed
    FROM members mm CROSS JOIN msg m GROUP BY mm.user_id
), bumped AS (
    UPDATE users u
    SET last_event_id = u.last_event_id + (SELECT n FROM per_user WHERE user_id = u.id),
        inbox_count = u.inbox_count + (SELECT revealed FROM per_user WHERE user_id = u.id)
    WHERE u.id = ANY($7::bigint[]) AND EXISTS (SELECT 1 FROM msg)
    RETURNING u.id, u.last_event_id
), stamped AS (
    INSERT INTO events (user_id, id, activity_type, thread_id, message_id, created_at)
    SELECT mm.user_id,
           b.last_event_id - count(*) OVER (PARTITION BY mm.user_id)
               + row_number() OVER (PARTITION BY mm.user_id ORDER BY mm.thread_id),
           $6::smallint, mm.thread_id, m.id, $4
    FROM members mm JOIN bumped b ON b.id = mm.user_id CROSS JOIN msg m
    RETURNING user_id, id, thread_id
)
SELECT f.id AS recipient_id, f.known, f.active, f.follows_sender, f.hid_sender, f.thread_id,
       s.id IS NOT NULL AS sender_ok, s.role AS sender_role,
       s.blocked_at AS sender_blocked_at, s.blocked_until AS sender_blocked_until,
       m.id AS message_id, se.id AS sender_event_id, re.id AS recipient_event_id,
       {_person("s")} AS sender, {_person("r")} AS recipient
FROM facts f
LEFT JOIN sender s ON true
LEFT JOIN msg m ON true
LEFT JOIN users r ON r.id = f.id
LEFT JOIN stamped se ON se.user_id = $1 AND se.thread_id = f.thread_id
LEFT JOIN stamped re ON re.user_id = f.id AND re.thread_id = f.thread_id
ORDER BY f.ord
"""


@dataclass(frozen=True, slots=True)
class Fact:
    """A recipient as the rules see it (the shape `users.service.message_refusal` reads)."""

    active: bool
    follows_sender: bool
    hid_sender: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the statement's message went for one recipient, and the events it stamped."""

    recipient_id: int
    recipient: Person
    thread_id: int
    sender_event_id: int
    recipient_event_id: int


@dataclass(frozen=True)
class Outcome:
    """What the statement did. `sender` is None when the sender is not an active user;
    `message_id` is None when it wrote nothing, and then `facts` say why (recipient id and
    what the rules saw of them, None for nobody), else `deliveries` say where it went."""

    sender: Person | None
    sender_role: str | None
    sender_blocked: tuple[datetime | None, datetime | None]  # (blocked_at, blocked_until)
    message_id: int | None
    facts: list[tuple[int, Fact | None]]
    deliveries: list[Delivery]


def _fact(row: Any) -> Fact | None:
    if not row["known"]:
        return None
    return Fact(row["active"], row["follows_sender"], row["hid_sender"])


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row["recipient_id"],
        Person(*row["recipient"]),
        row["thread_id"],
        row["sender_event_id"],
        row["recipient_event_id"],
    )


def _outcome(rows: Sequence[Any]) -> Outcome:
    """The statement's rows, read once into typed values."""
    first = rows[0]
    sent = first["message_id"] is not None
    return Outcome(
        sender=Person(*first["sender"]) if first["sender"] is not None else None,
        sender_role=first["sender_role"],
        sender_blocked=(first["sender_blocked_at"], first["sender_blocked_until"]),
        message_id=first["message_id"],
        facts=[] if sent else [(row["recipient_id"], _fact(row)) for row in rows],
        deliveries=[_delivery(row) for row in rows] if sent else [],
    )


async def send(
    database: Database,
    sender_id: int,
    recipient_ids: Sequence[int],
    text: str,
    now: datetime,
    activity_type: int,
) -> Outcome:
    """Run the send outside any transaction (it commits itself). A deadlock aborted the
    statement whole, so it is run again."""
    arguments = (
        sender_id,
        list(recipient_ids),
        text,
        now,
        sorted(STAFF_ROLES),
        activity_type,
        sorted({sender_id, *recipient_ids}),
    )
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            async with database.autocommit() as connection:
                rows = await connection.fetch(SEND, *arguments)
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_RETRIES:
                raise
    return _outcome(rows)
