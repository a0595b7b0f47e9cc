"""Who is calling. Built by the auth service, read by every other domain."""

from __future__ import annotations

from dataclasses import dataclass

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
