"""web client: members' settings, and the web page's own OAuth client

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FIRST_PARTY_CLIENT_ID = "dovecote-web"  # core/web_client.py; literal: migrations stand alone


def _flag(name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{name} IN (0, 1)", name=op.f(f"ck_user_settings_{name}"))


def upgrade() -> None:
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("qa_frequency", sa.SmallInteger(), nullable=False),
        sa.Column("email_notification_not_qa", sa.SmallInteger(), nullable=False),
        sa.Column("mobile_notifications_scmty", sa.SmallInteger(), nullable=False),
        sa.Column("show_toast_notifications", sa.SmallInteger(), nullable=False),
        sa.Column("toast_notifications_emit_sound", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "qa_frequency IN (-1, 0, 1)", name=op.f("ck_user_settings_qa_frequency")
        ),
        _flag("email_notification_not_qa"),
        _flag("mobile_notifications_scmty"),
        _flag("show_toast_notifications"),
        _flag("toast_notifications_emit_sound"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_settings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_settings")),
    )
    # The web page signs members in with the password grant of this public client (no secret).
    clients = sa.table(
        "oauth_clients",
        sa.column("client_id", sa.String),
        sa.column("name", sa.String),
        sa.column("secret_hash", sa.String),
        sa.column("confidential", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        clients,
        [
            {
                "client_id": FIRST_PARTY_CLIENT_ID,
                "name": "Dovecote web page",
                "secret_hash": None,
                "confidential": False,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM oauth_clients WHERE client_id = :id").bindparams(
            id=FIRST_PARTY_CLIENT_ID
        )
    )
    op.drop_table("user_settings")
