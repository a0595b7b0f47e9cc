"""inbox: the inbox index holds only the threads each member can see (partial index)

Revision ID: 0002_inbox
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_inbox"
down_revision = "0001"
branch_labels = None
depends_on = None

NAME = "ix_thread_members_user_id_last_message_id_thread_id"
COLUMNS = ["user_id", "last_message_id", "thread_id"]
VISIBLE = sa.text("last_message_id > cleared_before_id")


def upgrade() -> None:
    op.drop_index(NAME, table_name="thread_members")
    op.create_index(
        NAME,
        "thread_members",
        COLUMNS,
        unique=False,
        sqlite_where=VISIBLE,
        postgresql_where=VISIBLE,
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="thread_members")
    op.create_index(NAME, "thread_members", COLUMNS, unique=False)
