"""Sending: who may send, and the three ways a send is stored (exactly once per idempotency key;
one self-committing statement on PostgreSQL; the general path everywhere else)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dovecote.auth.principal import Caller, Principal
from dovecote.core import clock
from dovecote.core.errors import AuthenticationFailed, InvalidInput
from dovecote.core.settings import Settings
from dovecote.idempotency import service as idempotency
from dovecote.pm import one_statement
from dovecote.pm import repository as repo
from dovecote.pm.context import Context, publish_after_commit
from dovecote.pm.schemas import MessageOut, SendMessageIn
from dovecote.pm.shaping import message_out
from dovecote.uploads import access as uploads
from dovecote.users import repository as users_repo
from dovecote.users.service import message_refusal


async def send_message(
    ctx: Context, caller: Caller, body: SendMessageIn, idempotency_key: str | None
) -> list[MessageOut]:
    """Store one message in the thread with each recipient; one answer per recipient. With
    an idempotency key (the header, or else the body's client_message_id) a retry replays
    the first answer and stores nothing new."""
    key = _idempotency_key(body, idempotency_key)
    if key is not None:
        return await _send_once_per_key(ctx, await caller.principal(), body, key)
    if ctx.uow.database.is_postgresql and not body.file_uuid:
        sent = await _send_in_one_statement(ctx, caller, body)
        if sent is not None:
            return sent
    return await _send_general(ctx, await caller.principal(), body)


def _idempotency_key(body: SendMessageIn, header: str | None) -> str | None:
    key = idempotency.checked_key(header)
    if key is not None and body.client_message_id not in (None, key):
        raise InvalidInput.field(
            "client_message_id", "mismatch", "client_message_id differs from Idempotency-Key."
        )
    return key or body.client_message_id


def _validate(settings: Settings, body: SendMessageIn) -> tuple[list[int], str]:
    if body.group is not None:
        raise InvalidInput.field(
            "group", "groups_disabled", "Group conversations are not enabled on this server."
        )
    if not body.recipients:
        raise InvalidInput.field("recipients", "required", "Name at least one recipient.")
    if len(body.recipients) > settings.pm_max_recipients:
        raise InvalidInput.field(
            "recipients",
            "max_length",
            f"A message may go to at most {settings.pm_max_recipients} recipients.",
        )
    text = body.message or ""
    if not text.strip() and not body.file_uuid:
        raise InvalidInput.field("message", "required", "Send a message or a file.")
    if len(text) > settings.pm_message_max_length:
        raise InvalidInput.field(
            "message",
            "max_length",
            f"A message may hold at most {settings.pm_message_max_length} characters.",
        )
    return body.recipients, text


async def _send_once_per_key(
    ctx: Context, sender: Principal, body: SendMessageIn, key: str
) -> list[MessageOut]:
    """The general path, exactly once per idempotency key: a retry replays the first answer."""
    session = ctx.uow.session
    ttl = timedelta(seconds=ctx.settings.idempotency_ttl_seconds)
    request_hash = idempotency.fingerprint(body.model_dump(exclude={"client_message_id"}))
    claim = await idempotency.claim(session, sender.id, key, request_hash, ttl)
    if claim.replay is not None:
        return [MessageOut.model_validate(item) for item in claim.replay]
    messages = await _send_general(ctx, sender, body)
    answer = [m.model_dump(mode="json") for m in messages]
    await idempotency.record(session, sender.id, key, messages[0].id, answer)
    return messages


async def _send_in_one_statement(
    ctx: Context, caller: Caller, body: SendMessageIn
) -> list[MessageOut] | None:
    """PostgreSQL: a plain text send as one self-committing statement that also confirms the
    caller (pm.one_statement). None when a thread does not exist yet: the general path
    creates it."""
    recipients, text = _validate(ctx.settings, body)
    now = clock.now()
    outcome = await one_statement.send(
        ctx.uow.database, caller.user_id, recipients, text, now, repo.NEW_MESSAGE
    )
    if outcome.sender is None:
        raise AuthenticationFailed()
    username, role = outcome.sender.username, outcome.sender_role
    sender = Principal(caller.user_id, username, role, None, *outcome.sender_blocked)
    caller.confirmed(sender)
    if outcome.message_id is None:
        for recipient_id, fact in outcome.facts:
            refusal = message_refusal(sender, recipient_id, fact)
            if refusal is not None:
                raise refusal
        return None
    message_id, sent = outcome.message_id, outcome.deliveries
    stamped = [(caller.user_id, d.sender_event_id, d.thread_id) for d in sent]
    stamped += [(d.recipient_id, d.recipient_event_id, d.thread_id) for d in sent]
    publish_after_commit(ctx, repo.NEW_MESSAGE, message_id, stamped, sent_by=caller.user_id)
    row = SentMessage(message_id, caller.user_id, text, "created", now, None)
    users = {caller.user_id: outcome.sender} | {d.recipient_id: d.recipient for d in sent}
    return [message_out(ctx, row, d.thread_id, users, d.recipient_id) for d in sent]


async def _send_general(ctx: Context, sender: Principal, body: SendMessageIn) -> list[MessageOut]:
    """Statement by statement in the request's transaction: first contact creates the
    threads, an attachment is checked and attached."""
    recipients, text = _validate(ctx.settings, body)
    session = ctx.uow.session
    attachment = (
        await uploads.attachment_for(session, ctx.settings, sender.id, body.file_uuid)
        if body.file_uuid
        else None
    )
    facts = await users_repo.recipient_facts(session, sender.id, recipients)
    for recipient in recipients:
        refusal = message_refusal(sender, recipient, facts.get(recipient))
        if refusal is not None:
            raise refusal

    now = clock.now()
    threads = await repo.direct_threads(session, sender.id, recipients)
    if len(threads) < len(recipients):
        threads = await repo.create_direct_threads(session, sender.id, recipients, now)
    file_id = attachment.file_id if attachment else None
    message_id = await repo.insert_message(session, sender.id, text, file_id, now)
    if attachment:
        await uploads.attach(session, attachment)
    await repo.list_in_threads(session, message_id, list(threads.values()))
    deliveries = [(sender.id, t) for t in threads.values()] + [(r, t) for r, t in threads.items()]
    revealed = await repo.advance_members(
        session, message_id, sender.id, [(t, u) for u, t in deliveries]
    )
    stamped = await repo.append_events(
        session, repo.NEW_MESSAGE, message_id, deliveries, revealed, now
    )
    publish_after_commit(ctx, repo.NEW_MESSAGE, message_id, stamped, sent_by=sender.id)

    users = await users_repo.get_users(session, [sender.id, *recipients])
    row = SentMessage.written(message_id, sender.id, text, now, attachment)
    return [message_out(ctx, row, threads[r], users, r) for r in recipients]


@dataclass(frozen=True)
class SentMessage:
    """A just-written message, with the columns `message_out` and the file links read (those
    of an attachment copied from the upload, not forwarded)."""

    id: int
    sender_id: int
    body: str
    status: str
    created_at: datetime
    file_id: int | None
    file_uuid: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    file_mimetype: str | None = None
    file_duration: float | None = None
    file_thumbnail_uuid: str | None = None

    @classmethod
    def written(
        cls,
        message_id: int,
        sender_id: int,
        text: str,
        now: datetime,
        attachment: uploads.Attachment | None,
    ) -> SentMessage:
        if attachment is None:
            return cls(message_id, sender_id, text, "created", now, None)
        return cls(
            message_id,
            sender_id,
            text,
            "created",
            now,
            attachment.file_id,
            attachment.file_uuid,
            attachment.file_name,
            attachment.file_size,
            attachment.file_mimetype,
            attachment.file_duration,
            attachment.file_thumbnail_uuid,
        )
