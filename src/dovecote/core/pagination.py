"""Limit/offset pagination with absolute `next`/`previous` links (SPEC §3.9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from pydantic import Field

from dovecote.core.errors import InvalidInput
from dovecote.core.schemas import MAX_ID, Page
from dovecote.core.state import app_state

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 2**31 - 1
MAX_QUERY_INT = MAX_ID

# The JS client sends missing values as the literal string "undefined"; they count as absent.
Absent = Literal["undefined", ""]
# How pydantic names the Absent alternative of a union in an error's location: a value that is
# neither a number nor absent fails both, and only the number's error is worth showing.
ABSENT_BRANCH = "literal['undefined','']"
NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_QUERY_INT)]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_QUERY_INT)]
OptionalCount = Annotated[NonNegativeInt | Absent | None, Query()]
OptionalId = Annotated[PositiveInt | Absent | None, Query()]


def query_value(request: Request, name: str) -> str | None:
    """A query parameter, with the JS client's literal `undefined` (and blanks) read as absent."""
    value = request.query_params.get(name)
    if value is None or value.strip() in ("", "undefined"):
        return None
    if "\x00" in value:  # no database compares text holding NUL
        raise InvalidInput.field(name, "invalid", f"`{name}` may not hold NUL characters.")
    return value.strip()


def query_int(
    request: Request, name: str, *, minimum: int = 0, maximum: int = MAX_QUERY_INT
) -> int | None:
    value = query_value(request, name)
    if value is None:
        return None
    if not (value.isascii() and value.lstrip("-").isdigit()) or len(value) > 20:
        raise InvalidInput.field(name, "invalid", f"`{name}` must be an integer.")
    number = int(value)
    if number < minimum:
        raise InvalidInput.field(name, "min_value", f"`{name}` must be at least {minimum}.")
    if number > maximum:
        raise InvalidInput.field(name, "max_value", f"`{name}` must be at most {maximum}.")
    return number


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


async def page_params(
    request: Request,
    limit: Annotated[
        NonNegativeInt | Absent | None,
        Query(description=f"Page size, default {DEFAULT_LIMIT}, at most {MAX_LIMIT} (clamped)."),
    ] = None,
    offset: Annotated[NonNegativeInt | Absent | None, Query(description="Items to skip.")] = None,
) -> PageParams:
    del limit, offset  # declared for the OpenAPI document; read with the `undefined` rule
    size = query_int(request, "limit", minimum=0)
    skip = query_int(request, "offset", minimum=0) or 0
    return PageParams(
        limit=min(size, MAX_LIMIT) if size else DEFAULT_LIMIT, offset=min(skip, MAX_OFFSET)
    )


Paging = Annotated[PageParams, Depends(page_params)]


def absolute_url(request: Request, **params: Any) -> str:
    """The request's URL with `params` replaced (None removes), on the public base URL."""
    base = app_state(request).settings.public_url or str(request.base_url).rstrip("/")
    query = {k: v for k, v in request.query_params.items() if k not in params}
    query.update({k: str(v) for k, v in params.items() if v is not None})
    encoded = urlencode(query)
    return f"{base}{request.url.path}" + (f"?{encoded}" if encoded else "")


def offset_page(request: Request, params: PageParams, count: int, results: list[T]) -> Page[T]:
    end = params.offset + len(results)
    next_url = absolute_url(request, limit=params.limit, offset=end) if end < count else None
    previous_url = None
    if params.offset > 0:
        previous = max(params.offset - params.limit, 0)
        previous_url = absolute_url(request, limit=params.limit, offset=previous or None)
    return Page(count=count, next=next_url, previous=previous_url, results=results)
