"""All SQL of users and the social graph (follows, hides)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    column,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Bundle

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


class Person(NamedTuple):
    """A user's public columns (PUBLIC_COLUMNS, in that order): a person as pages show them."""

    id: int
    username: str
    real_name: str
    avatar: str | None
    ext_id: int | None
    deleted: bool
    date_joined: datetime
    bio: str
    followers_counter: int
    followings_counter: int


class _PersonBundle(Bundle[Any]):
    """Read a user's public columns as one `Person` (None where an outer join found nobody)."""

    def create_row_processor(self, query: Any, procs: Any, labels: Any) -> Any:
        def person(row: Any) -> Person | None:
            values = [proc(row) for proc in procs]
            return None if values[0] is None else Person(*values)

        return person


def person_of(user: Any, name: str) -> Bundle[Any]:
    """The public columns of `user` (the table or an alias of it), arriving in a result row
    as one typed `Person` under `name`."""
    return _PersonBundle(name, *(getattr(user, c.key) for c in PUBLIC_COLUMNS))


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


async def get_users(session: AsyncSession, ids: Iterable[int]) -> dict[int, Person]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(_USERS, {"ids": sorted(wanted)})
    return {row.id: Person(*row) for row in rows}


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


async def drop_follows_of(session: AsyncSession, user_id: int) -> None:
    """Remove every follow from and to a user, keeping everyone's counters in step."""
    followed = select(Follow.followed_id).where(Follow.follower_id == user_id)
    followers = select(Follow.follower_id).where(Follow.followed_id == user_id)
    await session.execute(
        update(User)
        .where(User.id.in_(followed))
        .values(followers_counter=User.followers_counter - 1)
    )
    await session.execute(
        update(User)
        .where(User.id.in_(followers))
        .values(followings_counter=User.followings_counter - 1)
    )
    await session.execute(
        delete(Follow).where(or_(Follow.follower_id == user_id, Follow.followed_id == user_id))
    )
    await session.execute(
        update(User).where(User.id == user_id).values(followers_counter=0, followings_counter=0)
    )


async def drop_hides_of(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        delete(Hide).where(or_(Hide.user_id == user_id, Hide.hidden_id == user_id))
    )


async def update_user(session: AsyncSession, user_id: int, **values: Any) -> None:
    await session.execute(update(User).where(User.id == user_id).values(**values))


# What moderation reads of a member: who they are and the state they are in.
_STANDING = (
    User.id,
    User.username,
    User.role,
    User.is_active,
    User.deleted,
    User.erased_at,
    User.blocked_at,
    User.blocked_until,
)


async def standing(session: AsyncSession, user_id: int, *, lock: bool = False) -> Row[Any] | None:
    query = select(*_STANDING).where(User.id == user_id)
    return (await session.execute(query.with_for_update() if lock else query)).first()


async def standings(session: AsyncSession, limit: int, offset: int) -> list[Row[Any]]:
    query = select(*_STANDING).order_by(User.id).limit(limit).offset(offset)
    return list(await session.execute(query))


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


async def follow_page(
    session: AsyncSession,
    user_id: int,
    side: Literal["followers", "followings"],
    limit: int,
    offset: int,
) -> tuple[int, list[Row[Any]]]:
    """The user's followers (or the people they follow), newest follow first, with the count
    kept on the user's row."""
    if side == "followers":
        counter, listed, anchor = User.followers_counter, Follow.follower_id, Follow.followed_id
    else:
        counter, listed, anchor = User.followings_counter, Follow.followed_id, Follow.follower_id
    count = await session.scalar(select(counter).where(User.id == user_id)) or 0
    rows = await users_page(
        session, (Follow, listed == User.id, Follow.created_at), anchor == user_id, limit, offset
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


async def hidden_ids(session: AsyncSession, user_id: int, *, limit: int) -> list[int]:
    """The first `limit` ids the user hid, ascending (a range of the primary key)."""
    rows = await session.scalars(
        select(Hide.hidden_id).where(Hide.user_id == user_id).order_by(Hide.hidden_id).limit(limit)
    )
    return list(rows)


async def hidden_count(session: AsyncSession, user_id: int, *, up_to: int) -> int:
    """How many users the user hid, counted no further than `up_to`."""
    hidden = select(Hide.hidden_id).where(Hide.user_id == user_id).limit(up_to).subquery()
    return int(await session.scalar(select(func.count()).select_from(hidden)) or 0)


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
        User.active.label("active"),
        follows_sender.label("follows_sender"),
        hid_sender.label("hid_sender"),
    ).where(User.id.in_(recipient_ids))
    return {row.id: row for row in await session.execute(query)}


