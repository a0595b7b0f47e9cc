"""The `dovecote` command line (SPEC §7) and the JWT secret's handling (SPEC §1, §8)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner, Result

from dovecote.app import create_app
from dovecote.cli import app as cli
from dovecote.core import security
from dovecote.core.settings import Settings, get_settings
from tests.conftest import SECRET

runner = CliRunner()


@pytest.fixture
def env(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The CLI's environment: the test database, a private data dir, no stray `.env`."""
    monkeypatch.chdir(tmp_path)
    for name in ("DOVECOTE_JWT_SECRET", "DOVECOTE_DATABASE_URL", "DOVECOTE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "DOVECOTE_DATA_DIR": str(tmp_path / "data"),
        "DOVECOTE_DATABASE_URL": database_url,
        "DOVECOTE_JWT_SECRET": SECRET,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


def run(*args: str) -> Result:
    get_settings.cache_clear()
    return runner.invoke(cli, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def query(url: str, statement: str, **params: Any) -> list[Any]:
    async def main() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return list(await connection.execute(text(statement), params))
        finally:
            await engine.dispose()

    return asyncio.run(main())


# --- users create ------------------------------------------------------------------------------


def test_users_create_prints_one_line_of_json(env: dict[str, str]) -> None:
    out = ok("users", "create", "anna", "--real-name", "Anna Rossi", "--email", "a@example.org")
    lines = out.strip().splitlines()
    assert len(lines) == 1
    user = json.loads(lines[0])
    assert isinstance(user["id"], int) and user["username"] == "anna"
    assert user["real_name"] == "Anna Rossi"
    rows = query(env["DOVECOTE_DATABASE_URL"], "SELECT username, email FROM users")
    assert [tuple(r) for r in rows] == [("anna", "a@example.org")]


def test_users_create_with_password_and_role(env: dict[str, str]) -> None:
    user = json.loads(ok("users", "create", "boss", "--password", "secret123", "--role", "admin"))
    rows = query(
        env["DOVECOTE_DATABASE_URL"],
        "SELECT role, password_hash FROM users WHERE id = :id",
        id=user["id"],
    )
    role, password_hash = rows[0]
    assert role == "admin"
    assert asyncio.run(security.verify_password("secret123", password_hash, threads=1))


@pytest.mark.parametrize("name", ["anna", "ANNA"])
def test_users_create_with_a_taken_username(env: dict[str, str], name: str) -> None:
    ok("users", "create", "anna")
    result = run("users", "create", name)
    assert result.exit_code == 1
    assert "taken" in result.stderr and "username" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["has space", "dot.ted", "ünï", "x" * 151])
def test_users_create_with_an_invalid_username(env: dict[str, str], name: str) -> None:
    result = run("users", "create", name)
    assert result.exit_code == 1
    assert "username" in result.stderr
    assert query(env["DOVECOTE_DATABASE_URL"], "SELECT COUNT(*) FROM users") == [(0,)]


@pytest.mark.parametrize(
    "options, field",
    [
        (["--role", "superuser"], "role"),
        (["--email", "not an email"], "email"),
        (["--password", "short"], "password"),
        (["--real-name", "x" * 256], "real_name"),
    ],
)
def test_users_create_with_invalid_options(
    env: dict[str, str], options: list[str], field: str
) -> None:
    result = run("users", "create", "anna", *options)
    assert result.exit_code == 1
    assert field in result.stderr and "Traceback" not in result.stderr
    assert query(env["DOVECOTE_DATABASE_URL"], "SELECT COUNT(*) FROM users") == [(0,)]


# --- token, follow, clients, demo --------------------------------------------------------------


def test_token_mints_a_working_jwt(env: dict[str, str]) -> None:
    user = json.loads(ok("users", "create", "anna"))
    token = ok("token", "anna").strip()
    claims = security.decode_jwt(SECRET.encode(), token)
    assert claims.user_id == user["id"]
    assert ok("token", "ANNA", "--minutes", "5").strip() != token


def test_token_for_an_unknown_user(env: dict[str, str]) -> None:
    result = run("token", "nobody")
    assert result.exit_code == 1
    assert "nobody" in result.stderr and result.stdout == ""


def test_follow(env: dict[str, str]) -> None:
    ok("users", "create", "anna")
    ok("users", "create", "bruno")
    assert "bruno follows anna" in ok("follow", "bruno", "anna")
    ok("follow", "bruno", "anna")  # idempotent, not a toggle
    rows = query(
        env["DOVECOTE_DATABASE_URL"],
        "SELECT username, followers_counter, followings_counter FROM users ORDER BY username",
    )
    assert [tuple(r) for r in rows] == [("anna", 1, 0), ("bruno", 0, 1)]
    assert run("follow", "bruno", "nobody").exit_code == 1
    assert run("follow", "anna", "ANNA").exit_code == 1  # nobody follows themselves


def test_clients_create(env: dict[str, str]) -> None:
    public = json.loads(ok("clients", "create", "web app"))
    assert public["client_id"] and public["client_secret"] is None
    confidential = json.loads(ok("clients", "create", "backend", "--confidential"))
    assert confidential["client_secret"]
    rows = query(
        env["DOVECOTE_DATABASE_URL"],
        "SELECT client_id, confidential, secret_hash FROM oauth_clients "
        "WHERE client_id <> 'dovecote-web' ORDER BY id",  # the page's own, from a migration
    )
    assert [(r[0], bool(r[1])) for r in rows] == [
        (public["client_id"], False),
        (confidential["client_id"], True),
    ]
    assert confidential["client_secret"] not in rows[1][2]
    secret = env["DOVECOTE_JWT_SECRET"].encode()
    assert rows[1][2] == security.client_secret_digest(secret, confidential["client_secret"])


def test_demo(env: dict[str, str]) -> None:
    lines = ok("demo", "--users", "3").strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        name, user_id, password, token = line.split("\t")
        assert name.startswith("demo") and password == f"password={name}-password"
        claims = security.decode_jwt(SECRET.encode(), token.removeprefix("token="))
        assert claims.user_id == int(user_id.removeprefix("id="))
    url = env["DOVECOTE_DATABASE_URL"]
    assert query(url, "SELECT COUNT(*) FROM follows") == [(6,)]
    # Running it again reuses the users instead of failing.
    assert len(ok("demo", "--users", "3").strip().splitlines()) == 3
    assert query(url, "SELECT COUNT(*) FROM users") == [(3,)]


def test_migrate(env: dict[str, str]) -> None:
    assert "head" in ok("migrate")


# --- the JWT secret ----------------------------------------------------------------------------


def test_generated_secret_file_has_mode_600(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOVECOTE_JWT_SECRET")
    ok("users", "create", "anna")
    token = ok("token", "anna").strip()
    secret_file = Path(env["DOVECOTE_DATA_DIR"]) / "jwt_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_bytes().strip()
    assert len(secret) >= 32
    security.decode_jwt(secret, token)
    # Kept, not regenerated: the next token is signed with the same secret.
    security.decode_jwt(secret, ok("token", "anna").strip())
    assert secret_file.read_bytes().strip() == secret


def test_generated_secret_is_used_by_the_app(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    first = settings.jwt_secret_bytes()
    assert stat.S_IMODE((tmp_path / "data" / "jwt_secret").stat().st_mode) == 0o600
    assert Settings(_env_file=None, data_dir=tmp_path / "data").jwt_secret_bytes() == first  # type: ignore[call-arg]
    create_app(Settings(_env_file=None, data_dir=tmp_path / "data"))  # type: ignore[call-arg]


def test_the_sqlite_files_are_private_like_the_secret(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DOVECOTE_DATABASE_URL")  # the default: a SQLite file in the data dir
    previous = os.umask(0o022)  # the usual umask, under which files are created 0644
    try:
        ok("users", "create", "anna")  # migrations create the file
        settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
        database = tmp_path / "data" / "dovecote.sqlite3"
        modes = asyncio.run(_modes_while_open(settings, database))
    finally:
        os.umask(previous)

    assert modes == {"dovecote.sqlite3": 0o600, "-wal": 0o600, "-shm": 0o600}


async def _modes_while_open(settings: Settings, database: Path) -> dict[str, int]:
    """The modes of the database and its -wal/-shm files while a connection holds them open."""
    from dovecote.core.db import create_database

    db = create_database(settings)
    try:
        async with db.writer.begin() as connection:
            await connection.execute(text("UPDATE users SET real_name = 'A'"))
        async with db.reader.connect() as connection:
            await connection.execute(text("SELECT count(*) FROM users"))
            files = [database, *(Path(f"{database}{end}") for end in ("-wal", "-shm"))]
            return {
                f.name.removeprefix(database.name) or f.name: stat.S_IMODE(f.stat().st_mode)
                for f in files
            }
    finally:
        await db.dispose()


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, "é" * 15])
def test_short_secret_is_refused_by_the_settings(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(_env_file=None, data_dir=tmp_path, jwt_secret=secret)  # type: ignore[call-arg]


def test_secret_of_32_bytes_is_accepted(tmp_path: Path) -> None:
    create_app(Settings(_env_file=None, data_dir=tmp_path, jwt_secret="x" * 32))  # type: ignore[call-arg]
    create_app(Settings(_env_file=None, data_dir=tmp_path, jwt_secret="é" * 16))  # type: ignore[call-arg]


def test_short_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("too short")
    with pytest.raises(ValueError, match="32 bytes"):
        create_app(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]


def test_cli_refuses_a_short_secret_cleanly(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("users", "create", "anna")
    monkeypatch.setenv("DOVECOTE_JWT_SECRET", "short")
    result = run("token", "anna")
    assert result.exit_code == 1
    assert "32 bytes" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
