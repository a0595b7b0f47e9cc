"""unread threads: a kept count per user, maintained by triggers on thread_members

Revision ID: 0007
Revises: 0006

Every live frame shows the receiver's number of unread threads. Counting them per frame read
all of the user's member rows (20,000 rows for a busy member). `users.unread_threads` keeps the
count, so a frame reads one row.

The count follows the member rows by triggers rather than by the statements that change them:
a member row changes in many places (both send paths, marking seen, deleting a message or a
thread, and whatever comes later), and marking a thread seen must stay one UPDATE. A trigger
adds or removes one when a row starts or stops being unread (`last_incoming_id` above both
`last_read_id` and `cleared_before_id`), and does nothing otherwise.

- SQLite: row triggers. One writer at a time, so the order of their updates does not matter.
  Write member rows with ON CONFLICT DO UPDATE, never INSERT OR REPLACE: the row REPLACE deletes
  fires no delete trigger, and the row would be counted twice.
- PostgreSQL: deferred constraint triggers: they run at commit, when a send has already locked
  its users' rows in id order, so they add no lock and no lock-order deadlock.

A bulk copy must not fire them over rows whose counts it copies too: `db port` disables them
for its copy; pg_restore creates triggers after loading the data (a data-only restore into a
migrated schema needs `--disable-triggers`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _unread(row: str) -> str:
    incoming = f"{row}.last_incoming_id"
    return f"({incoming} > {row}.last_read_id AND {incoming} > {row}.cleared_before_id)"


# The rows that are unread are visible too (last_message_id >= last_incoming_id): saying so
# lets the inbox's partial index (user_id, last_message_id, thread_id) serve the count.
COUNT = f"""UPDATE users SET unread_threads = (
    SELECT count(*) FROM thread_members m
    WHERE m.user_id = users.id AND m.last_message_id > m.cleared_before_id AND {_unread("m")})"""

SQLITE_UP = (
    "CREATE TRIGGER thread_members_unread_insert AFTER INSERT ON thread_members "
    f"WHEN {_unread('new')} BEGIN "
    "UPDATE users SET unread_threads = unread_threads + 1 WHERE id = new.user_id; END",
    "CREATE TRIGGER thread_members_unread_update "
    "AFTER UPDATE OF last_incoming_id, last_read_id, cleared_before_id ON thread_members "
    f"WHEN {_unread('new')} != {_unread('old')} BEGIN "
    "UPDATE users SET unread_threads = unread_threads "
    f"+ CASE WHEN {_unread('new')} THEN 1 ELSE -1 END WHERE id = new.user_id; END",
    "CREATE TRIGGER thread_members_unread_delete AFTER DELETE ON thread_members "
    f"WHEN {_unread('old')} BEGIN "
    "UPDATE users SET unread_threads = unread_threads - 1 WHERE id = old.user_id; END",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS thread_members_unread_delete",
    "DROP TRIGGER IF EXISTS thread_members_unread_update",
    "DROP TRIGGER IF EXISTS thread_members_unread_insert",
)
POSTGRES_UP = (
    f"""CREATE FUNCTION thread_members_unread() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET unread_threads = unread_threads + 1 WHERE id = NEW.user_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE users SET unread_threads = unread_threads - 1 WHERE id = OLD.user_id;
    ELSE
        UPDATE users SET unread_threads = unread_threads
            + CASE WHEN {_unread("NEW")} THEN 1 ELSE -1 END
        WHERE id = NEW.user_id;
    END IF;
    RETURN NULL;
END $$""",
    "CREATE CONSTRAINT TRIGGER thread_members_unread_insert AFTER INSERT ON thread_members "
    f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN {_unread('NEW')} "
    "EXECUTE FUNCTION thread_members_unread()",
    "CREATE CONSTRAINT TRIGGER thread_members_unread_update "
    "AFTER UPDATE OF last_incoming_id, last_read_id, cleared_before_id ON thread_members "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    f"WHEN ({_unread('NEW')} IS DISTINCT FROM {_unread('OLD')}) "
    "EXECUTE FUNCTION thread_members_unread()",
    "CREATE CONSTRAINT TRIGGER thread_members_unread_delete AFTER DELETE ON thread_members "
    f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN {_unread('OLD')} "
    "EXECUTE FUNCTION thread_members_unread()",
)
POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS thread_members_unread_delete ON thread_members",
    "DROP TRIGGER IF EXISTS thread_members_unread_update ON thread_members",
    "DROP TRIGGER IF EXISTS thread_members_unread_insert ON thread_members",
    "DROP FUNCTION IF EXISTS thread_members_unread()",
)


def upgrade() -> None:
    # A plain ADD COLUMN (no batch): recreating `users` on SQLite would drop its search triggers.
    op.add_column(
        "users",
        sa.Column("unread_threads", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.execute(COUNT)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_UP if sqlite else POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_DOWN if sqlite else POSTGRES_DOWN:
        op.execute(statement)
    op.drop_column("users", "unread_threads")
