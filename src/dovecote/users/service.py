"""Rules about users and the social graph, including who may message whom (SPEC §3.1, §6)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.auth.principal import Principal
from dovecote.core import clock, security
from dovecote.core.errors import DovecoteError, InvalidInput, NotFound, PermissionDenied
from dovecote.users import repository
from dovecote.users.schemas import USERNAME_PATTERN, MeOut, UserDetailOut, UserOut

_USERNAME = re.compile(USERNAME_PATTERN)


def user_out(row: Row[Any]) -> UserOut:
    return UserOut.model_validate(row)


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str | None = None,
    real_name: str = "",
    email: str | None = None,
    role: str | None = None,
    ext_id: int | None = None,
    avatar: str | None = None,
) -> UserOut:
    if not _USERNAME.fullmatch(username) or len(username) > 150:
        raise InvalidInput.field(
            "username", "invalid", "A username may hold only letters, digits, '_' and '-'."
        )
    if await repository.username_taken(session, username):
        raise InvalidInput.field("username", "unique", f"The username {username!r} is taken.")
    try:
        user_id = await repository.create_user(
            session,
            username=username,
            real_name=real_name,
            email=email,
            role=role,
            ext_id=ext_id,
            avatar=avatar,
            password_hash=security.hash_password(password) if password else None,
            date_joined=clock.now(),
        )
    except IntegrityError as exc:  # lost a race with a concurrent signup
        raise InvalidInput.field(
            "username", "unique", f"The username {username!r} is taken."
        ) from exc
    row = await repository.get_user(session, user_id)
    assert row is not None
    return user_out(row)


async def me(session: AsyncSession, principal: Principal) -> MeOut:
    row = await repository.get_me(session, principal.id)
    if row is None:
        raise NotFound()
    return MeOut.model_validate(row)


async def access_user(session: AsyncSession, user_id: int) -> Row[Any]:
    row = await repository.get_user(session, user_id)
    if row is None:
        raise NotFound("No such user.", code="user_not_found")
    return row


class MessageRefused(PermissionDenied):
    pass


class RecipientFacts(Protocol):
    """What the rules need to know of a recipient (users.repository.recipient_facts)."""

    @property
    def active(self) -> bool: ...
    @property
    def follows_sender(self) -> bool: ...
    @property
    def hid_sender(self) -> bool: ...


def message_refusal(
    sender: Principal, recipient_id: int, fact: RecipientFacts | Row[Any] | None
) -> DovecoteError | None:
    """Why `sender` may not message this recipient, or None when allowed (SPEC §3.1)."""
    if recipient_id == sender.id:
        return InvalidInput.field("recipients", "self", "You cannot send a message to yourself.")
    if fact is None:
        return InvalidInput.field(
            "recipients", "does_not_exist", f"User {recipient_id} does not exist."
        )
    if not fact.active:
        return MessageRefused(f"User {recipient_id} is no longer active.", code="recipient_deleted")
    if fact.hid_sender:
        return MessageRefused(
            f"User {recipient_id} does not accept your messages.", code="recipient_blocked"
        )
    if not sender.is_staff and not fact.follows_sender:
        return MessageRefused(
            f"Recipient {recipient_id} does not follow you.", code="recipient_not_follower"
        )
    return None


async def user_detail(session: AsyncSession, principal: Principal, user_id: int) -> UserDetailOut:
    row = await access_user(session, user_id)
    facts = await repository.recipient_facts(session, principal.id, [user_id])
    refusal = message_refusal(principal, user_id, facts.get(user_id))
    return UserDetailOut(**user_out(row).model_dump(), can_send_pm_to=refusal is None)


async def _active_other(
    session: AsyncSession, principal: Principal, user_id: int, verb: str
) -> None:
    if user_id == principal.id:
        raise InvalidInput.field("user", "self", f"You cannot {verb} yourself.")
    row = await access_user(session, user_id)
    if row.deleted:
        raise NotFound("No such user.", code="user_not_found")


async def toggle_follow(session: AsyncSession, principal: Principal, user_id: int) -> bool:
    await _active_other(session, principal, user_id, "follow")
    return await repository.toggle_follow(session, principal.id, user_id, clock.now())


async def toggle_hide(session: AsyncSession, principal: Principal, user_id: int) -> bool:
    await _active_other(session, principal, user_id, "hide")
    return await repository.toggle_hide(session, principal.id, user_id, clock.now())


async def connection_statuses(
    session: AsyncSession, principal: Principal, ids: list[int]
) -> dict[str, str | None]:
    followed = await repository.followed_among(session, principal.id, ids)
    return {str(i): ("followed" if i in followed else None) for i in dict.fromkeys(ids)}
