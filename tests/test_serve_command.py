"""`dovecote serve` as an operator runs it: its options, end to end in a real process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port
from tests.realtime_helpers import next_frame, socket
from tests.serve_process import ServeProcess


def demo_tokens(server: ServeProcess) -> dict[str, tuple[int, str]]:
    tokens = {}
    for line in server.cli("demo", "--users", "2").splitlines():
        name, *fields = line.split("\t")
        values = dict(field.split("=", 1) for field in fields)
        tokens[name] = (int(values["id"]), values["token"])
    return tokens


@pytest.mark.parametrize(("options", "extension"), [((), None), (("--deflate",), "deflate")])
async def test_deflate_compresses_live_frames_only_when_asked(
    tmp_path: Path, options: tuple[str, ...], extension: str | None
) -> None:
    with ServeProcess(tmp_path / "data") as server:
        users = demo_tokens(server)
        await server.start(*options)
        (_, sender), (receiver_id, receiver) = users["demo1"], users["demo2"]
        async with socket(server.url.replace("http", "ws"), receiver) as ws:
            agreed = ws.response.headers.get("Sec-WebSocket-Extensions")  # type: ignore[union-attr]
            async with httpx.AsyncClient() as http:
                sent = await http.post(
                    f"{server.url}/api/v2/pm/",
                    json={"recipients": [receiver_id], "message": "compressed? " * 50},
                    headers={"Authorization": f"Bearer {sender}"},
                )
            assert sent.status_code == 201
            frame = await next_frame(ws)

    # The client offers permessage-deflate; the server takes it up only with --deflate.
    assert (agreed or "").startswith("permessage-deflate") is (extension == "deflate")
    assert frame["notification_obj"]["message"]["message"] == "compressed? " * 50


# --- settings first: one line each, with the fix, exit status 1 ------------------------------


def serve_refused(
    tmp_path: Path, data_dir: Path | None = None, **settings: str
) -> tuple[str, Path]:
    """Run `dovecote serve` with these settings; it must refuse at once: its stderr."""
    server = ServeProcess(data_dir or tmp_path / "data", **settings)
    done = subprocess.run(
        [sys.executable, "-m", "dovecote", "serve", "--port", str(server.port)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return done.stderr, server.data_dir


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"jwt_secret": "too-short"},
            "error: DOVECOTE_JWT_SECRET must be at least 32 bytes long; it is 9. Make one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
        ),
        (
            {"database_url": "mysql://dove:secret-pw@db/dove"},
            "error: DOVECOTE_DATABASE_URL: must be postgresql+asyncpg://USER:PASSWORD@HOST:PORT/"
            "DATABASE or sqlite+aiosqlite:///PATH (postgres:// and postgresql:// are read as "
            "asyncpg).",
        ),
        (
            {"log_level": "loud"},
            "error: DOVECOTE_LOG_LEVEL: Input should be 'debug', 'info', 'warning', 'error' or "
            "'critical'",
        ),
        (
            {"ratelimit_send_ip": "fast"},
            "error: DOVECOTE_RATELIMIT_SEND_IP: must be limits like '5/second;200/minute' "
            "(COUNT/UNIT, ';' between them).",
        ),
        (
            {"storage": "s3"},
            "error: DOVECOTE_STORAGE=s3 needs DOVECOTE_S3_BUCKET, the bucket's name.",
        ),
        (
            {"redis_url": "localhost:6379"},
            "error: DOVECOTE_REDIS_URL: must be a redis://HOST:PORT/DB URL (or rediss://, "
            "unix://).",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_before_anything_runs(
    tmp_path: Path, settings: dict[str, str], line: str
) -> None:
    stderr, data_dir = serve_refused(tmp_path, **settings)

    assert stderr.splitlines() == [line]
    assert not data_dir.exists()  # refused before the migrations made anything
    assert "secret-pw" not in stderr


def test_a_short_secret_file_is_refused_before_the_migrations(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "jwt_secret").write_text("edited-by-hand")

    stderr, _ = serve_refused(tmp_path, data_dir=data_dir)

    assert stderr.splitlines()[-1].startswith(
        "error: DOVECOTE_JWT_SECRET must be at least 32 bytes long; it is 14."
    )
    assert not (data_dir / "dovecote.sqlite3").exists() or not sqlite_tables(data_dir)


def sqlite_tables(data_dir: Path) -> list[str]:
    with closing(sqlite3.connect(data_dir / "dovecote.sqlite3")) as db:
        return [row[0] for row in db.execute("SELECT name FROM sqlite_master")]


def test_every_wrong_setting_is_listed_at_once(tmp_path: Path) -> None:
    stderr, _ = serve_refused(tmp_path, jwt_secret="short", pm_delete_window_seconds="-1")

    assert stderr.splitlines() == [
        "error: DOVECOTE_JWT_SECRET must be at least 32 bytes long; it is 5. Make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
        "error: DOVECOTE_PM_DELETE_WINDOW_SECONDS: Input should be greater than or equal to 0",
    ]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
def test_an_unreachable_database_is_one_line_and_postgres_urls_are_read_as_asyncpg(
    tmp_path: Path, scheme: str
) -> None:
    port = free_port()  # nothing listens there
    url = f"{scheme}://dove:secret-pw@127.0.0.1:{port}/dove"

    stderr, _ = serve_refused(tmp_path, database_url=url)

    assert stderr.splitlines() == [
        f"error: cannot use the database postgresql+asyncpg://dove:***@127.0.0.1:{port}/dove: "
        f"[Errno 111] Connect call failed ('127.0.0.1', {port}). Check that it runs and "
        "DOVECOTE_DATABASE_URL."
    ]


def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")

    stderr, _ = serve_refused(tmp_path, data_dir=tmp_path / "file" / "data")

    assert stderr.splitlines() == [
        f"error: cannot create DOVECOTE_DATA_DIR {tmp_path / 'file' / 'data'}: Not a directory."
    ]
