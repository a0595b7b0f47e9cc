"""Helpers that keep the OpenAPI document truthful for bodies parsed by hand."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
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
        410: "The events after this cursor are no longer kept: reload, then continue with "
        "`since` set to the answer's extra field `event_id`.",
        413: "Request too large.",
        416: "The requested range is outside the file.",
        422: "The request cannot be processed.",
        429: "Rate limited; see Retry-After.",
        503: "A dependency (the database) is unavailable.",
    }
    return {code: {"model": ErrorOut, "description": descriptions[code]} for code in codes}


def install(app: FastAPI) -> None:
    """Drop the 422 answers FastAPI documents by itself: Dovecote answers bad input with 400."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answer = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(answer):  # FastAPI's, not one of ours
                    operation["responses"].pop("422")
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def reference_markdown(document: dict[str, Any]) -> str:
    """The endpoint reference of docs/API.md: one table per tag, one row per operation, with
    the statuses the document says it answers (tests/test_docs.py keeps docs/API.md current)."""
    sections: dict[str, list[str]] = {}
    for path, item in sorted(document["paths"].items()):
        for method in HTTP_METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                sections.setdefault(tag, []).append(_reference_row(method, path, operation))
    out: list[str] = []
    for tag in sorted(sections):
        out += [f"### {tag}", "", "| operation | what | answers |", "|---|---|---|"]
        out += sections[tag] + [""]
    return "\n".join(out)


def _reference_row(method: str, path: str, operation: dict[str, Any]) -> str:
    summary = operation.get("summary", "").replace("|", "\\|")
    statuses = ", ".join(sorted(operation.get("responses", {})))
    return f"| `{method.upper()} {path}` | {summary} | {statuses} |"
