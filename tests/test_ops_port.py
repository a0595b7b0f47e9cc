"""`dovecote db port`: a SQLite deployment made by API traffic, copied into PostgreSQL and
served from there (needs DOVECOTE_TEST_DATABASE_URL; each test makes its own target)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from dovecote.core.settings import Settings
from dovecote.models import Base
from dovecote.ops import invariants
from dovecote.ops.sqlite_files import ServingLock
from tests.conftest import PG_URL, Member, _admin
from tests.ops_support import (
    Running,
    Traffic,
    cli,
    cli_env,
    count_rows,
    deployment,
    ok,
    refusal,
    serving,
    source_with_traffic,
)
from tests.pm_support import PM, send
from tests.uploading import fetch

needs_postgresql = pytest.mark.skipif(not PG_URL, reason="DOVECOTE_TEST_DATABASE_URL is not set")
TABLES = [table.name for table in Base.metadata.sorted_tables]


@pytest.fixture
async def target_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    assert PG_URL
    server = make_url(PG_URL).set(drivername="postgresql+asyncpg")
    name = f"dovecote_port_{os.getpid()}_{secrets.token_hex(3)}"
    admin = server.render_as_string(hide_password=False)
    await _admin(admin, f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    await _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def port(*args: str) -> Any:
    return await cli("db", "port", *args)


async def pages(running: Running, traffic: Traffic) -> dict[str, Any]:
    """What the members see: threads, then inboxes (reading a thread marks it seen, so the
    same calls see the same answers the second time), one message."""
    client, seen = running.client, {}
    for reader, other in ((traffic.bruno, traffic.anna), (traffic.anna, traffic.carla)):
        answer = await client.get(PM, params={"user": other.id}, headers=reader.auth)
        seen[f"thread {reader.username}-{other.username}"] = answer.json()
    for member in (traffic.anna, traffic.bruno, traffic.carla):
        seen[f"inbox {member.username}"] = (await client.get(PM, headers=member.auth)).json()
    last = traffic.sent[-1]
    seen["message"] = (await client.get(f"{PM}{last}/", headers=traffic.bruno.auth)).json()
    return seen


@needs_postgresql
async def test_a_deployment_made_through_the_api_is_served_from_postgresql_after_the_port(
    source_settings: Settings, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with source_with_traffic(source_settings, monkeypatch) as (source, traffic):
        before = await pages(source, traffic)
        counts = {table: await count_rows(source, table) for table in TABLES}
        # The server has the database open: the port refuses, touching nothing.
        assert "in use" in refusal(await port("--to", target_url))

    output = ok(await port("--to", target_url))
    assert f"ported {sum(counts.values())} rows in {len(TABLES)} tables" in output
    assert str(source_settings.effective_media_dir.resolve()) in output

    ported = deployment(source_settings.data_dir, database_url=target_url)
    async with serving(ported) as target:
        assert {table: await count_rows(target, table) for table in TABLES} == counts
        assert await pages(target, traffic) == before
        # The attachment still downloads, from the uploads left where they were.
        link = before["message"]["file"]["url"]
        assert (await fetch(target.client, link)).content == traffic.file_bytes
        # New rows get new ids: every sequence is past what was copied.
        fresh = await send(target.client, traffic.bruno, traffic.anna, text="from PostgreSQL")
        assert fresh["id"] > max(traffic.sent)
        answer = await target.client.post(
            "/api/v2/sso/signup/", json={"username": "dora"}, headers=traffic.admin.auth
        )
        assert answer.status_code == 201, answer.text
        dora = Member(answer.json()["id"], "dora", await target.world.token(answer.json()["id"]))
        assert dora.id > traffic.carla.id
        inbox = (await target.client.get(PM, headers=traffic.anna.auth)).json()
        assert inbox["results"][0]["headline"] == "from PostgreSQL"
        async with target.world.database.read_sessions() as session:
            assert await invariants.broken(session) == {}


@needs_postgresql
async def test_a_target_that_is_not_empty_is_refused_and_left_alone(
    source_settings: Settings, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with source_with_traffic(source_settings, monkeypatch):
        pass
    ok(await port("--to", target_url))
    users = await _scalar(target_url, "SELECT count(*) FROM users")

    line = refusal(await port("--to", target_url))

    assert "is not empty" in line and "has rows" in line
    assert await _scalar(target_url, "SELECT count(*) FROM users") == users


async def _scalar(url: str, sql: str) -> Any:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


PG_SHAPED = "postgresql+asyncpg://nobody@127.0.0.1:9/none"  # never reached: refused first


async def test_the_target_must_be_postgresql(
    source_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_env(monkeypatch, source_settings)
    line = refusal(await port("--to", "sqlite+aiosqlite:///elsewhere.sqlite3"))
    assert "must be PostgreSQL" in line


async def test_the_source_must_be_sqlite(
    source_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_env(monkeypatch, source_settings)
    line = refusal(await port("--to", PG_SHAPED, "--from", PG_SHAPED))
    assert "must be a SQLite database" in line
    line = refusal(await port("--to", PG_SHAPED, "--from", "/nowhere/dovecote.sqlite3"))
    assert "no SQLite database at /nowhere/dovecote.sqlite3" in line


async def test_a_source_held_by_dovecote_serve_is_refused(
    source_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dovecote serve` holds the serve lock even before its first query."""
    cli_env(monkeypatch, source_settings)
    database = source_settings.data_dir / "dovecote.sqlite3"
    with ServingLock(database):
        line = refusal(await port("--to", PG_SHAPED))
    assert "in use by a running `dovecote serve`" in line


@needs_postgresql
async def test_a_copy_that_fails_verification_is_rolled_back(
    source_settings: Settings, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with source_with_traffic(source_settings, monkeypatch) as (source, _):
        await source.sql("UPDATE users SET inbox_count = inbox_count + 7 WHERE username = 'anna'")

    line = refusal(await port("--to", target_url), alone=False)  # after the copy's progress

    assert "inbox_count counts the user's visible threads (user, stored, real): 1 rows" in line
    assert await _scalar(target_url, "SELECT count(*) FROM users") == 0  # nothing was kept
    assert await _scalar(target_url, "SELECT count(*) FROM alembic_version") == 1  # migrated
