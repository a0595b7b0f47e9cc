"""Reading request bodies by hand: JSON or form-encoded, validated into a Pydantic model.

Endpoints that accept more than one media type (the SelfCommunity clients send both) parse
here; errors come out as the contract's field errors, never as a 500 or a 422. Body sizes are
capped before this, by core.middleware.BodySizeLimit.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, get_origin

from fastapi import Request
from pydantic import BaseModel, ValidationError

from dovecote.core.errors import FieldError, InvalidInput

M = TypeVar("M", bound=BaseModel)

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
    if content_type == "application/x-www-form-urlencoded":
        await _refuse_json_as_form(request)
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        data: dict[str, Any] = {}
        for key in form:
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            data[key] = values if len(values) != 1 or _is_list(model, key) else values[0]
    else:
        data = await _json_object(request)
    if model is not None and model.model_config.get("extra") != "forbid":
        data = {key: value for key, value in data.items() if key in model.model_fields}
    refuse_unstorable_text(data)
    return data


async def _refuse_json_as_form(request: Request) -> None:
    """`curl -d '{...}'` without a Content-Type sends JSON labelled as a form: say so, rather
    than answer for the fields the form parser did not find."""
    if (await request.body()).lstrip()[:1] in (b"{", b"["):
        raise InvalidInput.field(
            "non_field_errors",
            "json_sent_as_form",
            "The body is JSON but its Content-Type is application/x-www-form-urlencoded: "
            "send it with the header Content-Type: application/json.",
        )


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput.field(
            "non_field_errors", "parse_error", f"Malformed JSON: {exc}"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidInput.field(
            "non_field_errors", "invalid", "Expected a JSON object as the request body."
        )
    return parsed


def unstorable(value: Any) -> bool:
    """Text no database stores: NUL characters (PostgreSQL refuses them) or half a UTF-16
    surrogate pair (JSON may escape one, `"\\ud800"`; it is not Unicode)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return "\x00" in value
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    return False


def refuse_unstorable_text(data: dict[str, Any]) -> None:
    for key, value in data.items():
        try:
            bad_key, bad_value = unstorable(key), unstorable(value)
        except RecursionError as exc:
            raise InvalidInput.field(key, "too_deep", "The value is nested too deeply.") from exc
        if bad_key or bad_value:
            raise InvalidInput.field(
                "non_field_errors" if bad_key else key,
                "invalid",
                "The text holds a NUL character or invalid Unicode.",
            )


async def read_body(request: Request, model: type[M]) -> M:
    data = await read_body_dict(request, model)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_errors(exc) from exc
