"""`dovecote backup` / `restore` on SQLite: a backup taken while sends keep arriving restores
every message acknowledged before it began, with its uploads, integrity and invariants."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from dovecote.core import migrate
from dovecote.core.settings import Settings
from dovecote.ops import invariants
from tests.conftest import Member
from tests.ops_support import (
    Running,
    cli,
    cli_env,
    deployment,
    ok,
    refusal,
    serving,
    source_with_traffic,
)
from tests.pm_support import PM, seed_threads
from tests.uploading import fetch


class Load:
    """Members sending to each other as fast as the server acknowledges, until stopped."""

    def __init__(self, running: Running, pairs: list[tuple[Member, Member]]) -> None:
        self.running, self.pairs = running, pairs
        self.acknowledged: list[tuple[float, int]] = []  # (when, message id)
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []
        self.progress = asyncio.Event()

    async def _send(self, sender: Member, recipient: Member) -> None:
        while not self.stopping:
            answer = await self.running.client.post(
                PM, json={"recipients": [recipient.id], "message": "load"}, headers=sender.auth
            )
            assert answer.status_code == 201, answer.text
            self.acknowledged.append((time.perf_counter(), answer.json()["id"]))
            self.progress.set()

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._send(a, b)) for a, b in self.pairs]

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.gather(*self.tasks)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(30):  # a failed send ends its task: do not wait forever
            while len(self.acknowledged) < count:
                self.progress.clear()
                await self.progress.wait()

    def before(self, moment: float) -> set[int]:
        return {message for when, message in self.acknowledged if when < moment}


async def test_a_backup_under_write_load_restores_everything_acknowledged_before_it(
    source_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_dir = tmp_path / "backup"
    async with source_with_traffic(source_settings, monkeypatch) as (source, traffic):
        await seed_threads(source.world, traffic.bruno, threads=50, messages=5_000)  # some bulk
        load = Load(source, [(traffic.anna, traffic.bruno), (traffic.bruno, traffic.anna)])
        load.start()
        await load.wait_for(10)
        started = time.perf_counter()
        promised = load.before(started) | set(traffic.sent)
        output = ok(await cli("backup", str(backup_dir)))
        finished = time.perf_counter()
        await load.wait_for(len(load.acknowledged) + 10)  # the server kept serving
        await load.stop()
    assert "backed up the database (schema" in output and "2 uploaded files" in output
    during = [m for when, m in load.acknowledged if started <= when < finished]
    print(f"{len(promised)} acknowledged before, {len(during)} during the backup")

    restored = deployment(tmp_path / "restored" / "data")
    cli_env(monkeypatch, restored)
    ok(await cli("restore", str(backup_dir)))

    database = restored.data_dir / "dovecote.sqlite3"
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in check.execute("SELECT id FROM messages")}
    assert promised <= stored
    async with serving(restored) as after:
        async with after.world.database.read_sessions() as session:
            assert await invariants.broken(session) == {}
        message = await after.client.get(f"{PM}{traffic.sent[-1]}/", headers=traffic.bruno.auth)
        assert message.status_code == 200, message.text
        assert (await fetch(after.client, message.json()["file"]["url"])).content == (
            traffic.file_bytes
        )


async def test_the_manifest_records_time_revision_and_checksums(
    source_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with source_with_traffic(source_settings, monkeypatch):
        ok(await cli("backup", str(tmp_path / "backup")))
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["schema_revision"] and manifest["created_at"].endswith("+00:00")
    assert len(manifest["database"]["sha256"]) == 64
    files = manifest["uploads"]["files"]
    assert len(files) == 2  # the picture and its thumbnail
    for name in files:
        assert (tmp_path / "backup" / "media" / name).is_file()


async def test_restore_refuses_live_data_a_running_server_and_a_damaged_backup(
    source_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_dir = tmp_path / "backup"
    async with source_with_traffic(source_settings, monkeypatch) as (source, traffic):
        ok(await cli("backup", str(backup_dir)))
        # A server holds the database: refused even with --force.
        assert "in use" in refusal(await cli("restore", str(backup_dir), "--force"))
        later = (await source.client.post(
            PM, json={"recipients": [traffic.bruno.id], "message": "after"},
            headers=traffic.anna.auth,
        )).json()["id"]  # fmt: skip

    line = refusal(await cli("restore", str(backup_dir)))
    assert "not empty" in line and "--force" in line

    ok(await cli("restore", str(backup_dir), "--force"))  # back to the moment of the backup
    with sqlite3.connect(source_settings.data_dir / "dovecote.sqlite3") as check:
        assert check.execute("SELECT count(*) FROM messages WHERE id = ?", (later,)).fetchone() == (
            0,
        )

    files = [p for p in (backup_dir / "media").rglob("*") if p.is_file()]
    files[0].write_bytes(b"tampered")
    assert "damaged" in refusal(await cli("restore", str(backup_dir), "--force"))
    (backup_dir / "manifest.json").unlink()
    assert "not a finished Dovecote backup" in refusal(await cli("restore", str(backup_dir)))


async def test_backup_refuses_a_used_directory_and_points_postgresql_at_pg_dump(
    source_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_env(monkeypatch, source_settings)
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    assert "not an empty directory" in refusal(await cli("backup", str(used)))

    monkeypatch.setenv("DOVECOTE_DATABASE_URL", "postgresql+asyncpg://db.example/dovecote")
    line = refusal(await cli("backup", str(tmp_path / "new")))
    assert "pg_dump" in line and "Backups" in line
    assert "pg_restore" in refusal(await cli("restore", str(tmp_path / "new")))


def _previous_revision() -> str:
    """The revision before this Dovecote's newest: the schema of a backup taken before it."""
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    (head,) = script.get_heads()
    before = script.get_revision(head).down_revision
    assert isinstance(before, str)
    return before


