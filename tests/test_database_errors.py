"""Errors are mapped by what raised them: the database layer's own types and codes say "the
database is unavailable" (503); any other TimeoutError or ConnectionError, and any mistake in a
statement, is a bug (500, logged)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from dovecote.app import create_app
from dovecote.core import db
from dovecote.core.db import DatabaseUnavailable, is_unavailable
from dovecote.core.deps import Session
from dovecote.core.routing import Router
from dovecote.core.settings import Settings
from tests.conftest import PG_URL, World


@asynccontextmanager
async def serving(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings.model_copy(update=overrides))
    _add_probe_routes(application)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


def _add_probe_routes(application: FastAPI) -> None:
    probes = Router()

    @probes.get("/probe/timeout")
    async def timeout() -> None:
        raise TimeoutError("a timeout that has nothing to do with the database")

    @probes.get("/probe/connection")
    async def connection() -> None:
        raise ConnectionResetError("a peer that is not the database")

    @probes.get("/probe/sql-bug")
    async def sql_bug(session: Session) -> None:
        await session.execute(text("SELEC 1"))

    @probes.get("/probe/missing-table")
    async def missing_table(session: Session) -> None:
        await session.execute(text("SELECT * FROM no_such_table"))

    @probes.post("/probe/write")
    async def write(session: Session) -> dict[str, int]:
        await session.execute(text("UPDATE users SET bio = bio WHERE id = 0"))
        return {"ok": 1}

    application.include_router(probes)


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["errors"][0]["code"] == "database_unavailable"


def _bug(response: httpx.Response) -> None:
    assert response.status_code == 500, response.text
    assert response.json()["errors"][0]["code"] == "internal_error"


async def test_a_bare_timeout_or_connection_error_is_a_logged_bug(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(settings) as http:
        with caplog.at_level(logging.ERROR, logger="dovecote"):
            _bug(await http.get("/probe/timeout"))
            _bug(await http.get("/probe/connection"))
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert {type(r.exc_info[1]) for r in logged if r.exc_info} == {
        TimeoutError,
        ConnectionResetError,
    }


async def test_mistakes_in_sql_are_bugs_not_outages(settings: Settings) -> None:
    async with serving(settings) as http:
        _bug(await http.get("/probe/sql-bug"))
        _bug(await http.get("/probe/missing-table"))
        assert (await http.get("/readyz")).status_code == 200


async def test_a_database_that_cannot_be_opened_is_unavailable(
    settings: Settings, tmp_path: Path
) -> None:
    nowhere = tmp_path / "no-such-directory" / "dovecote.sqlite3"
    async with serving(settings, database_url=f"sqlite+aiosqlite:///{nowhere}") as http:
        _unavailable(await http.post("/probe/write"))
        _unavailable(await http.get("/api/v2/user/me/", headers=await _auth(settings)))
        assert (await http.get("/readyz")).status_code == 503


async def test_a_postgresql_server_that_refuses_connections_is_unavailable(
    settings: Settings,
) -> None:
    closed = "postgresql+asyncpg://dovecote@127.0.0.1:1/dovecote"  # nothing listens on port 1
    async with serving(settings, database_url=closed, db_timeout_seconds=2.0) as http:
        _unavailable(await http.post("/probe/write"))
        _unavailable(await http.get("/probe/sql-bug"))  # never reached the server: not a bug


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's file lock")
async def test_a_locked_sqlite_database_is_unavailable(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.user("anna")
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = settings.database_url.removeprefix("sqlite+aiosqlite:///")  # type: ignore[union-attr]
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        async with serving(settings) as http:
            _unavailable(await http.post("/probe/write"))
        holder.execute("ROLLBACK")
        async with serving(settings) as http:
            assert (await http.post("/probe/write")).status_code == 200
    finally:
        holder.close()


async def _auth(settings: Settings) -> dict[str, str]:
    from datetime import timedelta

    from dovecote.core import security

    token = security.issue_jwt(settings.jwt_secret_bytes(), 1, lifetime=timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}"}


def _sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("message text is not looked at")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    "error, unavailable",
    [
        (_sqlite_error(5), True),  # SQLITE_BUSY
        (_sqlite_error(5 | (2 << 8)), True),  # SQLITE_BUSY_SNAPSHOT: an extended code
        (_sqlite_error(14), True),  # SQLITE_CANTOPEN
        (_sqlite_error(13), True),  # SQLITE_FULL
        (_sqlite_error(1), False),  # SQLITE_ERROR: syntax, no such table...
        (sqlite3.OperationalError("no code: raised by the module itself"), False),
        (asyncpg.exceptions.AdminShutdownError(), True),
        (asyncpg.exceptions.CannotConnectNowError(), True),
        (asyncpg.exceptions.TooManyConnectionsError(), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError(), True),
        (asyncpg.exceptions.QueryCanceledError(), True),  # statement_timeout
        (asyncpg.exceptions.UndefinedTableError(), False),
        (asyncpg.exceptions.PostgresSyntaxError(), False),
        (asyncpg.exceptions.UniqueViolationError(), False),
        (TimeoutError(), False),
        (ConnectionRefusedError(), False),
    ],
)
def test_unavailability_is_decided_by_type_and_code(error: Exception, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable
    wrapped = OperationalError("SELECT 1", {}, error)
    assert is_unavailable(wrapped) is unavailable


def test_a_dropped_connection_is_unavailable_whatever_the_error() -> None:
    assert is_unavailable(DatabaseUnavailable("raised by core.db itself"))
    dropped = OperationalError("SELECT 1", {}, Exception("x"), connection_invalidated=True)
    assert is_unavailable(dropped)
