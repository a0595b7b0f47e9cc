"""Test fixtures: a fresh database per test on SQLite (default) or PostgreSQL.

Set DOVECOTE_TEST_DATABASE_URL to a PostgreSQL server URL (any database on it) to run the suite
on PostgreSQL: the run creates its own database, migrates it, and drops it at the end.
DOVECOTE_TEST_REDIS_URL likewise enables the Redis tests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from dovecote.app import create_app
from dovecote.core import clock, migrate, security
from dovecote.core.db import standalone_unit
from dovecote.core.settings import Settings
from dovecote.models import Base

PG_URL = os.environ.get("DOVECOTE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("DOVECOTE_TEST_REDIS_URL")
SECRET = "test-secret-" + "x" * 40


def pytest_report_header() -> str:
    return f"dovecote database: {'postgresql' if PG_URL else 'sqlite'}; redis: {bool(REDIS_URL)}"


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for this run: a template SQLite file, or a fresh PG database."""
    if PG_URL:
        server = make_url(PG_URL).set(drivername="postgresql+asyncpg")
        name = f"dovecote_test_{os.getpid()}_{secrets.token_hex(3)}"
        admin = server.render_as_string(hide_password=False)
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        yield url
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        migrate.upgrade(f"sqlite+aiosqlite:///{path}")
        yield str(path)


async def _truncate(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    await _admin(url, f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture
async def database_url(database_template: str, tmp_path: Path) -> AsyncIterator[str]:
    if PG_URL:
        await _truncate(database_template)
        yield database_template
    else:
        path = tmp_path / "dovecote.sqlite3"
        shutil.copyfile(database_template, path)
        yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto's), shared by the session's storage tests."""
    from tests.s3_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "jwt_secret": SECRET,
        "public_url": None,
        "ratelimit_enabled": False,
        **settings_overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class Member:
    id: int
    username: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class World:
    """Factories for users and the follow graph, straight through the services."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._count = 0

    @property
    def database(self) -> Any:
        return self.app.state.dovecote.database

    async def user(
        self, username: str | None = None, *, role: str | None = None, **extra: Any
    ) -> Member:
        from dovecote.users import service

        self._count += 1
        name = username or f"user{self._count}"
        async with standalone_unit(self.database) as uow:
            ctx = service.Context(uow, self.app.state.dovecote.settings)
            user = await service.create_user(ctx, username=name, role=role, **extra)
        return Member(user.id, name, await self.token(user.id))

    async def token(self, who: Member | int) -> str:
        user_id = who.id if isinstance(who, Member) else who
        return security.issue_jwt(SECRET.encode(), user_id, lifetime=clock_timedelta())

    async def follow(self, follower: Member, followed: Member) -> None:
        from dovecote.users import repository

        async with self.database.write_sessions() as session:
            if not await repository.follows(session, follower.id, followed.id):
                await repository.toggle_follow(session, follower.id, followed.id, clock.now())
            await session.commit()

    async def unfollow(self, follower: Member, followed: Member) -> None:
        from dovecote.users import repository

        async with self.database.write_sessions() as session:
            if await repository.follows(session, follower.id, followed.id):
                await repository.toggle_follow(session, follower.id, followed.id, clock.now())
            await session.commit()

    async def mutual(self, *members: Member) -> None:
        for a in members:
            for b in members:
                if a is not b:
                    await self.follow(a, b)

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        async with self.database.write_sessions() as session:
            result = await session.execute(text(statement), params)
            rows = list(result) if result.returns_rows else []
            await session.commit()
            return rows


def clock_timedelta() -> Any:
    from datetime import timedelta

    return timedelta(hours=1)


@pytest.fixture
def world(app: FastAPI) -> World:
    return World(app)


@pytest.fixture
async def base(app: FastAPI) -> AsyncIterator[str]:
    """The app served on a free port (its lifespan already running): its ws:// base URL."""
    from tests.realtime_helpers import serving

    async with serving(app) as url:
        yield url


# The operations tests' fixtures (a SQLite deployment of their own: source_settings, ...).
pytest_plugins = ["tests.ops_support"]
