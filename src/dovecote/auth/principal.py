"""Who is calling. Built by the auth service, read by every other domain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

STAFF_ROLES = frozenset({"admin", "moderator", "editor"})


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    username: str
    role: str | None
    oauth_token_id: int | None = None
    # A moderator's block: from blocked_at until blocked_until (None: for good).
    blocked_at: datetime | None = None
    blocked_until: datetime | None = None

    def is_blocked(self, now: datetime) -> bool:
        if self.blocked_at is None:
            return False
        return self.blocked_until is None or now < self.blocked_until

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass
class Caller:
    """Who a valid token speaks for, before the database has confirmed that user is active."""

    user_id: int
    _load: Callable[[], Awaitable[Principal]]
    _principal: Principal | None = field(default=None)

    async def principal(self) -> Principal:
        """The confirmed principal; AuthenticationFailed when the user is gone or inactive."""
        if self._principal is None:
            self._principal = await self._load()
        return self._principal

    def confirmed(self, principal: Principal) -> None:
        """Record a principal the endpoint's own statement has confirmed."""
        self._principal = principal
