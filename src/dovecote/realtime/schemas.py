"""Wire shapes of live delivery (SPEC §5): the `interaction` frame, on the socket and by REST."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from dovecote.pm.schemas import MessageOut, SnippetOut

HEARTBEAT = "--1a61c1de89b75ddfbb684b8d224ee3ae--"

NotificationType = Literal["private_message", "delete_private_message"]


class NotificationObj(BaseModel):
    is_new: bool = Field(description="A message from someone else (activity 37).")
    sid: str
    type: NotificationType
    active_at: datetime = Field(description="When the event happened.")
    message: MessageOut = Field(description="The message as in a thread page (SPEC §3.3).")
    snippet: SnippetOut | None = Field(
        description="The thread as in the receiver's inbox (SPEC §3.2); null when the thread "
        "shows nothing to the receiver any more."
    )


class InteractionData(BaseModel):
    event_id: int = Field(
        description="The receiver's event cursor: gap-free and increasing per user. Reconnect "
        "with `since=<the last one received>` to get what was missed."
    )
    activity_type: Literal[37, 105] = Field(description="37 a new message, 105 a deleted one.")
    thread_id: int
    feed_serialization_id: str
    count_interactions: int = Field(description="The receiver's threads with unread messages.")
    notification_obj: NotificationObj


class InteractionFrame(BaseModel):
    type: Literal["interaction"] = "interaction"
    data: InteractionData


class ReloadData(BaseModel):
    event_id: int = Field(
        description="Events up to this id were missed and are no longer kept. Reload what the "
        "user sees (inbox, open threads) over REST; frames continue after this id, which is "
        "the cursor to keep."
    )
    reason: Literal["cursor_too_old"] = "cursor_too_old"


class ReloadFrame(BaseModel):
    """Sent instead of events that housekeeping already removed (DOVECOTE_EVENTS_RETENTION_*)."""

    type: Literal["reload"] = "reload"
    data: ReloadData


LiveFrame = InteractionFrame | ReloadFrame
