"""`python -m bench.bounded`: the per-request reads whose cost must not grow with the community.

Seeds 10^5 users (bulk insert, straight into the migrated tables) around one heavy user who hid
20,000 people, is followed by 20,000 and is a member of 20,000 threads, then times Dovecote's own
functions, in process, on each database:

- the hidden ids read (`users.repository.hidden_ids`, GET /api/v2/user/hidden_users_id/);
- the recipient search (`users.repository.search_users`, GET /api/v2/pm/search/), for staff
  (everyone) and for the heavy user (their followers), with common, short and absent terms;
- the live frame's unread figure (`realtime.repository.events_after`, which renders a frame
  with the receiver's unread thread count: the kept `users.unread_threads`, one row, since
  migration 0007; before it, a count over the user's 20,000 member rows).

Prints the median and p99 of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bench.target import Row, Target, make_target, postgres_reachable
from bench.world import EPOCH
from dovecote.core.db import Database, create_database
from dovecote.core.settings import Settings
from dovecote.realtime import repository as realtime_repo
from dovecote.users import repository as users_repo

HEAVY, STAFF = 1, 2
FIRST = (
    "Anna", "Marco", "Maria", "Mario", "Giulia", "Luca", "Sara", "Paolo", "Elena", "Giorgio",
    "Chiara", "Andrea", "Marta", "Davide", "Laura", "Simone", "Francesca", "Matteo", "Alice",
    "Stefano", "Ilaria", "Roberto", "Valentina", "Federico", "Silvia", "Riccardo", "Beatrice",
    "Tommaso", "Noemi", "Emma", "Leo", "Nora", "Olga", "Ugo", "Ida", "Igor", "Yara", "Zeno",
)  # fmt: skip
LAST = (
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo",
    "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso",
)  # fmt: skip
USER_COLUMNS = (
    "id", "username", "username_key", "real_name", "bio", "is_active", "deleted",
    "date_joined", "followers_counter", "followings_counter", "inbox_count", "last_event_id",
    "role",
)  # fmt: skip
MEMBER_COLUMNS = (
    "thread_id", "user_id", "last_message_id", "last_incoming_id", "last_read_id",
    "cleared_before_id", "visible_since_id", "message_count",
)  # fmt: skip

# (label, caller, term, followers_only)
SEARCHES = (
    ("staff, 'mar' (common)", STAFF, "mar", False),
    ("staff, 'a' (one letter)", STAFF, "a", False),
    ("staff, 'zen' (rarer)", STAFF, "zen", False),
    ("staff, one username", STAFF, f"{FIRST[4242 % len(FIRST)].lower()}4242", False),
    ("staff, 'qxq' (none)", STAFF, "qxq", False),
    ("staff, 'qx' (none, short)", STAFF, "qx", False),
    ("member, 'mar' (followers)", HEAVY, "mar", True),
    ("member, 'a' (followers)", HEAVY, "a", True),
    ("member, 'qxq' (followers)", HEAVY, "qxq", True),
)


def _users(n: int, side: int) -> Iterator[Row]:
    joined = EPOCH - timedelta(days=30)
    for uid in range(1, n + 1):
        first, last = FIRST[uid % len(FIRST)], LAST[(uid // len(FIRST)) % len(LAST)]
        name = {HEAVY: "heavy", STAFF: "staff"}.get(uid, f"{first.lower()}{uid}")
        followers = side if uid == HEAVY else 0
        followings = 1 if 3 <= uid < 3 + side else 0
        yield (uid, name, name, f"{first} {last}", "", True, False, joined,
               followers, followings, side if uid == HEAVY else 0, 1 if uid == HEAVY else 0,
               "moderator" if uid == STAFF else None)  # fmt: skip


def _others(side: int) -> range:
    return range(3, 3 + side)


async def seed(target: Target, n: int, side: int) -> None:
    """n users; the heavy user hides, is followed by and shares a thread with `side` others
    (half of those threads unread), and has one event: a message in the first thread."""
    at = EPOCH
    started = time.perf_counter()
    await target.copy("users", USER_COLUMNS, _users(n, side))
    await target.copy("hides", ("user_id", "hidden_id", "created_at"),
                      ((HEAVY, u, at) for u in _others(side)))  # fmt: skip
    await target.copy("follows", ("follower_id", "followed_id", "created_at"),
                      ((u, HEAVY, at) for u in _others(side)))  # fmt: skip
    await target.copy("threads", ("id", "user_low_id", "user_high_id", "created_at"),
                      ((u - 2, HEAVY, u, at) for u in _others(side)))  # fmt: skip
    await target.copy("messages", ("id", "sender_id", "body", "status", "created_at"),
                      [(1, 3, "hello", "created", at)])  # fmt: skip
    await target.copy("thread_messages", ("thread_id", "message_id"), [(1, 1)])
    members = ((u - 2, HEAVY, 1, 1, u % 2, 0, 1, 1) for u in _others(side))
    await target.copy("thread_members", MEMBER_COLUMNS, members)
    await target.copy("events", ("user_id", "id", "activity_type", "thread_id", "message_id",
                                 "created_at"), [(HEAVY, 1, 37, 1, 1, at)])  # fmt: skip
    await target.after_seed()
    print(f"  seeded {n:,} users, {side:,} hides/followers/threads "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


Probe = Callable[[AsyncSession], Awaitable[Any]]


async def timed(database: Database, probe: Probe, samples: int) -> tuple[list[float], Any]:
    """Wall-clock milliseconds of `probe`, each in a fresh read session (first run discarded)."""
    times: list[float] = []
    result: Any = None
    for i in range(samples + 1):
        async with database.read_sessions() as session:
            started = time.perf_counter()
            result = await probe(session)
            elapsed = (time.perf_counter() - started) * 1000
            await session.rollback()
        if i:
            times.append(elapsed)
    return times, result


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _search(caller: int, term: str, followers_only: bool) -> Probe:
    async def probe(session: AsyncSession) -> str:
        count, rows = await users_repo.search_users(
            session, caller, term, followers_only=followers_only, limit=20, offset=0
        )
        return f"count {count:,}, {len(rows)} rows"

    return probe


def _hidden(settings: Settings) -> Probe:
    async def probe(session: AsyncSession) -> str:
        ids = await users_repo.hidden_ids(session, HEAVY, limit=settings.user_max_hidden)
        return f"{len(ids):,} ids"

    return probe


async def _unread(session: AsyncSession) -> str:
    rows = await realtime_repo.events_after(session, HEAVY, 0, 1)
    return f"unread {rows[0].unread_threads:,}"


async def measure(target: Target, samples: int) -> list[tuple[str, str, float, float]]:
    settings = Settings(
        _env_file=None,
        data_dir=target.workdir,
        database_url=target.server_url,
        jwt_secret="bench-" + "x" * 40,
    )
    database = create_database(settings)
    probes: list[tuple[str, Probe, int]] = [("hidden ids", _hidden(settings), samples)]
    probes += [(f"search: {label}", _search(c, t, f), samples) for label, c, t, f in SEARCHES]
    probes.append(("live frame unread figure", _unread, samples))
    lines = []
    try:
        for label, probe, count in probes:
            times, result = await timed(database, probe, count)
            lines.append((label, str(result), statistics.median(times), p99(times)))
            print(f"  {label:<34} {result:<24} median {lines[-1][2]:8.2f} ms   "
                  f"p99 {lines[-1][3]:8.2f} ms")  # fmt: skip
    finally:
        await database.dispose()
    return lines


async def run(kind: str, users: int, side: int, samples: int) -> None:
    target = make_target(kind)
    print(f"{kind}:")
    await target.create()
    try:
        await target.migrate()
        await seed(target, users, side)
        await target.close()
        await measure(target, samples)
    finally:
        await target.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bounded", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--side", type=int, default=20_000, help="the heavy user's hides etc.")
    parser.add_argument("--samples", type=int, default=100, help="timed runs per read")
    args = parser.parse_args(argv)
    if args.users < args.side + 3:
        parser.error("--users must exceed --side by at least 3")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        if kind == "postgresql" and (why := asyncio.run(postgres_reachable())):
            print(f"postgresql: skipped ({why})")
            continue
        asyncio.run(run(kind, args.users, args.side, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
