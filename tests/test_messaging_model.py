"""Hypothesis state machine: the messaging rules against a simple model.

Follow, unfollow, hide, send, delete (inside and outside the window), delete threads and
read them, in any order; after every step each user's inbox (order, headline, new/seen,
count) and every thread page agree with the model.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dovecote.app import create_app
from dovecote.core import clock
from dovecote.core.settings import Settings
from tests.conftest import PG_URL, SECRET, Member, World, _truncate
from tests.pm_support import assert_state_consistent

USERS = 3
PLACEHOLDER = "Message deleted"
people = st.integers(0, USERS - 1)


@dataclass
class Msg:
    id: int
    sender: int
    recipient: int
    text: str
    sent_at: float  # model seconds
    status: str = "created"


@dataclass
class Model:
    follows: set[tuple[int, int]] = field(default_factory=set)
    hides: set[tuple[int, int]] = field(default_factory=set)
    messages: list[Msg] = field(default_factory=list)
    cleared: dict[tuple[int, frozenset[int]], int] = field(default_factory=dict)
    read: dict[tuple[int, frozenset[int]], int] = field(default_factory=dict)
    now: float = 0.0

    def thread(self, a: int, b: int) -> list[Msg]:
        return [m for m in self.messages if {m.sender, m.recipient} == {a, b}]

    def visible(self, user: int, other: int) -> list[Msg]:
        cut = self.cleared.get((user, frozenset((user, other))), 0)
        return [m for m in self.thread(user, other) if m.status != "deleted" and m.id > cut]

    def is_new(self, user: int, other: int) -> bool:
        key = (user, frozenset((user, other)))
        seen = max(self.read.get(key, 0), self.cleared.get(key, 0))
        return any(m.sender != user and m.id > seen for m in self.visible(user, other))

    def inbox(self, user: int) -> list[tuple[int, str, str]]:
        """(other, headline, status) for each visible thread, most recent first."""
        rows = []
        for other in range(USERS):
            shown = self.visible(user, other) if other != user else []
            if shown:
                last = shown[-1]
                headline = PLACEHOLDER if last.status == "hidden" else last.text
                rows.append(
                    (last.id, other, headline, "new" if self.is_new(user, other) else "seen")
                )
        rows.sort(reverse=True)
        return [(other, headline, status) for _, other, headline, status in rows]


class Messaging(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model = Model()
        self.directory = Path(tempfile.mkdtemp())
        self.run(self._start())

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    async def _start(self) -> None:
        url = TEMPLATE["url"]
        if PG_URL:
            await _truncate(url)
        else:
            shutil.copyfile(url, self.directory / "db.sqlite3")
            url = f"sqlite+aiosqlite:///{self.directory / 'db.sqlite3'}"
        config = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=self.directory / "data",
            database_url=url,
            jwt_secret=SECRET,
            ratelimit_enabled=False,
        )
        self.app = create_app(config)
        self.lifespan = LifespanManager(self.app)
        await self.lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test")
        world = World(self.app)
        self.users: list[Member] = [await world.user(f"u{i}") for i in range(USERS)]
        self.ids = {member.id: index for index, member in enumerate(self.users)}

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.run(self.lifespan.__aexit__(None, None, None))
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        clock.reset()

    def call(self, method: str, url: str, who: int, **kwargs: Any) -> httpx.Response:
        headers = self.users[who].auth
        return self.run(self.client.request(method, url, headers=headers, **kwargs))

    @initialize()
    def start_clock(self) -> None:
        clock.reset()

    @rule(a=people, b=people)
    def toggle_follow(self, a: int, b: int) -> None:
        answer = self.call("POST", f"/api/v2/user/{self.users[b].id}/follow/", a)
        if a == b:
            assert answer.status_code == 400
            return
        assert answer.status_code == 204
        self.model.follows ^= {(a, b)}

    @rule(a=people, b=people)
    def toggle_hide(self, a: int, b: int) -> None:
        answer = self.call("POST", f"/api/v2/user/{self.users[b].id}/hide/", a)
        if a == b:
            assert answer.status_code == 400
            return
        assert answer.status_code == 204
        self.model.hides ^= {(a, b)}

    def _partner(self, a: int, choice: int, candidates: list[int]) -> int:
        """Mostly someone the step makes sense with; sometimes anyone, to test refusals."""
        if candidates and choice % 4:
            return candidates[choice % len(candidates)]
        return choice % USERS

    @rule(
        a=people,
        choice=st.integers(0, 99),
        text=st.text("abc ", min_size=1, max_size=5).filter(str.strip),
    )
    def send(self, a: int, choice: int, text: str) -> None:
        followers = [b for b in range(USERS) if (b, a) in self.model.follows]
        b = self._partner(a, choice, followers)
        body = {"recipients": [self.users[b].id], "message": text}
        answer = self.call("POST", "/api/v2/pm/", a, json=body)
        if a == b:
            assert answer.status_code == 400
        elif (b, a) in self.model.hides:
            assert answer.status_code == 403
            assert answer.json()["errors"][0]["code"] == "recipient_blocked"
        elif (b, a) not in self.model.follows:
            assert answer.status_code == 403
            assert answer.json()["errors"][0]["code"] == "recipient_not_follower"
        else:
            assert answer.status_code == 201, answer.text
            message = Msg(answer.json()["id"], a, b, text, self.model.now)
            self.model.messages.append(message)
            self.model.read[(a, frozenset((a, b)))] = message.id

    @precondition(lambda self: self.model.messages)
    @rule(who=people, pick=st.integers(0, 10**6))
    def delete_message(self, who: int, pick: int) -> None:
        message = self.model.messages[pick % len(self.model.messages)]
        answer = self.call("DELETE", f"/api/v2/pm/{message.id}/", who)
        if who == message.sender:
            assert answer.status_code == 204
            if message.status == "created":
                young = self.model.now - message.sent_at < 60
                message.status = "deleted" if young else "hidden"
        elif (
            who == message.recipient
            and message.status != "deleted"
            and message.id > (self.model.cleared.get((who, frozenset((who, message.sender))), 0))
        ):
            assert answer.status_code == 403  # a participant who sees it, not its sender
            assert answer.json()["errors"][0]["code"] == "not_sender"
        else:
            assert answer.status_code == 404  # not a participant who sees it (§3.5)
            assert answer.json()["errors"][0]["code"] == "message_not_found"

    def _correspondents(self, a: int) -> list[int]:
        return [b for b in range(USERS) if b != a and self.model.thread(a, b)]

    @rule(a=people, choice=st.integers(0, 99))
    def delete_thread(self, a: int, choice: int) -> None:
        b = self._partner(a, choice, self._correspondents(a))
        if a == b or not self.model.thread(a, b):
            return
        answer = self.call("DELETE", f"/api/v2/pm/?user={self.users[b].id}", a)
        assert answer.status_code == 204
        key = (a, frozenset((a, b)))
        shown = [m for m in self.model.thread(a, b) if m.status != "deleted"]
        if shown:
            self.model.cleared[key] = max(self.model.cleared.get(key, 0), shown[-1].id)
            self.model.read[key] = max(self.model.read.get(key, 0), shown[-1].id)

    @rule(a=people, choice=st.integers(0, 99))
    def read_thread(self, a: int, choice: int) -> None:
        b = self._partner(a, choice, self._correspondents(a))
        answer = self.call("GET", f"/api/v2/pm/?user={self.users[b].id}&limit=100", a)
        assert answer.status_code == 200
        if a == b:
            return
        expected = [
            (m.id, PLACEHOLDER if m.status == "hidden" else m.text)
            for m in self.model.visible(a, b)
        ]
        got = [(m["id"], m["message"]) for m in answer.json()["results"]]
        assert got == expected
        assert answer.json()["count"] == len(expected)
        if expected:
            key = (a, frozenset((a, b)))
            self.model.read[key] = max(self.model.read.get(key, 0), expected[-1][0])

    @rule()
    def a_minute_passes(self) -> None:
        clock.advance(timedelta(seconds=61))
        self.model.now += 61

    @invariant()
    def stored_state_is_consistent(self) -> None:
        self.run(assert_state_consistent(World(self.app)))

    @invariant()
    def inboxes_agree(self) -> None:
        if not hasattr(self, "client"):
            return
        for user in range(USERS):
            answer = self.call("GET", "/api/v2/pm/?limit=100", user)
            assert answer.status_code == 200
            body = answer.json()
            got = [
                (
                    self.ids[
                        s["receiver"]["id"]
                        if s["sender"]["id"] == self.users[user].id
                        else s["sender"]["id"]
                    ],
                    s["headline"],
                    s["thread_status"],
                )
                for s in body["results"]
            ]
            assert got == self.model.inbox(user), f"inbox of u{user}"
            assert body["count"] == len(got)


TEMPLATE: dict[str, str] = {}


@pytest.fixture
def template(database_template: str) -> str:
    TEMPLATE["url"] = database_template
    return database_template


def test_messaging_agrees_with_the_model(template: str) -> None:
    runner = Messaging.TestCase()
    runner.settings = settings(
        max_examples=30,
        stateful_step_count=35,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    runner.runTest()