async def test_a_backup_of_the_schema_before_is_migrated_and_its_unread_counts_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup from before users.unread_threads existed: the restored copy is migrated
    before its invariants are checked, and the count starts from what its members read."""
    old = deployment(tmp_path / "old" / "data")
    path = old.data_dir / "dovecote.sqlite3"
    await asyncio.to_thread(migrate.upgrade, f"sqlite+aiosqlite:///{path}", _previous_revision())
    with sqlite3.connect(path) as db:  # bruno wrote to anna, who has not read it yet
        db.executescript(
            """
            INSERT INTO users (id, username, username_key, real_name, bio, is_active, deleted,
                date_joined, followers_counter, followings_counter, inbox_count, last_event_id)
            VALUES (1, 'anna', 'anna', '', '', 1, 0, '2026-01-01 00:00:00', 0, 0, 1, 1),
                   (2, 'bruno', 'bruno', '', '', 1, 0, '2026-01-01 00:00:00', 0, 0, 1, 1);
            INSERT INTO threads (id, user_low_id, user_high_id, created_at)
            VALUES (1, 1, 2, '2026-01-01 00:00:00');
            INSERT INTO messages (id, sender_id, body, status, created_at)
            VALUES (1, 2, 'hi', 'created', '2026-01-01 00:00:00');
            INSERT INTO thread_messages (thread_id, message_id) VALUES (1, 1);
            INSERT INTO thread_members (thread_id, user_id, last_message_id, last_incoming_id,
                last_read_id, cleared_before_id, visible_since_id, message_count)
            VALUES (1, 1, 1, 1, 0, 0, 1, 1), (1, 2, 1, 0, 1, 0, 1, 1);
            INSERT INTO events (user_id, id, activity_type, thread_id, message_id, created_at)
            VALUES (1, 1, 37, 1, 1, '2026-01-01 00:00:00'), (2, 1, 37, 1, 1, '2026-01-01 00:00:00');
            """
        )
    cli_env(monkeypatch, old)
    ok(await cli("backup", str(tmp_path / "backup")))

    restored = deployment(tmp_path / "restored" / "data")
    cli_env(monkeypatch, restored)
    output = ok(await cli("restore", str(tmp_path / "backup")))
    assert f"schema was at {_previous_revision()}" in output
    with sqlite3.connect(restored.data_dir / "dovecote.sqlite3") as check:
        counts = check.execute("SELECT id, unread_threads FROM users ORDER BY id").fetchall()
    assert counts == [(1, 1), (2, 0)]
