"""`dovecote db port`: copy a stopped SQLite deployment into an empty PostgreSQL database.

The target is migrated with the project's migrations, then every table is copied in dependency
order with COPY (asyncpg's copy_records_to_table) in one transaction (the schema's triggers
switched off: the counters they keep are copied too), the id sequences are set past the copied
ids, and the copy is verified before it commits: row counts per table, the
sequences, and the schema's invariants (ops.invariants). A failure rolls everything back, so
the target is left empty (but migrated) and the port can simply be run again.

Uploads are not copied: they are files in the media directory (or S3), which the new
deployment keeps using.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from alembic.script import ScriptDirectory
from rich.progress import Progress
from sqlalchemy import JSON, Float, Table, Text, create_engine, select, type_coerce
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

from dovecote.core import migrate
from dovecote.models import Base
from dovecote.ops import invariants, sqlite_files
from dovecote.ops.errors import Refused, VerificationFailed

BATCH = 10_000
NOT_DATA = {"alembic_version"}  # bookkeeping, not data: migrating fills it
# Rows the migrations themselves write (the web page's OAuth client, 0005): a target holding
# only these is still empty, and the copy replaces them with the source's own copies.
SEEDED = {"oauth_clients": "client_id = 'dovecote-web'"}


@dataclass
class TableCopy:
    name: str
    rows: int
    copied: int = 0


@dataclass
class PortReport:
    tables: list[TableCopy] = field(default_factory=list)
    migrate_seconds: float = 0.0
    copy_seconds: float = 0.0
    verify_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(migrate.alembic_config("")).get_heads()
    return ",".join(sorted(heads))


def postgres_url(target: str) -> URL:
    """The asyncpg URL of the target, or a refusal when it is not PostgreSQL."""
    try:
        url = make_url(target)
    except ArgumentError as exc:
        raise Refused(f"the target is not a database URL: {target!r}") from exc
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise Refused(
            "the target must be PostgreSQL (postgresql+asyncpg://...), "
            f"not {url.get_backend_name()}"
        )
    if not url.database:
        raise Refused("name the target database in the URL (postgresql+asyncpg://HOST/NAME)")
    return url.set(drivername="postgresql+asyncpg")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def port(source: Path, target: str, progress: Progress | None = None) -> PortReport:
    """Copy the SQLite database at `source` into the empty PostgreSQL database `target`,
    showing a bar per table in `progress` (started here, once the checks have passed)."""
    url = postgres_url(target)
    if not source.is_file():  # noqa: ASYNC240 (a stat before anything starts)
        raise Refused(f"there is no SQLite database at {source}")
    with sqlite_files.exclusive(source) as claimed:
        assert claimed is not None
        revision, head = sqlite_files.schema_revision(claimed), head_revision()
        if revision != head:
            raise Refused(
                f"the source's schema is at {revision or 'no revision'}, this Dovecote's at "
                f"{head}: run `dovecote migrate` on it first (with the server stopped)"
            )
        connection = await _connect(url)
        try:
            await _refuse_unless_empty(connection, url)
            report = PortReport()
            started = time.perf_counter()
            await _migrate(url)
            report.migrate_seconds = time.perf_counter() - started
            async with connection.transaction():
                await _copy_and_verify(claimed, connection, report, progress)
        finally:
            await connection.close()
    return report


async def _copy_and_verify(
    source: sqlite3.Connection,
    connection: asyncpg.Connection,
    report: PortReport,
    progress: Progress | None,
) -> None:
    """The copy and its verification, inside the caller's transaction."""
    started = time.perf_counter()
    foreign_keys = await _drop_foreign_keys(connection)
    triggered = await _disable_triggers(connection)
    for table in SEEDED:  # the source holds these rows too
        await connection.execute(f"DELETE FROM {quote(table)}")
    await _copy_tables(source, connection, report, progress)
    await _enable_triggers(connection, triggered)
    await _restore_foreign_keys(connection, foreign_keys)
    sequences = await _set_sequences(connection)
    report.copy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    # Planner statistics for the checks and the new server (ANALYZE samples the rows this
    # transaction wrote); without them the checks plan badly (10x).
    await connection.execute("ANALYZE")
    await _verify(source, connection, report, sequences)
    report.verify_seconds = time.perf_counter() - started


async def _connect(url: URL) -> asyncpg.Connection:
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        shown = url.render_as_string(hide_password=True)
        raise Refused(f"cannot connect to the target {shown}: {exc}") from exc


async def _refuse_unless_empty(connection: asyncpg.Connection, url: URL) -> None:
    tables = await connection.fetch(
        """SELECT n.nspname, c.relname FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2"""
    )
    for schema, name in tables:
        if name in NOT_DATA:
            continue
        qualified = f"{quote(schema)}.{quote(name)}"
        data = f" WHERE NOT ({SEEDED[name]})" if name in SEEDED else ""
        if await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {qualified}{data})"):
            raise Refused(
                f"the target database {url.database} is not empty "
                f"(table {schema}.{name} has rows): port into a new, empty database"
            )


async def _migrate(url: URL) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await migrate.upgrade_engine(engine)
    except Exception as exc:  # what Alembic or the database said, in one line
        raise Refused(f"could not migrate the target: {exc}") from exc
    finally:
        await engine.dispose()


