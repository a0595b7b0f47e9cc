"""A synthetic community, generated deterministically in chronological order.

Messages are numbered in the order they were sent, so the first `m` messages (with the users and
threads that exist by then) are themselves a consistent community: the suite measures at several
data sizes by growing one database through checkpoints (`Checkpoint`), never rebuilding it.

Shape: every thread is a one-to-one conversation between two users who follow each other (so
either may write: SPEC §3.1). Activity is skewed the way real communities are: a few users are in
thousands of threads, a few threads hold thousands of messages, and both grow with the data, so
the largest inbox and the longest thread are what the read benchmark stresses.
"""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=300)
WORDS = [
    "hello", "thanks", "see", "you", "tomorrow", "meeting", "photo", "great", "idea", "the",
    "a", "of", "and", "to", "in", "for", "on", "with", "community", "event", "weekend",
    "project", "question", "answer", "sure", "maybe", "later", "coffee", "sounds", "good",
    "really", "nice", "work", "shared", "link", "what", "about", "when", "where", "why",
    "how", "let", "me", "know", "cheers",
]  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    users: int
    threads: int
    messages: int

    def scaled(self, messages: int) -> Sizes:
        """Users and threads in proportion to a smaller message count (at least 2 users)."""
        ratio = messages / self.messages
        return Sizes(
            users=max(2, round(self.users * ratio)),
            threads=max(1, round(self.threads * ratio)),
            messages=messages,
        )


def _bodies(rng: random.Random, count: int = 997) -> list[str]:
    """A pool of message texts of realistic lengths (a handful of words to a paragraph)."""
    pool = []
    for _ in range(count):
        words = rng.choices(WORDS, k=min(60, int(rng.expovariate(1 / 12)) + 2))
        pool.append(" ".join(words).capitalize() + ".")
    return pool


