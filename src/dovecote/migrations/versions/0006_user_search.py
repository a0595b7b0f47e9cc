"""user search: trigram indexes on usernames and real names

Revision ID: 0006
Revises: 0005

The recipient search matches `%term%` on usernames and real names. Without an index that is a
scan of the whole users table per keystroke. A trigram index finds the users holding a term of
three or more characters directly:

- PostgreSQL: pg_trgm GIN indexes on `username_key` and `lower(real_name)`, which the planner
  uses for the LIKEs as written. pg_trgm is a trusted extension (PostgreSQL 13+): the database
  owner may create it. Where it cannot be created the migration says so and goes on; the search
  then answers the same, by scanning.
- SQLite: an FTS5 table with the trigram tokenizer over the same two columns (external content:
  it stores only the index), kept in step with `users` by triggers.

Note for later migrations: on SQLite a batch operation that recreates `users` drops these
triggers; recreate them after it (tests/test_pm_search.py fails on SQLite if they are lost).
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

SQLITE_UP = (
    "CREATE VIRTUAL TABLE users_search USING fts5("
    "username_key, real_name, content='users', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN "
    "INSERT INTO users_search(rowid, username_key, real_name) "
    "VALUES (new.id, new.username_key, new.real_name); END",
    "CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN "
    "INSERT INTO users_search(users_search, rowid, username_key, real_name) "
    "VALUES ('delete', old.id, old.username_key, old.real_name); END",
    "CREATE TRIGGER users_search_update AFTER UPDATE OF username_key, real_name ON users BEGIN "
    "INSERT INTO users_search(users_search, rowid, username_key, real_name) "
    "VALUES ('delete', old.id, old.username_key, old.real_name); "
    "INSERT INTO users_search(rowid, username_key, real_name) "
    "VALUES (new.id, new.username_key, new.real_name); END",
    "INSERT INTO users_search(users_search) VALUES ('rebuild')",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS users_search_update",
    "DROP TRIGGER IF EXISTS users_search_delete",
    "DROP TRIGGER IF EXISTS users_search_insert",
    "DROP TABLE IF EXISTS users_search",
)
POSTGRES_UP = (
    "CREATE INDEX ix_users_username_key_trgm ON users USING gin (username_key gin_trgm_ops)",
    "CREATE INDEX ix_users_real_name_trgm ON users USING gin (lower(real_name) gin_trgm_ops)",
)
POSTGRES_DOWN = (
    "DROP INDEX IF EXISTS ix_users_real_name_trgm",
    "DROP INDEX IF EXISTS ix_users_username_key_trgm",
)


def _pg_trgm_available() -> bool:
    bind = op.get_bind()
    try:
        with bind.begin_nested():  # a refusal must not abort the migration's transaction
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        log.warning(
            "pg_trgm could not be created (%s): the people search will scan the users table. "
            "To index it, create the extension as a superuser, then: %s",
            exc.orig,
            "; ".join(POSTGRES_UP),
        )
        return False
    return True


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    elif _pg_trgm_available():
        for statement in POSTGRES_UP:
            op.execute(statement)


def downgrade() -> None:
    statements = SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWN
    for statement in statements:
        op.execute(statement)
