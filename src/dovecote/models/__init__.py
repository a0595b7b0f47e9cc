"""Every table, in one place. Repositories query these with SQLAlchemy Core-style statements.

Naming convention is fixed from day one so Alembic migrations stay stable on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite would hand back naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Timestamp = UTCDateTime()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(150), nullable=False)
    # Lower-cased copy: usernames are unique without regard to case.
    username_key: Mapped[str] = mapped_column(String(150), nullable=False, unique=True)
    real_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    ext_id: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str | None] = mapped_column(String(16))
    avatar: Mapped[str | None] = mapped_column(String(1024))
    bio: Mapped[str] = mapped_column(Text, nullable=False, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    date_joined: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    followers_counter: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    followings_counter: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Threads visible in the inbox, kept in step by every write that changes visibility.
    inbox_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Per-user event stream position: bumped under the row lock, so ids are gap-free per user.
    last_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Threads with a message from someone else the user has not read (see ThreadMember), the
    # figure every live frame shows. Kept by database triggers on thread_members (migration
    # 0007), so every write of a member row, whatever its path, keeps it in step.
    unread_threads: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    # A moderator's block (SelfCommunity status "b"): set from blocked_at until blocked_until,
    # or for good when blocked_until is NULL. A blocked member reads but may not send.
    blocked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    blocked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    # When a hard delete erased the member (SelfCommunity status "u"): then `deleted` is true too.
    erased_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (CheckConstraint("role IN ('admin', 'moderator', 'editor')", name="role"),)

    @hybrid_property
    def active(self) -> bool:
        """The one definition of an active user: neither deactivated nor deleted. Only active
        users log in, hold working tokens, send, receive and are found by search."""
        return self.is_active and not self.deleted

    @active.inplace.expression
    @classmethod
    def _active_expression(cls) -> ColumnElement[bool]:
        return and_(cls.is_active.is_(True), cls.deleted.is_(False))


class Follow(Base):
    __tablename__ = "follows"

    follower_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    followed_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (Index(None, "followed_id", "follower_id"),)


class Hide(Base):
    """`user_id` hid (blocked) `hidden_id`."""

    __tablename__ = "hides"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    hidden_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (Index(None, "hidden_id", "user_id"),)


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    confidential: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class OAuthToken(Base):
    """One access/refresh pair. Tokens are stored only as SHA-256 digests."""

    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    access_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    refresh_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Every token minted by refreshing shares the family of the first one, so a replayed
    # refresh token can revoke the whole chain.
    family: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    access_expires_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    refresh_expires_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    refresh_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class Thread(Base):
    """A conversation. One-to-one threads are unique per ordered pair (low id, high id)."""

    __tablename__ = "threads"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_low_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_high_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (
        UniqueConstraint("user_low_id", "user_high_id"),
        CheckConstraint("user_low_id < user_high_id", name="ordered_pair"),
    )


class ThreadMember(Base):
    """A user's view of a thread: what is visible, what is read, where the inbox sorts it.

    Visible in the inbox when `last_message_id > cleared_before_id`; unread (`new`) when
    `last_incoming_id > last_read_id` and `last_incoming_id > cleared_before_id`, which
    `users.unread_threads` counts. `message_count` counts the messages the member sees.
    """

    __tablename__ = "thread_members"

    thread_id: Mapped[int] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    last_message_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_incoming_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_read_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cleared_before_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Id of the message that last made the thread visible to this member (creation or revival).
    visible_since_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    # The inbox walks this index newest first; threads the member deleted are not in it, so a
    # page never steps over them (partial: a page costs the same however many were deleted).
    __table_args__ = (
        Index(
            None,
            "user_id",
            "last_message_id",
            "thread_id",
            sqlite_where=text("last_message_id > cleared_before_id"),
            postgresql_where=text("last_message_id > cleared_before_id"),
        ),
    )


class File(Base):
    """An upload: pending while its chunks arrive, then finished; thumbnails point to a parent."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    mimetype: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    filesize: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    duration: Mapped[float | None] = mapped_column()
    storage_key: Mapped[str] = mapped_column(String(255), nullable=False)
    total_parts: Mapped[int | None] = mapped_column(Integer)
    parts_received: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    attached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    md5: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index(None, "attached", "created_at"),)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sender_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(8), nullable=False, default="created")
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (CheckConstraint("status IN ('created', 'deleted', 'hidden')", name="status"),)


class ThreadMessage(Base):
    """A message listed in a thread. A send to several people lists one message in each thread;
    a message deleted within the delete window is unlisted everywhere."""

    __tablename__ = "thread_messages"

    thread_id: Mapped[int] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index(None, "message_id"),)


class Event(Base):
    """A user's live event, kept so a reconnecting client can replay what it missed."""

    __tablename__ = "events"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    activity_type: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    thread_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    message_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Indexed: housekeeping prunes events by age (DOVECOTE_EVENTS_RETENTION_SECONDS).
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, index=True)


class IdempotencyKey(Base):
    """A sender's `Idempotency-Key`: the uniqueness rule makes retried sends exactly-once."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    response: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, index=True)


class Lease(Base):
    """Who runs a periodic job on SQLite, where several processes may share one file and no
    advisory lock exists (core.db.run_alone); PostgreSQL uses an advisory lock instead."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)  # epoch milliseconds


class UserSettings(Base):
    """A member's notification settings (SelfCommunity's UserSettings). No row: the defaults
    (user_settings/schemas.py). Dovecote itself sends no mail or push; clients read these."""

    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    qa_frequency: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    email_notification_not_qa: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    mobile_notifications_scmty: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    show_toast_notifications: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    toast_notifications_emit_sound: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (
        CheckConstraint("qa_frequency IN (-1, 0, 1)", name="qa_frequency"),
        CheckConstraint("email_notification_not_qa IN (0, 1)", name="email_notification_not_qa"),
        CheckConstraint("mobile_notifications_scmty IN (0, 1)", name="mobile_notifications_scmty"),
        CheckConstraint("show_toast_notifications IN (0, 1)", name="show_toast_notifications"),
        CheckConstraint(
            "toast_notifications_emit_sound IN (0, 1)", name="toast_notifications_emit_sound"
        ),
    )
