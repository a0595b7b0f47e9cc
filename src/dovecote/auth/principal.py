"""Who is calling. Built by the auth service, read by every other domain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

STAFF_ROLES = frozenset({"admin", "moderator", "editor"})


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    username: str
    role: str | None
    oauth_token_id: int | None = None

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
