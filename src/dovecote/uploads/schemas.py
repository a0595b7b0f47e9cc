"""Wire shapes of uploads (SPEC §4). Form fields arrive as strings; the JS client may send the
literal `undefined` or `null` for a value it does not have, which counts as absent."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_UUID = 64
UUID_PATTERN = r"^[0-9A-Fa-f-]{1,64}$"  # what this server hands out; anything else is no upload


def _absent(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in ("", "undefined", "null"):
        return None
    return value


def _text(value: Any) -> Any:
    value = _absent(value)
    return value.strip() if isinstance(value, str) else value


def _required_text(value: Any) -> Any:
    value = _text(value)
    if value is None:
        raise PydanticCustomError("missing", "This field is required.")
    return value


def _hex(value: Any) -> Any:
    value = _text(value)
    return value.lower() if isinstance(value, str) else value


Count = Annotated[Annotated[int, Field(ge=0, le=2**62)] | None, BeforeValidator(_absent)]
Uuid = Annotated[
    Annotated[str, Field(max_length=MAX_UUID, pattern=UUID_PATTERN)] | None,
    BeforeValidator(_text),
]
Name = Annotated[Annotated[str, Field(max_length=4096)] | None, BeforeValidator(_absent)]
Md5 = Annotated[
    Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None,
    BeforeValidator(_hex),
    Field(description="Hex md5 of the whole file."),
]
Parts = Annotated[Annotated[int, Field(ge=1, le=2**31)] | None, BeforeValidator(_absent)]
Seconds = Annotated[
    Annotated[float, Field(ge=0, le=10**9, allow_inf_nan=False)] | None,
    BeforeValidator(_absent),
    Field(description="Seconds, for audio and video."),
]
# Required text: present, not blank, not the JS client's `undefined`/`null`.
Text = Annotated[
    str,
    BeforeValidator(_required_text),
    Field(
        min_length=1, json_schema_extra={"pattern": r"\S", "not": {"enum": ["undefined", "null"]}}
    ),
]


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filetype: Name = Field(None, description="Ignored: the type is detected from the content.")
    filename: Name = None
    totalfilesize: Count = None


class WholeFileIn(_Form):
    md5: Md5 = None
    duration: Seconds = None


class ChunkIn(_Form):
    partindex: Annotated[int, BeforeValidator(_absent)] = Field(ge=0, le=2**31)
    totalparts: Annotated[int, BeforeValidator(_absent)] = Field(ge=1, le=2**31)
    uuid: Uuid = None
    partbyteoffset: Count = None
    chunksize: Count = None


class FinishIn(_Form):
    uuid: Annotated[Text, Field(max_length=MAX_UUID, pattern=UUID_PATTERN)]
    filename: Annotated[Text, Field(max_length=4096)]
    totalparts: Parts = None
    md5: Md5 = None


class ThumbnailIn(_Form):
    parentuuid: Annotated[Text, Field(max_length=MAX_UUID, pattern=UUID_PATTERN)]
    md5: Md5 = None


class FileOut(BaseModel):
    """A file as a message carries it (SPEC §3.1)."""

    uuid: str
    filename: str
    filesize: int
    mimetype: str
    duration: float | None
    url: str
    thumbnail: str | None


class UploadedOut(BaseModel):
    file_url: str = Field(description="A signed link to the bytes, valid for a few hours.")
    file_uuid: str


class ChunkOut(BaseModel):
    file_uuid: str


class ThumbnailOut(UploadedOut):
    parent_file_uuid: str


UPLOAD_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One of four operations, chosen by the fields sent (SPEC §4).",
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "uuid": {"type": "string"},
        "parentuuid": {"type": "string"},
        "partindex": {"type": "integer", "minimum": 0},
        "totalparts": {"type": "integer", "minimum": 1},
        "partbyteoffset": {"type": "integer", "minimum": 0},
        "chunksize": {"type": "integer", "minimum": 0},
        "totalfilesize": {"type": "integer", "minimum": 0},
        "filename": {"type": "string"},
        "filetype": {"type": "string"},
        "md5": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
        "duration": {"type": "number", "minimum": 0},
    },
}
