"""All SQL of idempotency keys. The primary key (user_id, key) is the exactly-once rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core.db import dialect_name, upsert
from dovecote.models import IdempotencyKey


async def claim(
    session: AsyncSession, user_id: int, key: str, request_hash: str, now: datetime
) -> bool:
    """Insert the key; False when it already exists.

    On PostgreSQL a concurrent transaction holding the same key makes this wait until that
    transaction ends, so two retries can never both claim it."""
    result = await session.execute(
        upsert(dialect_name(session), IdempotencyKey)
        .values(user_id=user_id, key=key, request_hash=request_hash, created_at=now)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    return result.first() is not None


async def get(session: AsyncSession, user_id: int, key: str) -> Row[Any] | None:
    query = select(
        IdempotencyKey.request_hash, IdempotencyKey.response, IdempotencyKey.created_at
    ).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    return (await session.execute(query)).first()


async def reclaim(
    session: AsyncSession, user_id: int, key: str, request_hash: str, now: datetime
) -> None:
    """Reuse an expired key for a new request."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(request_hash=request_hash, created_at=now, response=None, message_id=None)
    )


async def record(
    session: AsyncSession, user_id: int, key: str, message_id: int, response: Any
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(message_id=message_id, response=response)
    )


async def purge_before(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest keys created before `cutoff`.

    The cutoff is checked again on the row itself: on PostgreSQL a key reclaimed by a send
    while this statement waited for its row lock has a new `created_at` and must stay."""
    oldest = (
        select(IdempotencyKey.user_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at < cutoff)
        .order_by(IdempotencyKey.created_at)
        .limit(limit)
    )
    result = await session.execute(
        delete(IdempotencyKey)
        .where(
            tuple_(IdempotencyKey.user_id, IdempotencyKey.key).in_(oldest),
            IdempotencyKey.created_at < cutoff,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def forget_user(session: AsyncSession, user_id: int) -> None:
    """Drop a user's keys, and with them the stored answers that repeat their messages."""
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id))