async def _drop_foreign_keys(connection: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """Drop the foreign keys for the copy and return them (table, name, definition): checking
    each copied row by a trigger cost more than the copy itself; adding a key back checks
    every row in one pass, as pg_restore does. Same transaction: nobody sees them missing."""
    keys = [
        (str(table), str(name), str(definition))
        for table, name, definition in await connection.fetch(
            """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
               FROM pg_constraint WHERE contype = 'f'
                 AND connamespace = current_schema()::regnamespace ORDER BY 1, 2"""
        )
    ]
    for table, name, _ in keys:
        await connection.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
    return keys


async def _restore_foreign_keys(
    connection: asyncpg.Connection, keys: list[tuple[str, str, str]]
) -> None:
    for table, name, definition in keys:
        try:
            await connection.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}"
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise VerificationFailed(f"the copy of {table} breaks {name}: {exc}") from exc


async def _disable_triggers(connection: asyncpg.Connection) -> list[str]:
    """Switch off the schema's own triggers for the copy and return their tables: they keep
    counters (users.unread_threads) that the copy brings along with the rows they count, so
    firing them over the copied rows would count everything twice."""
    tables = [
        str(table)
        for (table,) in await connection.fetch(
            """SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid
               WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace
               ORDER BY 1"""
        )
    ]
    for table in tables:
        await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    return tables


async def _enable_triggers(connection: asyncpg.Connection, tables: list[str]) -> None:
    for table in tables:
        await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def _reader(table: Table) -> tuple[Any, Callable[[Sequence[Any]], tuple[Any, ...]]]:
    """The SELECT that reads a table in primary-key order, and how each row becomes a COPY
    record: JSON stays the stored text (so a JSON null stays distinct from SQL NULL), floats
    are floats even when SQLite kept an integer."""
    columns = [type_coerce(c, Text) if isinstance(c.type, JSON) else c for c in table.columns]
    floats = [i for i, c in enumerate(table.columns) if isinstance(c.type, Float)]
    query = select(*columns).order_by(*table.primary_key.columns)

    def record(row: Sequence[Any]) -> tuple[Any, ...]:
        values = tuple(row)
        if not floats:
            return values
        fixed = list(values)
        for i in floats:
            fixed[i] = None if fixed[i] is None else float(fixed[i])
        return tuple(fixed)

    return query, record


async def _copy_tables(
    source: sqlite3.Connection,
    target: asyncpg.Connection,
    report: PortReport,
    progress: Progress | None,
) -> None:
    # SQLAlchemy reads the rows so that each column comes back as the Python value the models
    # define (aware datetimes, booleans), exactly as the server would read it.
    engine = create_engine("sqlite://", creator=lambda: source, poolclass=StaticPool)
    with engine.connect() as reading, progress or nullcontext():
        for table in Base.metadata.sorted_tables:
            total = source.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()
            copy = TableCopy(table.name, int(total[0]) if total else 0)
            report.tables.append(copy)
            task = progress.add_task(table.name, total=copy.rows) if progress else None
            query, record = _reader(table)
            result = reading.execution_options(yield_per=BATCH).execute(query)
            batches: Iterator[list[tuple[Any, ...]]] = (
                [record(row) for row in part] for part in result.partitions()
            )
            # Read the next batch in a thread while PostgreSQL takes this one.
            pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
            while (batch := await pending) is not None:
                pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
                await target.copy_records_to_table(
                    table.name, records=batch, columns=[c.name for c in table.columns]
                )
                copy.copied += len(batch)
                if progress is not None and task is not None:
                    progress.advance(task, len(batch))
            result.close()
            if progress is not None and task is not None:
                progress.update(task, completed=copy.copied)  # an empty table is done, too


async def _set_sequences(connection: asyncpg.Connection) -> dict[str, tuple[str, str]]:
    """Every id sequence set past the largest copied id; returns sequence -> (table, column)."""
    rows = await connection.fetch(
        """SELECT table_name, column_name, seq FROM (
             SELECT table_name, column_name, pg_get_serial_sequence(
               format('%I.%I', table_schema, table_name), column_name) AS seq
             FROM information_schema.columns WHERE table_schema = current_schema()) s
           WHERE seq IS NOT NULL"""
    )
    sequences = {}
    for table, column, sequence in rows:
        await connection.execute(
            f"SELECT setval($1, coalesce(max({quote(column)}), 1), "
            f"max({quote(column)}) IS NOT NULL) FROM {quote(table)}",
            sequence,
        )
        sequences[sequence] = (table, column)
    return sequences


async def _verify(
    source: sqlite3.Connection,
    target: asyncpg.Connection,
    report: PortReport,
    sequences: dict[str, tuple[str, str]],
) -> None:
    for copy in report.tables:
        landed = await target.fetchval(f"SELECT count(*) FROM {quote(copy.name)}")
        if landed != copy.rows:
            raise VerificationFailed(
                f"table {copy.name}: {copy.rows} rows in the source, {landed} in the target"
            )
    for sequence, (table, column) in sequences.items():
        behind = await target.fetchval(
            f"SELECT (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
            f"FROM {sequence}) < coalesce(max({quote(column)}), 0) FROM {quote(table)}"
        )
        if behind:
            raise VerificationFailed(f"sequence {sequence} is not past the ids of {table}")
    broken = {}
    for name, sql in invariants.INVARIANTS.items():
        count = int(await target.fetchval(invariants.count_query(sql)))
        if count:
            row = source.execute(invariants.count_query(sql)).fetchone()
            broken[name] = (count, int(row[0]) if row else 0)
    if broken:
        detail = "; ".join(f"{n}: {t} rows (the source had {s})" for n, (t, s) in broken.items())
        raise VerificationFailed(f"invariants broken in the copy: {detail}")
