"""Wire shapes of authentication."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenRequest(BaseModel):
    grant_type: Literal["password", "refresh_token"]
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    scope: str = "read write"
    refresh_token: str


class RevokeRequest(BaseModel):
    client_id: str
    client_secret: str | None = None
    token: str


class OAuthErrorOut(BaseModel):
    error: str
    error_description: str


class VerifyTokenIn(BaseModel):
    token: str


class VerifyTokenOut(BaseModel):
    detail: str = "Token is valid."