@dataclass
class World:
    """The whole community at its final size, plus the per-thread and per-user state as of the
    last checkpoint the seeder wrote (`advance`)."""

    final: Sizes
    seed: int = 7
    thread_low: array[int] = field(default_factory=lambda: array("l"))
    thread_high: array[int] = field(default_factory=lambda: array("l"))
    msg_thread: array[int] = field(default_factory=lambda: array("l"))
    msg_from_low: array[int] = field(default_factory=lambda: array("b"))
    bodies: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.final.threads <= self.final.messages:
            raise ValueError("need 1 <= threads <= messages")
        if self.final.users < 2:
            raise ValueError("need at least 2 users")
        rng = random.Random(self.seed)
        self.bodies = _bodies(rng)
        self._make_threads(rng)
        self._make_messages(rng)
        self.state = State(self)

    # Thread t (0-based) starts with message first_message(t); its two users are among those
    # who have joined by then. Pairs are unique (one thread per pair, like the schema).
    def first_message(self, t: int) -> int:
        return t * self.final.messages // self.final.threads

    def users_at(self, message_index: int) -> int:
        """How many users have joined when message `message_index` (0-based) is sent: in
        proportion, and early on enough for the threads started so far to be distinct pairs."""
        f = self.final
        started = message_index * f.threads // f.messages + 1
        enough = math.isqrt(8 * started) + 2  # pairs stay sparse, so picking one is quick
        return min(f.users, max(enough, -(-f.users * (message_index + 1) // f.messages)))

    def _make_threads(self, rng: random.Random) -> None:
        seen: set[tuple[int, int]] = set()
        for t in range(self.final.threads):
            n = self.users_at(self.first_message(t))
            for _ in range(1000):
                a = 1 + int(n * rng.random() ** 3)  # a few users are in very many threads
                b = rng.randint(1, n)
                low, high = (a, b) if a < b else (b, a)
                if low != high and (low, high) not in seen:
                    break
            else:
                raise ValueError("too many threads for so few users")
            seen.add((low, high))
            self.thread_low.append(low)
            self.thread_high.append(high)

    def _make_messages(self, rng: random.Random) -> None:
        next_thread = 0
        for j in range(self.final.messages):
            if next_thread < self.final.threads and self.first_message(next_thread) == j:
                t = next_thread
                next_thread += 1
            elif rng.random() < 0.5:
                t = int(next_thread * rng.random() ** 4)  # hot threads keep getting hotter
            else:
                t = rng.randrange(next_thread)
            self.msg_thread.append(t)
            self.msg_from_low.append(rng.random() < 0.5)

    # --- facts about message j (0-based); its id is j + 1 -----------------------------------

    def sender(self, j: int) -> int:
        t = self.msg_thread[j]
        return self.thread_low[t] if self.msg_from_low[j] else self.thread_high[t]

    def recipient(self, j: int) -> int:
        t = self.msg_thread[j]
        return self.thread_high[t] if self.msg_from_low[j] else self.thread_low[t]

    def body(self, j: int) -> str:
        return self.bodies[j % len(self.bodies)]

    @staticmethod
    def sent_at(j: int, total: int) -> datetime:
        return EPOCH + SPAN * (j / total)


class State:
    """Per-thread and per-user aggregates after the messages written so far."""

    def __init__(self, world: World) -> None:
        threads, users = world.final.threads, world.final.users
        self.world = world
        self.messages = 0  # messages written so far
        self.threads = 0
        self.users = 0
        self.last = array("l", bytes(8 * threads))
        self.last_by_low = array("l", bytes(8 * threads))
        self.last_by_high = array("l", bytes(8 * threads))
        self.first = array("l", bytes(8 * threads))
        self.count = array("l", bytes(8 * threads))
        self.degree = array("l", bytes(8 * (users + 1)))  # threads per user
        self.events = array("l", bytes(8 * (users + 1)))  # events per user

    def touch_message(self, j: int) -> tuple[int, int, int, int]:
        """Account for message j; returns (sender, recipient, sender event id, recipient's)."""
        w = self.world
        t, from_low = w.msg_thread[j], w.msg_from_low[j]
        mid = j + 1
        if self.count[t] == 0:
            self.first[t] = mid
            self.degree[w.thread_low[t]] += 1
            self.degree[w.thread_high[t]] += 1
        self.count[t] += 1
        self.last[t] = mid
        if from_low:
            self.last_by_low[t] = mid
        else:
            self.last_by_high[t] = mid
        sender, recipient = w.sender(j), w.recipient(j)
        self.events[sender] += 1
        self.events[recipient] += 1
        return sender, recipient, self.events[sender], self.events[recipient]

    def member_rows(self, t: int) -> list[tuple[int, int, int, int, int, int, int, int]]:
        """The two thread_members rows of thread t, consistent with its messages.

        Most members have read everything; about a third have unread messages (they read up
        to their own last message). Nobody has deleted the thread (cleared_before_id = 0)."""
        w = self.world
        rows = []
        for user, own, incoming in (
            (w.thread_low[t], self.last_by_low[t], self.last_by_high[t]),
            (w.thread_high[t], self.last_by_high[t], self.last_by_low[t]),
        ):
            read = self.last[t] if (t * 31 + user) % 3 else own
            rows.append(
                (t + 1, user, self.last[t], incoming, read, 0, self.first[t], self.count[t])
            )
        return rows


@dataclass(frozen=True)
class Checkpoint:
    """What the seeder must add to reach `sizes`: the half-open index ranges of new rows."""

    sizes: Sizes
    new_users: range
    new_threads: range
    new_messages: range


def checkpoint(world: World, messages: int) -> Checkpoint:
    state = world.state
    if messages < state.messages or messages > world.final.messages:
        raise ValueError(f"cannot grow from {state.messages} to {messages} messages")
    users = world.users_at(messages - 1)
    threads = state.threads
    while threads < world.final.threads and world.first_message(threads) < messages:
        threads += 1
    return Checkpoint(
        Sizes(users, threads, messages),
        range(state.users, users),
        range(state.threads, threads),
        range(state.messages, messages),
    )
