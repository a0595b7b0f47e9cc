"""The one place errors become answers, in the shape of SPEC §2."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from dovecote.core.db import DatabaseUnavailable, is_unavailable
from dovecote.core.errors import (
    CursorTooOld,
    DovecoteError,
    FieldError,
    InvalidInput,
    NotAuthenticated,
    OAuthError,
    RateLimited,
    ServiceUnavailable,
)
from dovecote.core.pagination import ABSENT_BRANCH
from dovecote.core.requests import field_errors

log = logging.getLogger("dovecote")

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


def error_body(detail: str, code: str) -> dict[str, Any]:
    return {"detail": detail, "errors": [{"code": code, "message": detail}]}


def render(error: DovecoteError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(error, OAuthError):
        body: dict[str, Any] = {"error": error.code, "error_description": error.message}
        if error.status_code == 401:
            headers["WWW-Authenticate"] = "Basic"
        return JSONResponse(body, error.status_code, headers=headers or None)
    if isinstance(error, InvalidInput):
        fields: dict[str, list[dict[str, str]]] = {}
        for item in error.errors:
            fields.setdefault(item.field, []).append({"code": item.code, "message": item.message})
        first = error.errors[0]
        body = {
            "detail": first.message if len(error.errors) == 1 else error.message,
            "errors": [{"field": f, "messages": m} for f, m in fields.items()],
        }
    else:
        body = error_body(error.message, error.code)
        if isinstance(error, CursorTooOld):
            body["event_id"] = error.event_id
    if error.status_code == 401:
        headers["WWW-Authenticate"] = (
            'Bearer realm="api"'
            if isinstance(error, NotAuthenticated)
            else 'Bearer realm="api", error="invalid_token"'
        )
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(body, error.status_code, headers=headers or None)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DovecoteError)
    if isinstance(exc, RateLimited) and request.url.path.startswith("/oauth/"):
        response = render(OAuthError("slow_down", exc.message, 429))  # RFC 6749's shape there
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return render(exc)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())[1:]]
        if ABSENT_BRANCH in location:
            continue
        errors.append((location[0] if location else "non_field_errors", error))
    mapped = [
        FieldError(
            field, "required" if e.get("type") == "missing" else "invalid", str(e.get("msg"))
        )
        for field, e in errors
    ]
    return render(
        InvalidInput(mapped or [FieldError("non_field_errors", "invalid", "Invalid input.")])
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "Error."
    code = _HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = "Not found."
    if exc.status_code == 405:
        detail = "Method not allowed."
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse(error_body(detail, code), exc.status_code, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return render(
        ServiceUnavailable(
            "The database is unavailable. Try again shortly.", code="database_unavailable"
        )
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error that did not pass through the engine's classification (core.db): the
    same rule, by type and code. What is not an outage is a bug in the statement."""
    if is_unavailable(exc):
        return await _database_down(request, exc)
    return await _bug(request, exc)


async def _bug(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return JSONResponse(error_body("Internal server error.", "internal_error"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DovecoteError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    # Only the database layer's own types mean "unavailable": a TimeoutError or
    # ConnectionError from anywhere else is a bug like any other (500, logged).
    app.add_exception_handler(DatabaseUnavailable, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)  # no connection free in time
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _bug)


__all__ = ["error_body", "field_errors", "install", "render"]
