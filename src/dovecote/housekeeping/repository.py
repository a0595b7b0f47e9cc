"""All SQL of housekeeping that belongs to no other package: pruning old live events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.models import Event


async def prune_events_before(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest events created before `cutoff` (index on created_at).

    A client whose cursor falls among them is told to reload (realtime.service)."""
    oldest = (
        select(Event.user_id, Event.id)
        .where(Event.created_at < cutoff)
        .order_by(Event.created_at)
        .limit(limit)
    )
    result = await session.execute(
        delete(Event)
        .where(tuple_(Event.user_id, Event.id).in_(oldest))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
