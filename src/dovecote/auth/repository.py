"""All SQL of authentication: principals, OAuth clients and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.auth.principal import Principal
from dovecote.models import OAuthClient, OAuthToken, User

_PRINCIPAL_COLUMNS = (User.id, User.username, User.role, User.blocked_at, User.blocked_until)


_PRINCIPAL = select(*_PRINCIPAL_COLUMNS).where(User.id == bindparam("user_id"), User.active)


async def principal_by_user_id(session: AsyncSession, user_id: int) -> Principal | None:
    row = (await session.execute(_PRINCIPAL, {"user_id": user_id})).first()
    return _principal(row) if row else None


def _principal(row: Row[Any], token_id: int | None = None) -> Principal:
    return Principal(row.id, row.username, row.role, token_id, row.blocked_at, row.blocked_until)


async def principal_by_access_hash(
    session: AsyncSession, access_hash: bytes, now: datetime
) -> Principal | None:
    row = (
        await session.execute(
            select(*_PRINCIPAL_COLUMNS, OAuthToken.id.label("token_id"))
            .join(OAuthToken, OAuthToken.user_id == User.id)
            .where(
                OAuthToken.access_hash == access_hash,
                OAuthToken.revoked_at.is_(None),
                OAuthToken.access_expires_at > now,
                User.active,
            )
        )
    ).first()
    return _principal(row, row.token_id) if row else None


Login = Row[tuple[int, str | None]]


async def user_for_login(session: AsyncSession, username: str) -> Login | None:
    """The id and password hash of the active user with this username (any case)."""
    return (
        await session.execute(
            select(User.id, User.password_hash).where(
                User.username_key == username.lower(), User.active
            )
        )
    ).first()


@dataclass(frozen=True)
class Client:
    pk: int
    client_id: str
    secret_hash: str | None
    confidential: bool


async def client_by_client_id(session: AsyncSession, client_id: str) -> Client | None:
    row = (
        await session.execute(
            select(
                OAuthClient.id,
                OAuthClient.client_id,
                OAuthClient.secret_hash,
                OAuthClient.confidential,
            ).where(OAuthClient.client_id == client_id)
        )
    ).first()
    return Client(row.id, row.client_id, row.secret_hash, row.confidential) if row else None


async def create_client(
    session: AsyncSession, *, client_id: str, name: str, secret_hash: str | None, now: datetime
) -> int:
    result = await session.execute(
        insert(OAuthClient)
        .values(
            client_id=client_id,
            name=name,
            secret_hash=secret_hash,
            confidential=secret_hash is not None,
            created_at=now,
        )
        .returning(OAuthClient.id)
    )
    return int(result.scalar_one())


async def set_client_secret_hash(session: AsyncSession, client_pk: int, secret_hash: str) -> None:
    await session.execute(
        update(OAuthClient).where(OAuthClient.id == client_pk).values(secret_hash=secret_hash)
    )


async def create_token(
    session: AsyncSession,
    *,
    access_hash: bytes,
    refresh_hash: bytes,
    client_pk: int,
    user_id: int,
    family: str,
    access_expires_at: datetime,
    refresh_expires_at: datetime,
    now: datetime,
) -> None:
    await session.execute(
        insert(OAuthToken).values(
            access_hash=access_hash,
            refresh_hash=refresh_hash,
            client_pk=client_pk,
            user_id=user_id,
            family=family,
            access_expires_at=access_expires_at,
            refresh_expires_at=refresh_expires_at,
            created_at=now,
        )
    )


@dataclass(frozen=True)
class RefreshableToken:
    id: int
    user_id: int
    client_pk: int
    family: str
    refresh_expires_at: datetime
    refresh_used_at: datetime | None
    revoked_at: datetime | None


async def token_by_refresh_hash(
    session: AsyncSession, refresh_hash: bytes
) -> RefreshableToken | None:
    row = (
        await session.execute(
            select(
                OAuthToken.id,
                OAuthToken.user_id,
                OAuthToken.client_pk,
                OAuthToken.family,
                OAuthToken.refresh_expires_at,
                OAuthToken.refresh_used_at,
                OAuthToken.revoked_at,
            ).where(OAuthToken.refresh_hash == refresh_hash)
        )
    ).first()
    return RefreshableToken(*row) if row else None


async def use_refresh_token(session: AsyncSession, token_id: int, now: datetime) -> bool:
    """Spend a refresh token, at most once even under concurrent use; revokes its access token."""
    result = await session.execute(
        update(OAuthToken)
        .where(OAuthToken.id == token_id, OAuthToken.refresh_used_at.is_(None))
        .values(refresh_used_at=now, revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_family(session: AsyncSession, family: str, now: datetime) -> None:
    await session.execute(
        update(OAuthToken)
        .where(OAuthToken.family == family, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_tokens(session: AsyncSession, user_id: int, now: datetime) -> list[int]:
    """Revoke every live token of a user; returns their ids (their sockets close)."""
    revoked = await session.scalars(
        update(OAuthToken)
        .where(OAuthToken.user_id == user_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(OAuthToken.id)
    )
    return list(revoked)


async def revoke_by_hash(
    session: AsyncSession, token_hash: bytes, client_pk: int, now: datetime
) -> list[int]:
    revoked: list[int] = []
    for column in (OAuthToken.access_hash, OAuthToken.refresh_hash):
        rows = await session.execute(
            update(OAuthToken)
            .where(column == token_hash, OAuthToken.client_pk == client_pk)
            .where(OAuthToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(OAuthToken.id)
        )
        revoked.extend(rows.scalars())
    return revoked
