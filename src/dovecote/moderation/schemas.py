"""Wire shapes of moderation (SelfCommunity's PATCH /api/v2/moderation/user/{id}/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# a: active (block lifted, deactivation undone), b: blocked, d: deleted (soft; hard=1: erased),
# u: unregistered (erased, as a hard delete).
Status = Literal["a", "b", "d", "u"]


class ModerateIn(BaseModel):
    status: Status
    days_blocked: int | None = Field(
        default=None, ge=1, le=36500, description='Days of block; absent: for good ("b" only).'
    )
    hard: int | None = Field(
        default=None, ge=0, le=1, description='1 with status "d": erase (as status "u").'
    )
