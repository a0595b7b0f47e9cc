"""The SQLite file of a deployment and who is using it.

A server holds a shared lock on `<database>.serve-lock` for as long as `dovecote serve` runs;
the port and the restore take it exclusively, so neither starts under a server and no server
starts during either. Servers started some other way (an embedded app, tests) are caught by
the second check: SQLite grants an exclusive lock only when no other connection has the
database open, even an idle one (in WAL mode every open connection holds a shared lock).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dovecote.ops.errors import Refused

LOCK_WAIT_SECONDS = 0.5


def sqlite_path(url_or_path: str) -> Path | None:
    """The file of a SQLite URL (or a plain path); None for any other database."""
    if "://" not in url_or_path:
        return Path(url_or_path).resolve()
    try:
        url = make_url(url_or_path)
    except ArgumentError as exc:
        raise Refused(f"not a database URL: {url_or_path!r}") from exc
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise Refused("an in-memory SQLite database has nothing to copy")
    return Path(url.database).resolve()


def serve_lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".serve-lock")


def _open_lock(database: Path) -> int:
    return os.open(serve_lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)


class ServingLock:
    """Held by `dovecote serve` while it runs (a shared lock: several servers may hold it).

    Taken when made, so a refusal comes before anything starts; released on exit."""

    def __init__(self, database: Path) -> None:
        database.parent.mkdir(parents=True, exist_ok=True)
        self._fd = _open_lock(database)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._fd)
            raise Refused(
                f"{database} is being ported or restored; start the server when that is done"
            ) from exc

    def __enter__(self) -> ServingLock:
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self._fd)


@contextmanager
def exclusive(database: Path) -> Iterator[sqlite3.Connection | None]:
    """Claim a stopped database for ourselves, or refuse because something uses it.

    Yields a connection holding SQLite's exclusive lock until the block ends (None when the
    file does not exist yet), so nothing can open the database meanwhile."""
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_lock(database)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Refused(
                f"{database} is in use by a running `dovecote serve`; stop it first"
            ) from exc
        if not database.exists():
            yield None
            return
        connection = _claim(database)
        try:
            yield connection
        finally:
            connection.close()  # the last connection out checkpoints and removes the WAL
    finally:
        os.close(fd)


def _claim(database: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        database, timeout=LOCK_WAIT_SECONDS, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("COMMIT")  # the lock stays: that is what EXCLUSIVE mode means
    except sqlite3.OperationalError as exc:
        connection.close()
        raise Refused(
            f"{database} is in use (another process has it open: is a server running?); "
            "stop it first"
        ) from exc
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise Refused(f"{database} is not a usable SQLite database: {exc}") from exc
    return connection


def schema_revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None
