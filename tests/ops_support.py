"""A SQLite deployment of its own, made by real API traffic, for the operations tests (port,
backup, restore): they need SQLite as the source even when the suite runs on PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from typer.testing import CliRunner, Result

from dovecote.app import create_app
from dovecote.cli import app as cli_app
from dovecote.core import clock, migrate
from dovecote.core.settings import Settings, get_settings
from tests.conftest import SECRET, Member, World
from tests.pm_support import PM, send
from tests.uploading import png, ui_send, ui_upload

runner = CliRunner()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ops-template") / "dovecote.sqlite3"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def deployment(data_dir: Path, template: Path | None = None, **overrides: Any) -> Settings:
    """Settings of a SQLite deployment in `data_dir` (its database copied from `template`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copyfile(template, data_dir / "dovecote.sqlite3")
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "jwt_secret": SECRET,
        "public_url": None,
        "ratelimit_enabled": False,
        "upload_cleanup_interval_seconds": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Running:
    client: httpx.AsyncClient
    world: World

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        return await self.world.sql(statement, **params)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Running]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Running(http, World(application))


def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Point the CLI at the deployment `settings` describes."""
    monkeypatch.chdir(settings.data_dir.parent)
    for name in ("DOVECOTE_DATABASE_URL", "DOVECOTE_STORAGE", "DOVECOTE_MEDIA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOVECOTE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DOVECOTE_JWT_SECRET", SECRET)


def run_cli(*args: str) -> Result:
    """One `dovecote` command (call it in a thread from async code: it runs its own loop)."""
    get_settings.cache_clear()
    try:
        return runner.invoke(cli_app, list(args))
    finally:
        get_settings.cache_clear()


async def cli(*args: str) -> Result:
    """`run_cli` from async code: in a thread, since the command runs its own loop."""
    return await asyncio.to_thread(run_cli, *args)


def ok(result: Result) -> str:
    """The output of a command that succeeded (the test fails with what it said otherwise)."""
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return str(result.stdout)


def refusal(result: Result, *, alone: bool = True) -> str:
    """The one error line of a refused command, after checking it was refused (and, when
    `alone`, that nothing else was printed: no traceback, no progress)."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert not alone or len(lines) == 1, result.stderr
    return errors[0]


@dataclass
class Traffic:
    admin: Member
    anna: Member
    bruno: Member
    carla: Member
    file_uuid: str = ""
    file_bytes: bytes = b""
    sent: list[int] = field(default_factory=list)  # ids of every acknowledged message


async def make_traffic(running: Running) -> Traffic:
    """A small community through the API: sign-ups, follows, sends (one to two people),
    reads, a delete within the window and one after it, a thread deleted for one side, a hide,
    and an attachment sent with its thumbnail."""
    client, world = running.client, running.world
    admin = await world.user("admin", role="admin")  # someone must be allowed to sign people up
    members = []
    for name in ("anna", "bruno", "carla"):
        answer = await client.post(
            "/api/v2/sso/signup/", json={"username": name}, headers=admin.auth
        )
        assert answer.status_code == 201, answer.text
        members.append(Member(answer.json()["id"], name, await world.token(answer.json()["id"])))
    anna, bruno, carla = members
    traffic = Traffic(admin, anna, bruno, carla)
    for follower, followed in ((bruno, anna), (carla, anna), (anna, bruno)):
        answer = await client.post(f"/api/v2/user/{followed.id}/follow/", headers=follower.auth)
        assert answer.status_code == 204, answer.text
    for sender, to, body in ((anna, [bruno], "Ciao Bruno"), (bruno, [anna], "Ciao Anna"),
                             (anna, [bruno, carla], "Hello both"), (anna, [bruno], "oops"),
                             (anna, [carla], "old news")):  # fmt: skip
        traffic.sent.append((await send(client, sender, *to, text=body))["id"])
    assert (await client.get(PM, params={"user": anna.id}, headers=bruno.auth)).status_code == 200
    oops, old = traffic.sent[-2], traffic.sent[-1]
    assert (await client.delete(f"{PM}{oops}/", headers=anna.auth)).status_code == 204  # deleted
    clock.advance(timedelta(seconds=61))
    assert (await client.delete(f"{PM}{old}/", headers=anna.auth)).status_code == 204  # hidden
    answer = await client.delete(PM, params={"user": anna.id}, headers=carla.auth)
    assert answer.status_code == 204, answer.text
    answer = await client.post(f"/api/v2/user/{anna.id}/hide/", headers=carla.auth)
    assert answer.status_code == 204, answer.text
    traffic.file_bytes = png(5_000)
    uploaded = await ui_upload(client, anna, traffic.file_bytes, "picture.png")
    answer = await ui_send(client, anna, bruno, uploaded.thumbnail_uuid)
    assert answer.status_code == 201, answer.text
    traffic.sent.append(answer.json()["id"])
    traffic.file_uuid = uploaded.uuid
    return traffic


@pytest.fixture
def source_settings(tmp_path: Path, sqlite_template: Path) -> Iterator[Settings]:
    yield deployment(tmp_path / "source" / "data", sqlite_template)


@asynccontextmanager
async def source_with_traffic(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Running, Traffic]]:
    """The deployment serving with `make_traffic` done, the CLI pointed at it; the server
    stops (its database free for the CLI) when the block ends."""
    cli_env(monkeypatch, settings)
    async with serving(settings) as running:
        yield running, await make_traffic(running)


async def count_rows(running: Running, table: str) -> int:
    return int((await running.sql(f"SELECT count(*) FROM {table}"))[0][0])
