"""Exactly-once requests: the same key from the same user replays the first answer.

The key is claimed in the request's own transaction, so it is stored exactly when the work is:
a rolled-back send leaves no key behind, and a committed one leaves both."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core import clock
from dovecote.core.errors import InvalidInput, Unprocessable
from dovecote.idempotency import repository

MAX_KEY_LENGTH = 255


def checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput.field(
            "Idempotency-Key",
            "invalid",
            f"An idempotency key is 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    return key


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    key: str
    replay: Any | None  # the stored answer when this is a retry


async def claim(
    session: AsyncSession, user_id: int, key: str, request_hash: str, ttl: timedelta
) -> Claim:
    now = clock.now()
    if await repository.claim(session, user_id, key, request_hash, now):
        return Claim(key, None)
    stored = await repository.get(session, user_id, key)
    if stored is None:  # purged between the two statements: claim it afresh
        await repository.claim(session, user_id, key, request_hash, now)
        return Claim(key, None)
    if stored.created_at <= now - ttl:
        await repository.reclaim(session, user_id, key, request_hash, now)
        return Claim(key, None)
    if stored.request_hash != request_hash:
        raise Unprocessable(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
        )
    if stored.response is None:  # cannot happen: claim and answer commit together
        raise Unprocessable(
            "The original request has no recorded answer.", code="idempotency_key_reused"
        )
    return Claim(key, stored.response)


async def record(
    session: AsyncSession, user_id: int, key: str, message_id: int, response: Any
) -> None:
    await repository.record(session, user_id, key, message_id, response)


async def purge_expired(session: AsyncSession, ttl: timedelta, limit: int) -> int:
    """One batch of keys past their TTL (housekeeping calls it until it returns < limit)."""
    return await repository.purge_before(session, clock.now() - ttl, limit)
