"""Wire shapes of private messages (SPEC §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from dovecote.core.schemas import ID_SCHEMA, MAX_ID, parse_id
from dovecote.uploads.schemas import FileOut
from dovecote.users.schemas import UserOut


def _recipients(value: Any) -> list[int]:
    """An id or a list of ids (form bodies send strings); duplicates dropped, order kept."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PydanticCustomError("empty", "Name at least one recipient.")
    return list(dict.fromkeys(parse_id(item) for item in items))


def _optional_text(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise PydanticCustomError("invalid", "Not a valid string.")
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("invalid", "The text may not contain NUL characters.")
    return value


Recipients = Annotated[
    list[int],
    BeforeValidator(_recipients),
    WithJsonSchema(
        {
            "anyOf": [
                ID_SCHEMA,
                {"type": "array", "items": ID_SCHEMA, "minItems": 1},
            ],
            "description": "A user id or a list of user ids; duplicates are ignored.",
        }
    ),
]


class SendMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    recipients: Recipients | None = None
    message: Annotated[StrictStr | None, BeforeValidator(_optional_text)] = Field(
        None, description="The text; required unless file_uuid is given. Stored verbatim."
    )
    file_uuid: Annotated[StrictStr | None, BeforeValidator(_optional_text)] = Field(
        None, max_length=64, description="A finished upload of the sender's."
    )
    group: int | None = Field(None, ge=1, le=MAX_ID, description="Group conversations (3.8).")
    client_message_id: Annotated[StrictStr | None, BeforeValidator(_optional_text)] = Field(
        None,
        min_length=1,
        max_length=255,
        description="Idempotency key (like the Idempotency-Key header): a retried send with "
        "the same id returns the first answer and stores nothing new.",
    )


class MessageOut(BaseModel):
    id: int
    sender_id: int
    sender: UserOut | None
    message: str
    created_at: datetime
    status: Literal["created", "deleted", "hidden"]
    file: FileOut | None
    thread_id: int
    receiver: UserOut | None
    group: int | None = None


class SnippetOut(BaseModel):
    id: int = Field(description="The thread id.")
    headline: str
    sender: UserOut | None
    receiver: UserOut | None
    group: int | None = None
    created_at: datetime
    last_message_at: datetime
    thread_status: Literal["new", "seen"]


class EventOut(BaseModel):
    event_id: int
    activity_type: int
    thread_id: int
    message_id: int
    created_at: datetime
