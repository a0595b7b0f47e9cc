"""Helpers that keep the OpenAPI document truthful for bodies parsed by hand."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dovecote.core.schemas import ErrorOut


def body_of(model: type[BaseModel], *media_types: str, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` for an endpoint that reads `model` from any of `media_types`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "requestBody": {
            "required": required,
            "content": {media: {"schema": schema} for media in media_types},
        }
    }


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting error answers in the contract's shape."""
    descriptions = {
        400: "Invalid input.",
        401: "No token, or an invalid one.",
        403: "Authenticated but not allowed.",
        404: "No such object, or not visible to the caller.",
        409: "Conflict.",
        413: "Request too large.",
        422: "The request cannot be processed.",
        429: "Rate limited; see Retry-After.",
        503: "A dependency (the database) is unavailable.",
    }
    return {code: {"model": ErrorOut, "description": descriptions[code]} for code in codes}
