"""Schemathesis against /openapi.json: every operation, every check, the stateful phase.

Runs `st run` (the schemathesis CLI, configured by schemathesis.toml) against a real server on
a fresh database, authenticated as a user who has someone to write to.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dovecote.core import security
from dovecote.core.db import create_database, standalone_unit
from dovecote.core.settings import Settings
from tests.conftest import PG_URL, SECRET
from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = os.environ.get("DOVECOTE_SCHEMATHESIS_EXAMPLES", "50")


async def _prepare(config: Settings) -> int:
    """Alice and Bob, who follow each other; returns Alice's id."""
    from dovecote.users import service

    database = create_database(config)
    try:
        if PG_URL:
            async with database.writer.begin() as connection:
                await connection.execute(text("TRUNCATE users RESTART IDENTITY CASCADE"))
        async with standalone_unit(database) as uow:
            ctx = service.Context(uow, config)
            alice = await service.create_user(ctx, username="alice")
            bob = await service.create_user(ctx, username="bob")
            await service.ensure_follows(ctx, alice.id, bob.id)
            await service.ensure_follows(ctx, bob.id, alice.id)
        return alice.id
    finally:
        await database.dispose()


@pytest.fixture
def live(database_template: str, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    if PG_URL:
        url = database_template
    else:
        shutil.copyfile(database_template, tmp_path / "db.sqlite3")
        url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    config = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=url,
        jwt_secret=SECRET,
        ratelimit_enabled=False,
    )
    alice = asyncio.run(_prepare(config))
    token = security.issue_jwt(SECRET.encode(), alice, lifetime=timedelta(hours=2))
    with LiveServer(config) as server:
        yield server, token


def test_schemathesis_finds_no_failures(live: Any) -> None:
    server, token = live
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        EXAMPLES,
        "--seed",
        "1",
        "--continue-on-failure",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    print(summary)
    assert result.returncode == 0, result.stdout[-15000:]
