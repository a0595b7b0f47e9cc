"""All SQL of users and the social graph (follows, hides)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dovecote.core.db import dialect_name, upsert
from dovecote.models import Follow, Hide, User

PUBLIC_COLUMNS = (
    User.id,
    User.username,
    User.real_name,
    User.avatar,
    User.ext_id,
    User.deleted,
    User.date_joined,
    User.bio,
    User.followers_counter,
    User.followings_counter,
)


async def create_user(session: AsyncSession, **values: Any) -> int:
    values["username_key"] = values["username"].lower()
    result = await session.execute(insert(User).values(**values).returning(User.id))
    return int(result.scalar_one())


async def username_taken(session: AsyncSession, username: str) -> bool:
    query = select(exists().where(User.username_key == username.lower()))
    return bool(await session.scalar(query))


async def user_id_by_username(session: AsyncSession, username: str) -> int | None:
    user_id: int | None = await session.scalar(
        select(User.id).where(User.username_key == username.lower())
    )
    return user_id


async def get_user(session: AsyncSession, user_id: int) -> Row[Any] | None:
    return (await session.execute(select(*PUBLIC_COLUMNS).where(User.id == user_id))).first()


async def get_me(session: AsyncSession, user_id: int) -> Row[Any] | None:
    query = select(*PUBLIC_COLUMNS, User.email, User.role).where(User.id == user_id)
    return (await session.execute(query)).first()


_USERS = select(*PUBLIC_COLUMNS).where(User.id.in_(bindparam("ids", expanding=True)))


async def get_users(session: AsyncSession, ids: Iterable[int]) -> dict[int, Row[Any]]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(_USERS, {"ids": sorted(wanted)})
    return {row.id: row for row in rows}


async def user_exists(session: AsyncSession, user_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(User.id == user_id))))


# --- follows -------------------------------------------------------------------------------


async def toggle_follow(session: AsyncSession, follower: int, followed: int, now: datetime) -> bool:
    """Follow, or unfollow when already following; returns whether following afterwards."""
    inserted = await session.execute(
        upsert(dialect_name(session), Follow)
        .values(follower_id=follower, followed_id=followed, created_at=now)
        .on_conflict_do_nothing()
        .returning(Follow.follower_id)
    )
    following = inserted.first() is not None
    if not following:
        removed = await session.execute(
            delete(Follow).where(Follow.follower_id == follower, Follow.followed_id == followed)
        )
        if not removed.rowcount:  # type: ignore[attr-defined]
            return False  # a concurrent unfollow got there first: nothing left to count
    step = 1 if following else -1
    await session.execute(
        update(User)
        .where(User.id.in_((follower, followed)))
        .values(
            followings_counter=User.followings_counter + case((User.id == follower, step), else_=0),
            followers_counter=User.followers_counter + case((User.id == followed, step), else_=0),
        )
    )
    return following


async def follows(session: AsyncSession, follower: int, followed: int) -> bool:
    query = select(exists().where(Follow.follower_id == follower, Follow.followed_id == followed))
    return bool(await session.scalar(query))


async def followed_among(session: AsyncSession, follower: int, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    rows = await session.scalars(
        select(Follow.followed_id).where(
            Follow.follower_id == follower, Follow.followed_id.in_(ids)
        )
    )
    return set(rows)


async def users_page(
    session: AsyncSession, join_on: Any, where: Any, limit: int, offset: int
) -> list[Row[Any]]:
    query = (
        select(*PUBLIC_COLUMNS)
        .join_from(User, join_on[0], join_on[1])
        .where(where)
        .order_by(join_on[2].desc(), User.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(await session.execute(query))


async def followers_page(
    session: AsyncSession, user_id: int, limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    count = await session.scalar(select(User.followers_counter).where(User.id == user_id)) or 0
    rows = await users_page(
        session,
        (Follow, Follow.follower_id == User.id, Follow.created_at),
        Follow.followed_id == user_id,
        limit,
        offset,
    )
    return count, rows


async def followings_page(
    session: AsyncSession, user_id: int, limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    count = await session.scalar(select(User.followings_counter).where(User.id == user_id)) or 0
    rows = await users_page(
        session,
        (Follow, Follow.followed_id == User.id, Follow.created_at),
        Follow.follower_id == user_id,
        limit,
        offset,
    )
    return count, rows


# --- hides (blocks) --------------------------------------------------------------------------


async def toggle_hide(session: AsyncSession, user_id: int, hidden_id: int, now: datetime) -> bool:
    inserted = await session.execute(
        upsert(dialect_name(session), Hide)
        .values(user_id=user_id, hidden_id=hidden_id, created_at=now)
        .on_conflict_do_nothing()
        .returning(Hide.user_id)
    )
    if inserted.first() is not None:
        return True
    await session.execute(delete(Hide).where(Hide.user_id == user_id, Hide.hidden_id == hidden_id))
    return False


async def hides(session: AsyncSession, user_id: int, hidden_id: int) -> bool:
    query = select(exists().where(Hide.user_id == user_id, Hide.hidden_id == hidden_id))
    return bool(await session.scalar(query))


async def hidden_ids(session: AsyncSession, user_id: int) -> list[int]:
    rows = await session.scalars(
        select(Hide.hidden_id).where(Hide.user_id == user_id).order_by(Hide.hidden_id)
    )
    return list(rows)


async def hidden_page(
    session: AsyncSession, user_id: int, limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    count = await session.scalar(
        select(func.count()).select_from(Hide).where(Hide.user_id == user_id)
    )
    rows = await users_page(
        session,
        (Hide, Hide.hidden_id == User.id, Hide.created_at),
        Hide.user_id == user_id,
        limit,
        offset,
    )
    return count or 0, rows


# --- who may be messaged ---------------------------------------------------------------------


async def recipient_facts(
    session: AsyncSession, sender_id: int, recipient_ids: Sequence[int]
) -> dict[int, Row[Any]]:
    """For each existing recipient: active?, follows the sender?, hid the sender?"""
    follows_sender = exists().where(Follow.follower_id == User.id, Follow.followed_id == sender_id)
    hid_sender = exists().where(Hide.user_id == User.id, Hide.hidden_id == sender_id)
    query = select(
        User.id,
        and_(User.is_active.is_(True), User.deleted.is_(False)).label("active"),
        follows_sender.label("follows_sender"),
        hid_sender.label("hid_sender"),
    ).where(User.id.in_(recipient_ids))
    return {row.id: row for row in await session.execute(query)}


async def search_users(
    session: AsyncSession,
    caller_id: int,
    term: str,
    *,
    followers_only: bool,
    limit: int,
    offset: int,
) -> tuple[int, list[Row[Any]]]:
    pattern = f"%{_escape_like(term.lower())}%"
    where = and_(
        User.id != caller_id,
        User.deleted.is_(False),
        User.is_active.is_(True),
        or_(
            User.username_key.like(pattern, escape="\\"),
            func.lower(User.real_name).like(pattern, escape="\\"),
        ),
    )
    if followers_only:
        where = and_(
            where,
            exists().where(Follow.follower_id == User.id, Follow.followed_id == caller_id),
        )
    count = await session.scalar(select(func.count()).select_from(User).where(where))
    rows = await session.execute(
        select(*PUBLIC_COLUMNS).where(where).order_by(User.username_key).limit(limit).offset(offset)
    )
    return count or 0, list(rows)


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
