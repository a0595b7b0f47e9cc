"""The database under test: a fresh PostgreSQL database or SQLite file, created and removed by us.

Seeding and checks talk to it with the raw drivers (asyncpg, sqlite3): the fastest way in, and
no part of Dovecote's own code path. SQL is written with `?` placeholders for both.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from dovecote.core import migrate

PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
Row = Sequence[Any]


def _dollar(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


async def postgres_reachable() -> str | None:
    """None when the benchmark's PostgreSQL answers, else why not."""
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


class Target:
    kind: str
    workdir: Path

    @property
    def server_url(self) -> str:  # DOVECOTE_DATABASE_URL
        raise NotImplementedError

    async def create(self) -> None:
        raise NotImplementedError

    async def drop(self) -> None:
        raise NotImplementedError

    async def migrate(self) -> None:
        # Alembic's env runs its own event loop: give it a thread of its own.
        await asyncio.to_thread(migrate.upgrade, self.server_url)

    async def scalar(self, sql: str, *args: Any) -> Any:
        raise NotImplementedError

    async def rows(self, sql: str, *args: Any) -> list[Row]:
        raise NotImplementedError

    async def execute(self, sql: str) -> None:
        raise NotImplementedError

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
        raise NotImplementedError

    async def upsert(
        self, table: str, columns: Sequence[str], key: int, rows: Sequence[Row]
    ) -> None:
        """Insert rows or replace the existing ones with the same first `key` columns."""
        raise NotImplementedError

    async def update_by_id(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """rows are (id, *values): set `columns` of each row with that id."""
        raise NotImplementedError

    async def after_seed(self) -> None:
        """Sequences past the seeded ids, fresh planner statistics."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


class PostgresTarget(Target):
    kind = "postgresql"

    def __init__(self) -> None:
        self.name = f"dovecote_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.workdir = Path(tempfile.mkdtemp(prefix="dovecote-bench-"))
        self.conn: asyncpg.Connection | None = None
        base = PG_ADMIN_DSN.rsplit("/", 1)[0]
        self.dsn = f"{base}/{self.name}"

    @property
    def server_url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def create(self) -> None:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        self.conn = await asyncpg.connect(self.dsn)

    async def drop(self) -> None:
        await self.close()
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    @property
    def c(self) -> asyncpg.Connection:
        if self.conn is None:
            raise RuntimeError("not connected")
        return self.conn

    async def connect(self) -> None:
        if self.conn is None:
            self.conn = await asyncpg.connect(self.dsn)

    async def scalar(self, sql: str, *args: Any) -> Any:
        await self.connect()
        return await self.c.fetchval(_dollar(sql), *args)

    async def rows(self, sql: str, *args: Any) -> list[Row]:
        await self.connect()
        return [tuple(r) for r in await self.c.fetch(_dollar(sql), *args)]

    async def execute(self, sql: str) -> None:
        await self.connect()
        await self.c.execute(sql)

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
        await self.connect()
        await self.c.copy_records_to_table(table, records=rows, columns=list(columns))

    async def upsert(
        self, table: str, columns: Sequence[str], key: int, rows: Sequence[Row]
    ) -> None:
        await self.connect()
        cols = ", ".join(columns)
        keys = ", ".join(columns[:key])
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[key:])
        async with self.c.transaction():
            await self.c.execute(
                f"CREATE TEMP TABLE bench_upsert ON COMMIT DROP AS "
                f"SELECT {cols} FROM {table} WITH NO DATA"
            )
            await self.c.copy_records_to_table("bench_upsert", records=rows, columns=list(columns))
            await self.c.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM bench_upsert "
                f"ON CONFLICT ({keys}) DO UPDATE SET {sets}"
            )

    async def update_by_id(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        await self.connect()
        cols = ", ".join(["id", *columns])
        sets = ", ".join(f"{c} = u.{c}" for c in columns)
        async with self.c.transaction():
            await self.c.execute(
                f"CREATE TEMP TABLE bench_update ON COMMIT DROP AS "
                f"SELECT {cols} FROM {table} WITH NO DATA"
            )
            await self.c.copy_records_to_table(
                "bench_update", records=rows, columns=["id", *columns]
            )
            await self.c.execute(
                f"UPDATE {table} t SET {sets} FROM bench_update u WHERE t.id = u.id"
            )

    async def after_seed(self) -> None:
        await self.connect()
        for table in ("users", "threads", "messages"):
            await self.c.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        # Freshly copied rows have no visibility map or statistics yet; a live server's
        # autovacuum would have caught up long ago.
        await self.c.execute("VACUUM ANALYZE")


def sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"


class SqliteTarget(Target):
    kind = "sqlite"

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dovecote-bench-"))
        self.path = self.workdir / "dovecote.sqlite3"
        self.conn: sqlite3.Connection | None = None

    @property
    def server_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    async def create(self) -> None:
        pass

    async def drop(self) -> None:
        await self.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    @property
    def c(self) -> sqlite3.Connection:
        if self.conn is None:
            # Seeding is the only writer while it runs; the server may hold readers open.
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        return self.conn

    async def scalar(self, sql: str, *args: Any) -> Any:
        row = self.c.execute(sql, args).fetchone()
        return row[0] if row else None

    async def rows(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in self.c.execute(sql, args).fetchall()]

    async def execute(self, sql: str) -> None:
        self.c.execute(sql)

    @staticmethod
    def _plain(rows: Iterable[Row]) -> Iterable[Row]:
        for row in rows:
            yield tuple(sqlite_time(v) if isinstance(v, datetime) else v for v in row)

    async def copy(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.c.execute("BEGIN")
        self.c.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", self._plain(rows)
        )
        self.c.execute("COMMIT")

    async def upsert(
        self, table: str, columns: Sequence[str], key: int, rows: Sequence[Row]
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        keys = ", ".join(columns[:key])
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns[key:])
        self.c.execute("BEGIN")
        # Not INSERT OR REPLACE: its delete fires no delete trigger, so the triggers that keep
        # users.unread_threads would count a replaced member row twice.
        self.c.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({keys}) DO UPDATE SET {sets}",
            self._plain(rows),
        )
        self.c.execute("COMMIT")

    async def update_by_id(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        sets = ", ".join(f"{c} = ?" for c in columns)
        self.c.execute("BEGIN")
        self.c.executemany(
            f"UPDATE {table} SET {sets} WHERE id = ?", ((*r[1:], r[0]) for r in rows)
        )
        self.c.execute("COMMIT")

    async def after_seed(self) -> None:
        self.c.execute("ANALYZE")
        self.c.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def make_target(kind: str) -> Target:
    return PostgresTarget() if kind == "postgresql" else SqliteTarget()