# Search answers count at most this many matches and pages within them: counting every user
# whose name holds a common letter would read the whole table on each keystroke.
SEARCH_MAX_COUNT = 1000
# The trigram indexes (pg_trgm on PostgreSQL, FTS5 `users_search` on SQLite) find the users
# whose username or real name holds a term of at least this many characters.
TRIGRAM = 3
_users_search = table("users_search", column("rowid"), column("users_search"))


async def search_users(
    session: AsyncSession,
    caller_id: int,
    term: str,
    *,
    followers_only: bool,
    limit: int,
    offset: int,
) -> tuple[int, list[Row[Any]]]:
    """Active users other than the caller whose username or real name contains `term` (any
    case), in username order: the count (capped at SEARCH_MAX_COUNT) and one page of them,
    taken from the first SEARCH_MAX_COUNT."""
    lowered = term.lower()
    indexed = len(lowered) >= TRIGRAM
    where = await _search_condition(session, caller_id, lowered, indexed, followers_only)
    capped = select(User.id).where(where).limit(SEARCH_MAX_COUNT).subquery()
    count = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
    limit = min(limit, SEARCH_MAX_COUNT - offset)
    if limit <= 0 or offset >= count:
        return count, []
    return count, await _search_page(session, where, indexed, limit, offset)


async def _search_condition(
    session: AsyncSession, caller_id: int, lowered: str, indexed: bool, followers_only: bool
) -> Any:
    """Who the search may answer: active users other than the caller (their followers only,
    unless staff) whose username or real name holds the term."""
    pattern = f"%{_escape_like(lowered)}%"
    where = and_(
        User.id != caller_id,
        User.active,
        or_(
            User.username_key.like(pattern, escape="\\"),
            func.lower(User.real_name).like(pattern, escape="\\"),
        ),
    )
    if dialect_name(session) == "postgresql":
        # Statements are prepared, and after a few runs PostgreSQL may switch to a generic plan
        # made without the pattern, which cannot tell an index-worthy term and scans the table
        # (30 ms instead of 0.1 ms at 10^5 users, measured). Plan these for their term.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    elif indexed:
        # Candidates from the FTS5 trigram index (a superset: it folds case more widely than
        # LIKE); the LIKE above keeps the answer exactly what it is without the index.
        phrase = '"' + lowered.replace('"', '""') + '"'
        candidates = select(_users_search.c.rowid).where(
            literal_column("users_search").op("MATCH")(phrase)
        )
        where = and_(where, User.id.in_(candidates))
    if followers_only:
        followers = select(Follow.follower_id).where(Follow.followed_id == caller_id)
        where = and_(where, User.id.in_(followers))
    return where


async def _search_page(
    session: AsyncSession, where: Any, indexed: bool, limit: int, offset: int
) -> list[Row[Any]]:
    if not indexed:
        # A one- or two-letter term matches many people: walking usernames in order meets a
        # page of them soon. (A rare pair of letters
        # reads the whole table: docs/API.md, on the people search.)
        query = select(*PUBLIC_COLUMNS).where(where)
    else:
        # The index finds the term's matches; sort those. Walking usernames in order instead
        # (the planner's choice when the term is common) reads most of the table when the
        # matches sort late: 'zen' took 47 ms at 10^5 users that way.
        matches = (
            select(User.id, User.username_key)
            .where(where)
            .cte("matches")
            .prefix_with("MATERIALIZED")
        )
        page = (
            select(matches.c.id)
            .order_by(matches.c.username_key)
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        query = select(*PUBLIC_COLUMNS).join(page, page.c.id == User.id)
        offset = 0
    query = query.order_by(User.username_key).limit(limit).offset(offset)
    return list(await session.execute(query))


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
