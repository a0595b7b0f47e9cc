"""moderation: a member's block and a hard delete's mark

Revision ID: 0008
Revises: 0007

`users.blocked_at` / `users.blocked_until` hold a moderator's block (no end: for good);
`users.erased_at` marks a hard delete. Plain ADD COLUMNs (no batch): on SQLite a batch would
recreate `users` and drop 0006's search triggers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("blocked_at", "blocked_until", "erased_at")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("users", sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:  # SQLite 3.35+ drops a column in place (a batch would lose triggers)
        op.drop_column("users", name)
