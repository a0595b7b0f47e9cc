"""Engines, sessions and the unit of work. Dialect quirks live here and nowhere else.

SQLite gets two engines: a single-connection writer whose transactions start with
`BEGIN IMMEDIATE` (writes queue in-process instead of failing with SQLITE_BUSY when a read
transaction tries to upgrade), and a pool of readers. PostgreSQL uses one engine for both.

Every failure of the database itself (it cannot be reached, it went away, it is locked, full or
shutting down) leaves this module as `DatabaseUnavailable`, decided by the driver's exception
types and codes, never by message text; anything else the database says is a bug of ours.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from dovecote.core import clock
from dovecote.core.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000


class DatabaseUnavailable(SQLAlchemyError):
    """The database cannot serve right now: unreachable, gone, locked, full or shutting down.
    Worth retrying later; never a bug in the statement. (An SQLAlchemyError, so code that
    already treats database errors as one kind keeps doing so.)"""


# Primary result codes (https://sqlite.org/rescode.html) that say the database file cannot
# serve, as opposed to SQLITE_ERROR (1: syntax, no such table...), CONSTRAINT, MISMATCH...
_SQLITE_UNAVAILABLE = frozenset(
    {
        5,  # SQLITE_BUSY: "database is locked" after the busy timeout
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
        26,  # SQLITE_NOTADB
    }
)
# PostgreSQL: connection exceptions (08), insufficient resources (53), operator intervention
# (57: shutdown, cannot connect now, statement cancelled by a timeout), system errors (58), and
# a read-only transaction (25006: a standby after failover).
_ASYNCPG_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


def is_unavailable(error: BaseException) -> bool:
    """Whether a database error means "the database cannot serve now" (by type and code)."""
    if isinstance(error, DatabaseUnavailable):
        return True
    exc: BaseException = error
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if error.orig is None:
            return False
        exc = error.orig
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_UNAVAILABLE
    # SQLAlchemy's asyncpg adapter raises its DBAPI error from asyncpg's own exception.
    return isinstance(exc, _ASYNCPG_UNAVAILABLE) or isinstance(exc.__cause__, _ASYNCPG_UNAVAILABLE)


def _translate_error(context: ExceptionContext) -> BaseException | None:
    """SQLAlchemy's `handle_error` hook: failures of the database become DatabaseUnavailable.

    Raw OSError (TimeoutError, ConnectionError) can only come from the driver's socket here,
    e.g. asyncpg's command timeout: the connection is in an unknown state, so it is dropped."""
    original = context.original_exception
    if not isinstance(original, Exception):
        return None  # a cancelled task (or an interrupt) must stay what it is, not an outage
    if isinstance(original, OSError):
        context.is_disconnect = True
    elif not (context.is_disconnect or is_unavailable(original)):
        return None
    return DatabaseUnavailable(f"database unavailable: {type(original).__name__}: {original}")


