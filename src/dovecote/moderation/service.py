"""Moderation and deleting members (SelfCommunity's moderation/user and DELETE user/{id}).

What each action does (docs/OPERATIONS.md, "Moderation", says the same to operators):

- block ("b"): the member signs in and reads as before; every send is refused (403
  `user_blocked`, saying when the block ends) until `blocked_until` (no end: for good). Their
  tokens and live sockets stay: they still receive messages.
- activate ("a"): the block is lifted and a deactivation undone.
- deactivate (CLI only): the member can no longer sign in, their tokens stop working, nobody
  can write to them; everything they wrote stays. Undone by "a".
- soft delete ("d", or DELETE without hard): the same, for good: the username stays taken.
  Tokens are revoked and live sockets closed; messages and files stay.
- hard delete ("u", "d" with hard=1, DELETE with hard=1): the profile is emptied (username
  becomes `deleted-<id>`), every message they sent shows the deleted placeholder in every
  thread (text and file gone), every file they uploaded is removed from the database and
  from storage after the commit, follows and hides both ways are removed (counters follow),
  their idempotency records and notification settings are dropped, tokens revoked, sockets
  closed. Threads, and messages others sent them, stay for the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from dovecote.auth import repository as auth_repo
from dovecote.auth.principal import Principal
from dovecote.core import clock
from dovecote.core.broker import Broker, Kick
from dovecote.core.db import UnitOfWork
from dovecote.core.errors import DovecoteError, InvalidInput, NotFound, PermissionDenied
from dovecote.core.settings import Settings
from dovecote.idempotency import repository as idempotency_repo
from dovecote.moderation.schemas import ModerateIn
from dovecote.pm import context as pm_context
from dovecote.pm import deleting
from dovecote.uploads import access as uploads
from dovecote.uploads.storage import Storage
from dovecote.user_settings import repository as settings_repo
from dovecote.users import repository as users_repo

log = logging.getLogger("dovecote.moderation")
MODERATOR_ROLES = frozenset({"admin", "moderator"})


@dataclass(frozen=True)
class Context:
    uow: UnitOfWork
    settings: Settings
    storage: Storage
    broker: Broker  # live events and closing sockets, after the commit
    actor: str  # who acts, for the log: "user <id>" or "cli"


# --- who may -----------------------------------------------------------------------------------


def check_may_moderate(principal: Principal) -> None:
    if principal.role not in MODERATOR_ROLES:
        raise PermissionDenied("Only a moderator or an admin may moderate users.")


def _check_may_moderate_member(moderator: Principal, target: Row[Any]) -> None:
    if target.id == moderator.id:
        raise InvalidInput.field("user", "self", "You cannot moderate yourself.")
    if target.role is not None and moderator.role != "admin":
        raise PermissionDenied("Only an admin may moderate staff.", code="target_is_staff")


def _check_may_delete(caller: Principal, user_id: int) -> None:
    """Only the member themselves and admins delete a member (SelfCommunity)."""
    if caller.id != user_id and not caller.is_admin:
        raise PermissionDenied("Only the member or an admin may delete a member.")


# --- the API's entry points ------------------------------------------------------------------


async def moderate(ctx: Context, moderator: Principal, user_id: int, body: ModerateIn) -> None:
    """PATCH /api/v2/moderation/user/{id}/."""
    check_may_moderate(moderator)
    target = await member(ctx, user_id)
    _check_may_moderate_member(moderator, target)
    if body.status == "a":
        await activate(ctx, target)
    elif body.status == "b":
        await block(ctx, target, body.days_blocked)
    elif body.status == "d" and not body.hard:
        await soft_delete(ctx, target)
    else:
        await erase(ctx, target)


async def delete_member(ctx: Context, caller: Principal, user_id: int, *, hard: bool) -> None:
    """DELETE /api/v2/user/{id}/."""
    _check_may_delete(caller, user_id)
    target = await member(ctx, user_id)
    await (erase(ctx, target) if hard else soft_delete(ctx, target))


# --- the actions (the API and the CLI share them) ----------------------------------------------


async def member(ctx: Context, user_id: int) -> Row[Any]:
    """A member as moderation sees them, locked; NotFound once erased."""
    row = await users_repo.standing(ctx.uow.session, user_id, lock=True)
    if row is None or row.erased_at is not None:
        raise NotFound("No such user.", code="user_not_found")
    return row


def _alive(target: Row[Any]) -> None:
    if target.deleted:
        raise NotFound("No such user.", code="user_not_found")


async def activate(ctx: Context, target: Row[Any]) -> None:
    _alive(target)
    values = {"blocked_at": None, "blocked_until": None, "is_active": True}
    await users_repo.update_user(ctx.uow.session, target.id, **values)
    _logged(ctx, "activate", target)


async def block(ctx: Context, target: Row[Any], days: int | None) -> None:
    _alive(target)
    now = clock.now()
    until = now + timedelta(days=days) if days else None
    await users_repo.update_user(ctx.uow.session, target.id, blocked_at=now, blocked_until=until)
    _logged(ctx, "block", target, until=until.isoformat() if until else "forever")


async def deactivate(ctx: Context, target: Row[Any]) -> None:
    _alive(target)
    await users_repo.update_user(ctx.uow.session, target.id, is_active=False)
    await _sign_out(ctx, target.id)
    _logged(ctx, "deactivate", target)


async def soft_delete(ctx: Context, target: Row[Any]) -> None:
    if target.deleted:
        raise DovecoteError("The user has already been soft deleted.", code="already_deleted")
    await users_repo.update_user(ctx.uow.session, target.id, deleted=True)
    await _sign_out(ctx, target.id)
    _logged(ctx, "soft_delete", target)


async def erase(ctx: Context, target: Row[Any]) -> None:
    session, user_id = ctx.uow.session, target.id
    pm = pm_context.Context(ctx.uow, ctx.settings, ctx.broker.publish)
    messages = await deleting.hide_messages_of(pm, user_id)
    keys = await uploads.erase_files_of(session, user_id)
    await users_repo.drop_follows_of(session, user_id)
    await users_repo.drop_hides_of(session, user_id)
    await idempotency_repo.forget_user(session, user_id)
    await settings_repo.forget_user(session, user_id)
    await users_repo.update_user(session, user_id, **_erased_profile(user_id))
    await _sign_out(ctx, user_id)
    if keys:
        ctx.uow.after_commit(lambda: ctx.storage.delete(keys))
    _logged(ctx, "hard_delete", target, messages=messages, files=len(keys))


def _erased_profile(user_id: int) -> dict[str, Any]:
    name = f"deleted-{user_id}"
    return {
        "username": name,
        "username_key": name,
        "real_name": "",
        "email": None,
        "password_hash": None,
        "ext_id": None,
        "role": None,
        "avatar": None,
        "bio": "",
        "is_active": False,
        "deleted": True,
        "blocked_at": None,
        "blocked_until": None,
        "erased_at": clock.now(),
    }


async def _sign_out(ctx: Context, user_id: int) -> None:
    """Revoke every token (JWTs stop working as the user is no longer active)."""
    await auth_repo.revoke_user_tokens(ctx.uow.session, user_id, clock.now())
    ctx.uow.after_commit(lambda: ctx.broker.kick(Kick(user_ids=(user_id,))))


def standing_of(row: Row[Any]) -> str:
    """A member's state in words (the CLI's `users list`)."""
    if row.erased_at is not None:
        return "erased"
    if row.deleted:
        return "deleted"
    if not row.is_active:
        return "deactivated"
    member = Principal(row.id, row.username, row.role, None, row.blocked_at, row.blocked_until)
    if member.is_blocked(clock.now()):
        until = row.blocked_until
        return f"blocked until {until:%Y-%m-%d %H:%M} UTC" if until else "blocked"
    return "active"


async def members(ctx: Context, limit: int, offset: int) -> list[Row[Any]]:
    return await users_repo.standings(ctx.uow.session, limit, offset)


def _logged(ctx: Context, action: str, target: Row[Any], **details: Any) -> None:
    """One line per action: who acted, on whom, what (ids and the action only, no secrets)."""
    extra = "".join(f" {k}={v}" for k, v in details.items())
    log.info("moderation: %s %s user %d%s", ctx.actor, action, target.id, extra)
