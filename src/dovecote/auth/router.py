"""OAuth 2.0 token endpoints and JWT verification (SPEC §1)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from starlette.exceptions import HTTPException

from dovecote.auth import service
from dovecote.auth.schemas import (
    OAuthErrorOut,
    RevokeRequest,
    TokenOut,
    TokenRequest,
    VerifyTokenIn,
    VerifyTokenOut,
)
from dovecote.core.broker import Kick
from dovecote.core.deps import AppSettings, UoW
from dovecote.core.errors import AuthenticationFailed, OAuthError
from dovecote.core.openapi import body_of, errors
from dovecote.core.ratelimit import Limiter, client_ip
from dovecote.core.requests import read_body, unstorable
from dovecote.core.routing import Router
from dovecote.core.state import app_state

router = Router(tags=["auth"])


async def _context(request: Request, uow: UoW, settings: AppSettings) -> service.Context:
    return service.Context(uow, settings, app_state(request).jwt_secret)


Ctx = Annotated[service.Context, Depends(_context)]

FORM = "application/x-www-form-urlencoded"
_oauth_errors: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorOut, "description": "RFC 6749 error."},
    401: {"model": OAuthErrorOut, "description": "Client authentication failed."},
    429: {"model": OAuthErrorOut, "description": "Too many attempts; see Retry-After."},
}


async def _oauth_form(request: Request) -> dict[str, str]:
    try:
        form = await request.form()
    except HTTPException as exc:  # e.g. a multipart body without a boundary
        raise OAuthError("invalid_request", str(exc.detail)) from exc
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if unstorable(fields):
        raise OAuthError("invalid_request", "A parameter holds a NUL character.")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):  # RFC 6749 §2.3.1 client authentication
        try:
            client_id, _, secret = (
                base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from exc
        fields.setdefault("client_id", client_id)
        fields.setdefault("client_secret", secret)
    return fields


def _require(fields: dict[str, str], *names: str) -> None:
    missing = [name for name in names if not fields.get(name)]
    if missing:
        raise OAuthError("invalid_request", f"Missing parameter: {', '.join(missing)}.")


@router.post(
    "/oauth/token/",
    response_model=TokenOut,
    responses=_oauth_errors,
    openapi_extra=body_of(TokenRequest, FORM),
    summary="Issue an access token (password or refresh_token grant)",
)
async def token(request: Request, ctx: Ctx, limiter: Limiter) -> TokenOut:
    fields = await _oauth_form(request)
    _require(fields, "grant_type", "client_id")
    who = fields.get("username", "").lower() or None
    await limiter.check("login", user=who, ip=client_ip(request))
    grant = fields["grant_type"]
    secret = fields.get("client_secret")
    if grant == "password":
        _require(fields, "username", "password")
        issued = await service.password_grant(
            ctx,
            client_id=fields["client_id"],
            client_secret=secret,
            username=fields["username"],
            password=fields["password"],
        )
    elif grant == "refresh_token":
        _require(fields, "refresh_token")
        result, error = await service.refresh_grant(
            ctx,
            client_id=fields["client_id"],
            client_secret=secret,
            refresh_token=fields["refresh_token"],
        )
        if error is not None:
            ctx.uow.commit_on_error = True  # keep the family's revocation
            raise error
        assert result is not None
        issued = result
    else:
        raise OAuthError("unsupported_grant_type", f"Unsupported grant type: {grant}.")
    return TokenOut(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
    )


@router.post(
    "/oauth/revoke_token/",
    status_code=200,
    responses=_oauth_errors,
    openapi_extra=body_of(RevokeRequest, FORM),
    summary="Revoke an access or refresh token",
)
async def revoke_token(request: Request, ctx: Ctx) -> Response:
    fields = await _oauth_form(request)
    _require(fields, "client_id", "token")
    revoked = await service.revoke_token(
        ctx,
        client_id=fields["client_id"],
        client_secret=fields.get("client_secret"),
        token=fields["token"],
    )
    if revoked:  # live sockets opened with the token close at once (realtime/)
        broker = app_state(request).broker
        ctx.uow.after_commit(lambda: broker.kick(Kick(token_ids=tuple(revoked))))
    return Response(status_code=200)


@router.post(
    "/api/v2/jwt/verify_token/",
    response_model=VerifyTokenOut,
    responses=errors(400, 401),
    openapi_extra=body_of(VerifyTokenIn, "application/json", FORM),
    summary="Check that a JWT is valid",
)
async def verify_token(request: Request, ctx: Ctx) -> VerifyTokenOut:
    ctx.uow.write = False  # only reads: on SQLite it need not queue for the writer connection
    body = await read_body(request, VerifyTokenIn)
    if not await service.jwt_is_valid(ctx, body.token):
        raise AuthenticationFailed("Token is invalid or expired.", code="token_not_valid")
    return VerifyTokenOut()
