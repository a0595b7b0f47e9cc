"""Rules about users and the social graph, including who may message whom (SPEC §3.1, §6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from dovecote.auth.principal import Principal
from dovecote.core import clock, security
from dovecote.core.db import UnitOfWork
from dovecote.core.errors import DovecoteError, InvalidInput, NotFound, PermissionDenied
from dovecote.core.settings import Settings
from dovecote.users import repository
from dovecote.users.schemas import USERNAME_PATTERN, MeOut, UserDetailOut, UserOut

_USERNAME = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True)
class Context:
    """What a users operation needs besides its arguments."""

    uow: UnitOfWork
    settings: Settings


def user_out(row: repository.Person | Row[Any]) -> UserOut:
    return UserOut.model_validate(row)


async def create_user(
    ctx: Context,
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
    # Hashed before the transaction begins, so it holds no connection (on SQLite, not the
    # write lock) for the ~200 ms argon2 takes.
    threads = ctx.settings.password_hash_threads
    password_hash = await security.hash_password(password, threads=threads) if password else None
    session = ctx.uow.session
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
            password_hash=password_hash,
            date_joined=clock.now(),
        )
    except IntegrityError as exc:  # lost a race with a concurrent signup
        raise InvalidInput.field(
            "username", "unique", f"The username {username!r} is taken."
        ) from exc
    row = await repository.get_user(session, user_id)
    assert row is not None
    return user_out(row)


def check_may_create_users(principal: Principal) -> None:
    """Only an admin creates users through the API (POST /api/v2/sso/signup/)."""
    if not principal.is_admin:
        raise PermissionDenied("Only an admin may create users.")


async def me(ctx: Context, principal: Principal) -> MeOut:
    row = await repository.get_me(ctx.uow.session, principal.id)
    if row is None:
        raise NotFound()
    return MeOut.model_validate(row)


async def user_id_by_username(ctx: Context, username: str) -> int | None:
    return await repository.user_id_by_username(ctx.uow.session, username)


async def user_id_named(ctx: Context, username: str) -> int:
    """The id of the user named `username` (any case); InvalidInput when there is none."""
    user_id = await repository.user_id_by_username(ctx.uow.session, username)
    if user_id is None:
        raise InvalidInput.field("username", "does_not_exist", f"No user named {username!r}.")
    return user_id


async def access_user(ctx: Context, user_id: int) -> Row[Any]:
    row = await repository.get_user(ctx.uow.session, user_id)
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


def sender_blocked(sender: Principal) -> MessageRefused:
    """A blocked member reads but does not send until the block ends."""
    until = sender.blocked_until
    message = f"You are blocked until {until.isoformat()}." if until else "You are blocked."
    return MessageRefused(message, code="user_blocked")


def message_refusal(
    sender: Principal, recipient_id: int, fact: RecipientFacts | Row[Any] | None
) -> DovecoteError | None:
    """Why `sender` may not message this recipient, or None when allowed (SPEC §3.1)."""
    if sender.is_blocked(clock.now()):
        return sender_blocked(sender)
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


async def user_detail(ctx: Context, principal: Principal, user_id: int) -> UserDetailOut:
    row = await access_user(ctx, user_id)
    facts = await repository.recipient_facts(ctx.uow.session, principal.id, [user_id])
    refusal = message_refusal(principal, user_id, facts.get(user_id))
    return UserDetailOut(**user_out(row).model_dump(), can_send_pm_to=refusal is None)


async def _active_other(ctx: Context, principal: Principal, user_id: int, verb: str) -> None:
    if user_id == principal.id:
        raise InvalidInput.field("user", "self", f"You cannot {verb} yourself.")
    row = await access_user(ctx, user_id)
    if row.deleted:
        raise NotFound("No such user.", code="user_not_found")


# --- follows ---------------------------------------------------------------------------------


async def toggle_follow(ctx: Context, principal: Principal, user_id: int) -> bool:
    await _active_other(ctx, principal, user_id, "follow")
    return await repository.toggle_follow(ctx.uow.session, principal.id, user_id, clock.now())


async def ensure_follows(ctx: Context, follower_id: int, followed_id: int) -> None:
    """Make one user follow another unless they already do (the CLI's `follow` and `demo`)."""
    if follower_id == followed_id:
        raise InvalidInput.field("user", "self", "A user cannot follow themselves.")
    session = ctx.uow.session
    if not await repository.follows(session, follower_id, followed_id):
        await repository.toggle_follow(session, follower_id, followed_id, clock.now())


async def ensure_unfollows(ctx: Context, follower_id: int, followed_id: int) -> bool:
    """Stop one user following another (the CLI's `users unfollow`); whether they did."""
    session = ctx.uow.session
    if not await repository.follows(session, follower_id, followed_id):
        return False
    await repository.toggle_follow(session, follower_id, followed_id, clock.now())
    return True


async def set_password(ctx: Context, user_id: int, password: str) -> None:
    """Replace a member's password (the CLI's `users set-password`); their tokens stay valid."""
    if not password:
        raise InvalidInput.field("password", "blank", "The password may not be empty.")
    threads = ctx.settings.password_hash_threads
    password_hash = await security.hash_password(password, threads=threads)
    await repository.update_user(ctx.uow.session, user_id, password_hash=password_hash)


async def is_followed(ctx: Context, principal: Principal, user_id: int) -> bool:
    """Whether the caller follows the user."""
    await access_user(ctx, user_id)
    return await repository.follows(ctx.uow.session, principal.id, user_id)


async def is_follower(ctx: Context, principal: Principal, user_id: int) -> bool:
    """Whether the user follows the caller."""
    await access_user(ctx, user_id)
    return await repository.follows(ctx.uow.session, user_id, principal.id)


async def follow_page(
    ctx: Context, user_id: int, side: Literal["followers", "followings"], limit: int, offset: int
) -> tuple[int, list[UserOut]]:
    """A page of the user's followers or of the people they follow, newest follow first."""
    await access_user(ctx, user_id)
    count, rows = await repository.follow_page(ctx.uow.session, user_id, side, limit, offset)
    return count, [user_out(r) for r in rows]


async def connection_statuses(
    ctx: Context, principal: Principal, ids: list[int]
) -> dict[str, str | None]:
    followed = await repository.followed_among(ctx.uow.session, principal.id, ids)
    return {str(i): ("followed" if i in followed else None) for i in dict.fromkeys(ids)}


# --- hides -----------------------------------------------------------------------------------


async def toggle_hide(ctx: Context, principal: Principal, user_id: int) -> bool:
    """Hide the user, or show them again when hidden. A user hides at most
    `DOVECOTE_USER_MAX_HIDDEN` people, so the list of hidden ids stays bounded."""
    await _active_other(ctx, principal, user_id, "hide")
    session, cap = ctx.uow.session, ctx.settings.user_max_hidden
    hiding = not await repository.hides(session, principal.id, user_id)
    if hiding and await repository.hidden_count(session, principal.id, up_to=cap) >= cap:
        raise InvalidInput.field(
            "user", "max_hidden", f"You may hide at most {cap} users; show one again first."
        )
    return await repository.toggle_hide(session, principal.id, user_id, clock.now())


async def is_hidden(ctx: Context, principal: Principal, user_id: int) -> bool:
    """Whether the caller hid the user."""
    await access_user(ctx, user_id)
    return await repository.hides(ctx.uow.session, principal.id, user_id)


async def is_hidden_by(ctx: Context, principal: Principal, user_id: int) -> bool:
    """Whether the user hid the caller."""
    await access_user(ctx, user_id)
    return await repository.hides(ctx.uow.session, user_id, principal.id)


async def hidden_ids(ctx: Context, principal: Principal) -> list[int]:
    """The ids the caller hid, ascending: all of them, since hiding stops at the cap."""
    return await repository.hidden_ids(
        ctx.uow.session, principal.id, limit=ctx.settings.user_max_hidden
    )


async def hidden_page(
    ctx: Context, principal: Principal, limit: int, offset: int
) -> tuple[int, list[UserOut]]:
    count, rows = await repository.hidden_page(ctx.uow.session, principal.id, limit, offset)
    return count, [user_out(r) for r in rows]
