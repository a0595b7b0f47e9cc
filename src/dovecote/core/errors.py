"""The one error hierarchy. Services raise these; one handler renders them (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    message: str


class DovecoteError(Exception):
    status_code = 400
    code = "bad_request"
    default_message = "Bad request."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        super().__init__(self.message)


class InvalidInput(DovecoteError):
    """Validation failure naming one or more fields."""

    code = "invalid"
    default_message = "Invalid input."

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("Invalid input.")
        self.errors = errors

    @classmethod
    def field(cls, field: str, code: str, message: str) -> InvalidInput:
        return cls([FieldError(field, code, message)])


class NotAuthenticated(DovecoteError):
    status_code = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided."


class AuthenticationFailed(DovecoteError):
    status_code = 401
    code = "authentication_failed"
    default_message = "Invalid or expired token."


class PermissionDenied(DovecoteError):
    status_code = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(DovecoteError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(DovecoteError):
    status_code = 409
    code = "conflict"
    default_message = "Conflict."


class CursorTooOld(DovecoteError):
    """A live-event cursor older than the events kept: the client must reload, then continue
    from `event_id` (rendered beside the usual fields)."""

    status_code = 410
    code = "cursor_too_old"
    default_message = "The events after this cursor are no longer kept; reload."

    def __init__(self, message: str, *, event_id: int) -> None:
        super().__init__(message)
        self.event_id = event_id


class PayloadTooLarge(DovecoteError):
    status_code = 413
    code = "too_large"
    default_message = "Request too large."


class RangeNotSatisfiable(DovecoteError):
    status_code = 416
    code = "range_not_satisfiable"
    default_message = "The requested range is outside the file."


class Unprocessable(DovecoteError):
    status_code = 422
    code = "unprocessable"
    default_message = "The request cannot be processed."


class RateLimited(DovecoteError):
    status_code = 429
    code = "throttled"
    default_message = "Request was throttled."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(
            message or f"Request was throttled. Expected available in {retry_after} seconds."
        )
        self.retry_after = retry_after


class ServiceUnavailable(DovecoteError):
    status_code = 503
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable. Try again shortly."


class OAuthError(DovecoteError):
    """An error of the OAuth endpoints, rendered as RFC 6749 says, not in the API's shape."""

    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description, code=error)
        self.status_code = status_code