def _connect_or_unavailable(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """SQLAlchemy's `do_connect` hook: a connection that cannot be made (refused, timed out,
    refused by the server) is DatabaseUnavailable; SQLAlchemy would let raw socket errors out."""
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc


def _classify_errors(engine: AsyncEngine) -> AsyncEngine:
    event.listen(engine.sync_engine, "handle_error", _translate_error)
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    return engine


@dataclass
class Database:
    writer: AsyncEngine
    reader: AsyncEngine
    write_sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    dialect: str
    settings: Settings
    _statements: asyncpg.Pool | None = None
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def is_postgresql(self) -> bool:
        """PostgreSQL: data-modifying CTEs and `autocommit()` (pm.one_statement) are there."""
        return self.dialect == "postgresql"

    @property
    def engines(self) -> list[AsyncEngine]:
        return [self.writer] if self.reader is self.writer else [self.writer, self.reader]

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()
        if self._statements is not None:
            await self._statements.close()
            self._statements = None

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[asyncpg.Connection]:
        """PostgreSQL only: an asyncpg connection outside any transaction, for a statement
        that commits on its own (pm.one_statement). Failures of the database itself are
        DatabaseUnavailable, like the sessions'."""
        try:
            pool = self._statements or await self._open_statement_pool()
            async with pool.acquire(timeout=self.settings.db_timeout_seconds) as connection:
                try:
                    yield connection
                except asyncpg.InterfaceError as exc:
                    if not connection.is_closed():
                        raise  # e.g. misuse of the connection: a bug, not an outage
                    raise DatabaseUnavailable(f"database connection lost: {exc}") from exc
        except OSError as exc:  # refused, reset, or a pool/command timeout
            raise DatabaseUnavailable(f"database unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable(f"database unavailable: {exc}") from exc
            raise

    async def _open_statement_pool(self) -> asyncpg.Pool:
        """The self-committing statements get a pool of their own, opened on first use, whose
        sessions always run generic plans: the one-statement send is a dozen joined CTEs
        whose planning cost more database CPU than running it (2.5 vs 1.7 ms per send,
        measured), and PostgreSQL's automatic choice kept planning it afresh. The session
        queries keep the default, where LIMIT and OFFSET values steer the plan."""
        async with self._opening:
            if self._statements is None:
                url = self.writer.url.set(drivername="postgresql")
                timeout = self.settings.db_timeout_seconds
                self._statements = await asyncpg.create_pool(
                    url.render_as_string(hide_password=False),
                    min_size=1,
                    max_size=self.settings.db_pool_size,
                    timeout=timeout,
                    command_timeout=timeout * 6,
                    reset=_nothing_to_reset,
                    server_settings={
                        "application_name": "dovecote",
                        "plan_cache_mode": "force_generic_plan",
                    },
                )
            return self._statements


async def _nothing_to_reset(_connection: asyncpg.Connection) -> None:
    """Single statements outside transactions leave no session state behind: releasing a
    connection needs no RESET ALL round trip."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions on its own: the "begin" hook below does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_engine(url: str, *, writer: bool, pool_size: int) -> AsyncEngine:
    engine = _classify_errors(
        create_async_engine(
            url,
            pool_size=1 if writer else pool_size,
            max_overflow=0,
            pool_timeout=30,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
    )
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def create_private_sqlite_file(url: str) -> None:
    """Create a SQLite database file readable by its owner only (0600), before SQLite creates
    it under the umask (usually 0644); SQLite gives its -wal and -shm files the same mode.
    An existing file keeps its mode."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    if path.startswith("file:") or os.path.exists(path):
        return
    if os.path.isdir(os.path.dirname(os.path.abspath(path))):  # else SQLite cannot open it either
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


async def database_problem(url: str, wait_seconds: float) -> str | None:
    """None when the database at `url` can be opened and answers; otherwise why not, in one
    line that names the database (without its password) and says what to check."""
    connect_args = {} if url.startswith("sqlite") else {"timeout": wait_seconds}
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        create_private_sqlite_file(url)
        async with asyncio.timeout(wait_seconds * 2), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # whatever the driver says, the operator gets one line
        where = make_url(url).render_as_string(hide_password=True)
        setting = "DOVECOTE_DATA_DIR" if url.startswith("sqlite") else "DOVECOTE_DATABASE_URL"
        return f"cannot use the database {where}: {_reason(exc)}. Check that it runs and {setting}."
    finally:
        await engine.dispose()
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text_ = str(exc).strip() or type(exc).__name__
    return text_.splitlines()[0].rstrip(".")


def create_database(settings: Settings) -> Database:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        create_private_sqlite_file(url)
        writer = _sqlite_engine(url, writer=True, pool_size=settings.db_pool_size)
        reader = _sqlite_engine(url, writer=False, pool_size=settings.db_pool_size)
        dialect = "sqlite"
    else:
        writer = reader = _classify_errors(
            create_async_engine(
                url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_pool_size,
                pool_timeout=settings.db_timeout_seconds,
                pool_pre_ping=False,
                connect_args={
                    "timeout": settings.db_timeout_seconds,
                    "command_timeout": settings.db_timeout_seconds * 6,
                    "server_settings": {"application_name": "dovecote"},
                },
            )
        )
        dialect = writer.dialect.name
    return Database(
        writer=writer,
        reader=reader,
        write_sessions=async_sessionmaker(writer, expire_on_commit=False, autoflush=False),
        read_sessions=async_sessionmaker(reader, expire_on_commit=False, autoflush=False),
        dialect=dialect,
        settings=settings,
    )


def upsert(dialect: str, table: Any) -> Any:
    """An INSERT that understands ON CONFLICT on both supported databases.

    Typed Any: the two dialects' Insert classes share the ON CONFLICT methods but no base."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


AfterCommit = Callable[[], Awaitable[None]]


@dataclass
class UnitOfWork:
    """One request's transaction. Opened lazily, committed once by the route (core.routing)."""

    database: Database
    write: bool
    _session: AsyncSession | None = None
    _after_commit: list[AfterCommit] = field(default_factory=list)
    # Set when an error answer must still keep its writes (e.g. revoking a stolen token family).
    commit_on_error: bool = False

    @property
    def dialect(self) -> str:
        return self.database.dialect

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            maker = self.database.write_sessions if self.write else self.database.read_sessions
            self._session = maker()
        return self._session

    def after_commit(self, callback: AfterCommit) -> None:
        """Run `callback` once the transaction is durable; dropped on rollback."""
        self._after_commit.append(callback)

    async def commit(self) -> list[AfterCommit]:
        if self._session is not None and self._session.in_transaction():
            await self._session.commit()
        callbacks, self._after_commit = self._after_commit, []
        return callbacks

    async def rollback(self) -> None:
        self._after_commit.clear()
        if self._session is not None and self._session.in_transaction():
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@asynccontextmanager
async def standalone_unit(database: Database) -> AsyncIterator[UnitOfWork]:
    """A unit of work for work outside any request (periodic jobs, the CLI): committed when
    the block ends without error, after which its after-commit callbacks run; rolled back when
    it raises. Requests get theirs from core.routing instead."""
    uow = UnitOfWork(database, write=True)
    try:
        yield uow
        callbacks = await uow.commit()
    except BaseException:
        await uow.rollback()
        raise
    finally:
        await uow.close()
    for callback in callbacks:
        await callback()


# --- one runner at a time, across processes ---------------------------------------------------


@dataclass
class Turn:
    """The right to run a job alone. `keep()` before each step: False when it was lost (a SQLite
    lease that expired while this process stalled and was taken by another)."""

    keep: Callable[[], Awaitable[bool]]


async def _held() -> bool:
    return True


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    digest = hashlib.sha256(f"dovecote:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def run_alone(
    database: Database, name: str, lease_seconds: float
) -> AsyncIterator[Turn | None]:
    """Yield a Turn when no other process (or task) runs job `name`, else None.

    PostgreSQL: a session advisory lock, held on a dedicated connection for the whole run and
    released with it (also when the process dies). SQLite, whose file several processes may
    share: a lease row taken in a `BEGIN IMMEDIATE` transaction, valid for `lease_seconds`
    and renewed by `Turn.keep()`; a crashed holder's lease simply runs out."""
    if database.dialect == "postgresql":
        async with _advisory_lock(database, name) as turn:
            yield turn
    else:
        async with _lease(database, name, lease_seconds) as turn:
            yield turn


@asynccontextmanager
async def _advisory_lock(database: Database, name: str) -> AsyncIterator[Turn | None]:
    key = {"key": _lock_key(name)}
    async with database.writer.connect() as connection:
        taken = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key)
        await connection.commit()  # the lock belongs to the session, not the transaction
        if not taken:
            yield None
            return
        try:
            yield Turn(_held)
        finally:
            try:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                await connection.commit()
            except SQLAlchemyError:  # closing the connection releases the lock as well
                await connection.invalidate()


def _epoch_ms() -> int:
    return int(clock.now().timestamp() * 1000)


async def _take_lease(database: Database, name: str, holder: str, lease_seconds: float) -> bool:
    now = _epoch_ms()
    async with database.writer.begin() as connection:  # BEGIN IMMEDIATE: one writer decides
        await connection.execute(
            text(
                "INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :expires)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= :now"
            ),
            {
                "name": name,
                "holder": holder,
                "expires": now + int(lease_seconds * 1000),
                "now": now,
            },
        )
        owner = await connection.scalar(
            text("SELECT holder FROM leases WHERE name = :name"), {"name": name}
        )
    return bool(owner == holder)


@asynccontextmanager
async def _lease(database: Database, name: str, lease_seconds: float) -> AsyncIterator[Turn | None]:
    holder = uuid.uuid4().hex

    async def keep() -> bool:
        return await _take_lease(database, name, holder, lease_seconds)

    if not await keep():
        yield None
        return
    try:
        yield Turn(keep)
    finally:
        async with database.writer.begin() as connection:
            await connection.execute(
                text("UPDATE leases SET expires_at = 0 WHERE name = :name AND holder = :holder"),
                {"name": name, "holder": holder},
            )
