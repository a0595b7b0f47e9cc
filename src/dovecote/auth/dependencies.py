"""Bearer-token dependencies: `CurrentUser` (a confirmed Principal) and `CurrentCaller`.

`CurrentUser` looks the token's user up before the endpoint runs: a deleted or deactivated
user's token is a 401 like any bad token. `CurrentCaller` checks a JWT's signature and claims
and defers that lookup, for hot paths that confirm the user inside their own statement (the
PostgreSQL send, the inbox page) and save a round trip. The committing route
(core.routing) still confirms the caller before any answer goes out, errors included, so the
token of a user who is gone hears 401 and nothing else, exactly as with `CurrentUser`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dovecote.auth import service
from dovecote.auth.principal import Caller, Principal
from dovecote.core import security
from dovecote.core.deps import UoW
from dovecote.core.errors import AuthenticationFailed, NotAuthenticated
from dovecote.core.state import app_state

_bearer = HTTPBearer(auto_error=False, description="A JWT (HS256) or an OAuth 2.0 access token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    if not request.headers.get("authorization"):
        raise NotAuthenticated()
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
    return credentials.credentials


async def current_user(request: Request, uow: UoW, credentials: Credentials) -> Principal:
    token = _token(request, credentials)
    return await service.authenticate(uow.session, app_state(request).jwt_secret, token)


async def current_caller(request: Request, uow: UoW, credentials: Credentials) -> Caller:
    token = _token(request, credentials)
    secret = app_state(request).jwt_secret
    if not security.looks_like_jwt(token):  # an OAuth token is only known to the database
        principal = await service.authenticate(uow.session, secret, token)
        return Caller(principal.id, _unreachable, principal)
    try:
        claims = security.decode_jwt(secret, token)
    except security.InvalidToken as exc:
        raise AuthenticationFailed() from exc

    async def load() -> Principal:
        return await service.authenticate_user_id(uow.session, claims.user_id)

    caller = Caller(claims.user_id, load)
    request.state.confirm_caller = caller.principal  # core.routing waits for it
    return caller


async def _unreachable() -> Principal:
    raise AssertionError("the principal was confirmed when the caller was built")


CurrentUser = Annotated[Principal, Depends(current_user)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
