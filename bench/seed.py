"""Grow the database to a checkpoint of the synthetic community, fast and consistent.

Rows go in with COPY (PostgreSQL) or one executemany per table (SQLite), straight into the
tables Dovecote's migrations created. Every row respects the invariants the code keeps
(models.ThreadMember, pm/repository.py): see `bench.checks` for the proof after seeding.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.target import Row, Target
from bench.world import EPOCH, Checkpoint, Sizes, World, checkpoint

CHUNK = 50_000
NEW_MESSAGE = 37

USER_COLUMNS = (
    "id", "username", "username_key", "real_name", "email", "bio", "is_active", "deleted",
    "date_joined", "followers_counter", "followings_counter", "inbox_count", "last_event_id",
)  # fmt: skip
COUNTER_COLUMNS = ("followers_counter", "followings_counter", "inbox_count", "last_event_id")
MEMBER_COLUMNS = (
    "thread_id", "user_id", "last_message_id", "last_incoming_id", "last_read_id",
    "cleared_before_id", "visible_since_id", "message_count",
)  # fmt: skip


def _users(cp: Checkpoint) -> Iterator[Row]:
    joined = EPOCH - timedelta(days=30)
    for i in cp.new_users:
        uid = i + 1
        name = f"member{uid}"
        yield (uid, name, name, f"Member {uid}", f"{name}@example.org", "", True, False,
               joined, 0, 0, 0, 0)  # fmt: skip


def _threads(world: World, cp: Checkpoint) -> Iterator[Row]:
    total = world.final.messages
    for t in cp.new_threads:
        yield (t + 1, world.thread_low[t], world.thread_high[t],
               World.sent_at(world.first_message(t), total))  # fmt: skip


def _follows(world: World, cp: Checkpoint) -> Iterator[Row]:
    """Every pair that talks follows each other both ways, from before their first message."""
    total = world.final.messages
    for t in cp.new_threads:
        at = World.sent_at(world.first_message(t), total) - timedelta(hours=1)
        low, high = world.thread_low[t], world.thread_high[t]
        yield (low, high, at)
        yield (high, low, at)


class _MessageBatch:
    def __init__(self) -> None:
        self.messages: list[Row] = []
        self.listed: list[Row] = []
        self.events: list[Row] = []


def _message_batches(world: World, cp: Checkpoint, touched: set[int]) -> Iterator[_MessageBatch]:
    state, total = world.state, world.final.messages
    batch = _MessageBatch()
    for j in cp.new_messages:
        t, mid = world.msg_thread[j], j + 1
        sender, recipient, sender_event, recipient_event = state.touch_message(j)
        at = World.sent_at(j, total)
        touched.add(t)
        batch.messages.append((mid, sender, world.body(j), "created", at))
        batch.listed.append((t + 1, mid))
        batch.events.append((sender, sender_event, NEW_MESSAGE, t + 1, mid, at))
        batch.events.append((recipient, recipient_event, NEW_MESSAGE, t + 1, mid, at))
        if len(batch.messages) >= CHUNK:
            yield batch
            batch = _MessageBatch()
    if batch.messages:
        yield batch


async def grow(target: Target, world: World, messages: int, *, quiet: bool = False) -> Sizes:
    """Add the rows that take the database from the world's current state to `messages`."""
    cp = checkpoint(world, messages)
    state = world.state
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=quiet, transient=False) as progress:
        label = f"{target.kind} → {cp.sizes.messages:,} msgs"
        task = progress.add_task(f"{label}: users/threads", total=len(cp.new_users))
        await target.copy("users", USER_COLUMNS, _users(cp))
        await target.copy("threads", ("id", "user_low_id", "user_high_id", "created_at"),
                          _threads(world, cp))  # fmt: skip
        await target.copy("follows", ("follower_id", "followed_id", "created_at"),
                          _follows(world, cp))  # fmt: skip
        progress.update(task, completed=len(cp.new_users))

        task = progress.add_task(f"{label}: messages", total=len(cp.new_messages))
        touched: set[int] = set()
        for batch in _message_batches(world, cp, touched):
            await target.copy("messages", ("id", "sender_id", "body", "status", "created_at"),
                              batch.messages)  # fmt: skip
            await target.copy("thread_messages", ("thread_id", "message_id"), batch.listed)
            await target.copy("events", ("user_id", "id", "activity_type", "thread_id",
                                         "message_id", "created_at"), batch.events)  # fmt: skip
            progress.advance(task, len(batch.messages))

        task = progress.add_task(f"{label}: members/counters", total=len(touched))
        members = [row for t in sorted(touched) for row in state.member_rows(t)]
        await target.upsert("thread_members", MEMBER_COLUMNS, 2, members)
        progress.update(task, completed=len(touched))
        # Each thread is a mutual follow, so followers = followings = threads (= inbox) count.
        counters = [
            (u, state.degree[u], state.degree[u], state.degree[u], state.events[u])
            for u in range(1, cp.sizes.users + 1)
        ]
        await target.update_by_id("users", COUNTER_COLUMNS, counters)
        await target.after_seed()
    state.messages, state.threads, state.users = (
        cp.sizes.messages,
        cp.sizes.threads,
        cp.sizes.users,
    )
    if not quiet:
        elapsed = time.perf_counter() - started
        print(f"  seeded to {cp.sizes.users:,} users / {cp.sizes.threads:,} threads / "
              f"{cp.sizes.messages:,} messages in {elapsed:.1f} s")  # fmt: skip
    return cp.sizes
