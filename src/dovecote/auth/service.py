"""Authentication rules: bearer tokens (JWT or OAuth) and the OAuth 2.0 grants.

The OAuth operations take a `Context`, as every service does. The bearer check
(`authenticate`, `authenticate_user_id`) takes a bare session instead: it is the gate in front
of the services, run by dependencies and by live sockets, whose periodic re-check has a read
session of its own and no unit of work.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.auth import repository
from dovecote.auth.principal import Principal
from dovecote.core import clock, security
from dovecote.core.db import UnitOfWork
from dovecote.core.errors import AuthenticationFailed, OAuthError
from dovecote.core.settings import Settings


@dataclass(frozen=True)
class Context:
    """What an OAuth operation needs besides its arguments."""

    uow: UnitOfWork
    settings: Settings
    # The server's JWT secret: it also keys the digests of OAuth client secrets.
    server_secret: bytes


async def authenticate(session: AsyncSession, secret: bytes, token: str) -> Principal:
    """The principal a bearer token stands for; AuthenticationFailed for any bad token."""
    if security.looks_like_jwt(token):
        try:
            claims = security.decode_jwt(secret, token)
        except security.InvalidToken as exc:
            raise AuthenticationFailed() from exc
        return await authenticate_user_id(session, claims.user_id)
    principal = await repository.principal_by_access_hash(
        session, security.digest(token), clock.now()
    )
    if principal is None:
        raise AuthenticationFailed()
    return principal


async def authenticate_user_id(session: AsyncSession, user_id: int) -> Principal:
    """The principal of a verified JWT's user; AuthenticationFailed when gone or inactive."""
    principal = await repository.principal_by_user_id(session, user_id)
    if principal is None:
        raise AuthenticationFailed()
    return principal


async def jwt_is_valid(ctx: Context, token: str) -> bool:
    """Whether `token` is a JWT that `authenticate` would accept (its user included)."""
    try:
        claims = security.decode_jwt(ctx.server_secret, token)
    except security.InvalidToken:
        return False
    return await repository.principal_by_user_id(ctx.uow.session, claims.user_id) is not None


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    refresh_token: str
    expires_in: int


async def _look_up(
    ctx: Context, client_id: str, username: str | None = None
) -> tuple[repository.Client | None, repository.Login | None]:
    """The client and, for a password grant, the user: read in a short session of their own,
    closed before any hash runs, so a login holds no database connection (on SQLite, not the
    write lock every send needs) for the ~200 ms argon2 takes."""
    async with ctx.uow.database.read_sessions() as session:
        client = await repository.client_by_client_id(session, client_id)
        user = None
        if client is not None and username is not None:
            user = await repository.user_for_login(session, username)
    return client, user


async def _authenticated(
    ctx: Context, client: repository.Client | None, client_secret: str | None
) -> repository.Client:
    if client is None:
        raise OAuthError("invalid_client", "Unknown client.", 401)
    if client.confidential and not await _secret_matches(ctx, client, client_secret):
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    return client


async def _secret_matches(
    ctx: Context, client: repository.Client, client_secret: str | None
) -> bool:
    stored = client.secret_hash
    if not client_secret or stored is None:
        return False
    if not security.client_secret_is_legacy(stored):
        return security.client_secret_matches(ctx.server_secret, client_secret, stored)
    # Stored as argon2 before keyed digests: checked the slow way this once, then replaced
    # (in this request's transaction, so only when the request succeeds).
    threads = ctx.settings.password_hash_threads
    if not await security.verify_password(client_secret, stored, threads=threads):
        return False
    digest = security.client_secret_digest(ctx.server_secret, client_secret)
    await repository.set_client_secret_hash(ctx.uow.session, client.pk, digest)
    return True


async def _issue(ctx: Context, *, client_pk: int, user_id: int, family: str) -> IssuedToken:
    now, settings = clock.now(), ctx.settings
    access, refresh = security.new_opaque_token(), security.new_opaque_token()
    await repository.create_token(
        ctx.uow.session,
        access_hash=security.digest(access),
        refresh_hash=security.digest(refresh),
        client_pk=client_pk,
        user_id=user_id,
        family=family,
        access_expires_at=now + timedelta(seconds=settings.oauth_access_token_seconds),
        refresh_expires_at=now + timedelta(seconds=settings.oauth_refresh_token_seconds),
        now=now,
    )
    return IssuedToken(access, refresh, settings.oauth_access_token_seconds)


async def password_grant(
    ctx: Context,
    *,
    client_id: str,
    client_secret: str | None,
    username: str,
    password: str,
) -> IssuedToken:
    found, user = await _look_up(ctx, client_id, username)
    client = await _authenticated(ctx, found, client_secret)
    # verify_password runs even for an unknown user so timing does not reveal who exists.
    known = user.password_hash if user else None
    threads = ctx.settings.password_hash_threads
    if not await security.verify_password(password, known, threads=threads) or not user:
        raise OAuthError("invalid_grant", "Invalid credentials given.")
    return await _issue(ctx, client_pk=client.pk, user_id=user.id, family=secrets.token_hex(16))


async def refresh_grant(
    ctx: Context,
    *,
    client_id: str,
    client_secret: str | None,
    refresh_token: str,
) -> tuple[IssuedToken | None, OAuthError | None]:
    """Rotate a refresh token. A replayed one revokes its whole family (theft detection).

    Returns the error instead of raising it when the family was revoked, so the caller can
    commit that revocation before answering.
    """
    session = ctx.uow.session
    client = await _authenticated(ctx, (await _look_up(ctx, client_id))[0], client_secret)
    token = await repository.token_by_refresh_hash(session, security.digest(refresh_token))
    invalid = OAuthError("invalid_grant", "Invalid refresh token.")
    if token is None or token.client_pk != client.pk:
        raise invalid
    now = clock.now()
    if token.refresh_used_at is not None:
        await repository.revoke_family(session, token.family, now)
        return None, invalid
    if token.revoked_at is not None or token.refresh_expires_at <= now:
        raise invalid
    if not await repository.use_refresh_token(session, token.id, now):
        await repository.revoke_family(session, token.family, now)
        return None, invalid
    if await repository.principal_by_user_id(session, token.user_id) is None:
        raise invalid
    issued = await _issue(ctx, client_pk=client.pk, user_id=token.user_id, family=token.family)
    return issued, None


async def revoke_token(
    ctx: Context, *, client_id: str, client_secret: str | None, token: str
) -> list[int]:
    """Revoke a token; the ids of the tokens revoked (none for an unknown one)."""
    client = await _authenticated(ctx, (await _look_up(ctx, client_id))[0], client_secret)
    # RFC 7009: an unknown token is not an error.
    return await repository.revoke_by_hash(
        ctx.uow.session, security.digest(token), client.pk, clock.now()
    )


async def create_client(ctx: Context, name: str, *, confidential: bool) -> tuple[str, str | None]:
    client_id = secrets.token_urlsafe(24)
    secret = secrets.token_urlsafe(40) if confidential else None
    await repository.create_client(
        ctx.uow.session,
        client_id=client_id,
        name=name,
        secret_hash=security.client_secret_digest(ctx.server_secret, secret) if secret else None,
        now=clock.now(),
    )
    return client_id, secret
