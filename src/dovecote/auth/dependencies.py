"""The `CurrentUser` dependency: a bearer token in, a Principal out, 401 otherwise."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dovecote.auth import service
from dovecote.auth.principal import Principal
from dovecote.core.deps import Session
from dovecote.core.errors import AuthenticationFailed, NotAuthenticated
from dovecote.core.state import app_state

_bearer = HTTPBearer(auto_error=False, description="A JWT (HS256) or an OAuth 2.0 access token.")


async def current_user(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise NotAuthenticated()
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
    principal = await service.authenticate(
        session, app_state(request).jwt_secret, credentials.credentials
    )
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
