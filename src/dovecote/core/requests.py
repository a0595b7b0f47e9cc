"""Reading request bodies by hand: JSON or form-encoded, validated into a Pydantic model.

Endpoints that accept more than one media type (the SelfCommunity clients send both) parse
here; errors come out as the contract's field errors, never as a 500 or a 422.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, get_origin

from fastapi import Request
from pydantic import BaseModel, ValidationError

from dovecote.core.errors import FieldError, InvalidInput, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY = 1_048_576  # bytes; messages are at most tens of KB

_CODES = {
    "missing": "required",
    "string_too_long": "max_length",
    "too_long": "max_length",
    "string_too_short": "blank",
    "too_short": "empty",
}


def field_errors(exc: ValidationError, *, skip: int = 0) -> InvalidInput:
    errors = []
    for error in exc.errors(include_url=False):
        location = [str(part) for part in error["loc"][skip:] if not isinstance(part, int)]
        field = location[0] if location else "non_field_errors"
        code = _CODES.get(error["type"], error["type"] if error["type"].islower() else "invalid")
        if code.endswith(("_type", "_parsing")) or code in {"literal_error", "value_error"}:
            code = "invalid"
        errors.append(FieldError(field, code, _message(error)))
    return InvalidInput(errors)


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _is_list(model: type[BaseModel] | None, name: str) -> bool:
    field = model.model_fields.get(name) if model else None
    return field is not None and get_origin(field.annotation) is list


async def read_body_dict(request: Request, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The body as a dict. Form fields repeat for lists: a list-typed field always gets a list,
    any other field its single value."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        data: dict[str, Any] = {}
        for key in form:
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            data[key] = values if len(values) != 1 or _is_list(model, key) else values[0]
        return data
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise PayloadTooLarge(f"The body exceeds {MAX_JSON_BODY} bytes.", code="body_too_large")
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.field(
            "non_field_errors", "parse_error", f"Malformed JSON: {exc}"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidInput.field(
            "non_field_errors", "invalid", "Expected a JSON object as the request body."
        )
    return parsed


async def read_body(request: Request, model: type[M]) -> M:
    data = await read_body_dict(request, model)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_errors(exc) from exc
