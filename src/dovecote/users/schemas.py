"""Wire shapes of users (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from dovecote.core.schemas import MAX_ID, IdValue

Role = Literal["admin", "moderator", "editor"]
USERNAME_PATTERN = r"^[A-Za-z0-9_-]+$"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    real_name: str
    avatar: str | None
    ext_id: int | None
    deleted: bool
    community_badge: bool = False
    date_joined: datetime
    bio: str
    followers_counter: int
    followings_counter: int


class MeOut(UserOut):
    email: str | None
    role: Role | None


class UserDetailOut(UserOut):
    can_send_pm_to: bool


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150, pattern=USERNAME_PATTERN)
    real_name: str = Field("", max_length=255)
    email: EmailStr | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)
    ext_id: int | None = Field(None, ge=0, le=MAX_ID)
    role: Role | None = None
    avatar: str | None = Field(None, max_length=1024)


class IsFollowedOut(BaseModel):
    is_followed: bool


class IsFollowerOut(BaseModel):
    is_follower: bool


class IsHiddenOut(BaseModel):
    is_hidden: bool


class IsHiddenByOut(BaseModel):
    is_hidden_by: bool


class ConnectionStatusesIn(BaseModel):
    users: list[IdValue] = Field(default_factory=list, max_length=1000)


class ConnectionStatusesOut(BaseModel):
    connection_statuses: dict[str, Literal["followed"] | None]
