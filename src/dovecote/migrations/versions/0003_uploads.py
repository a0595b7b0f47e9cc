"""uploads: md5 of finished files, index for expiring unattached uploads

Revision ID: 0003
Revises: 0002_inbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("md5", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_files_attached_created_at"), ["attached", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_attached_created_at"))
        batch_op.drop_column("md5")
