"""Preferences, features and the web page's configuration. Public: SelfCommunity's clients
read them before anyone signs in, so any Authorization header is ignored here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Request, Response

from dovecote.community import service
from dovecote.community.schemas import FeatureOut, PreferenceOut, WebConfigOut
from dovecote.core.deps import AppSettings, ObjectId
from dovecote.core.openapi import errors
from dovecote.core.pagination import (
    MAX_LIMIT,
    Absent,
    NonNegativeInt,
    PageParams,
    offset_page,
    query_int,
    query_value,
)
from dovecote.core.routing import Router
from dovecote.core.schemas import Page
from dovecote.core.web_client import (
    CONNECTION_HEADER,
    FIRST_PARTY_CLIENT_ID,
    SEND_RESPONSE_HEADER,
)

router = Router(tags=["community"])

SearchTerm = Annotated[str | None, Query(max_length=200, description="Words to look for.")]
Limit = Annotated[
    NonNegativeInt | Absent | None,
    Query(description=f"Page size; absent: everything in one page; at most {MAX_LIMIT}."),
]
Ordering = Annotated[
    Literal["id", "-id", "section", "-section", "name", "-name"] | Absent | None,
    Query(description="id, section or name; -name: descending."),
]
Offset = Annotated[NonNegativeInt | Absent | None, Query(description="Items to skip.")]


def _window(request: Request, total: int) -> PageParams:
    """Limit and offset; without a limit, everything from the offset (react-core reads only the
    first page of preferences and features)."""
    size = query_int(request, "limit", minimum=0)
    skip = min(query_int(request, "offset", minimum=0) or 0, total)
    if not size:
        return PageParams(limit=max(total - skip, 1), offset=skip)
    return PageParams(limit=min(size, MAX_LIMIT), offset=skip)


def _preference_out(item: service.Numbered) -> PreferenceOut:
    p = item.preference
    return PreferenceOut(
        id=item.id, section=p.section, name=p.name, value=p.value, type=p.type, help=p.help
    )


async def _preferences_page(request: Request, settings: AppSettings) -> Page[PreferenceOut]:
    query = service.PreferenceQuery(
        search=query_value(request, "search"),
        section=query_value(request, "section"),
        keys=query_value(request, "keys"),
        ordering=query_value(request, "ordering"),
    )
    items = service.select_preferences(settings, query)
    window = _window(request, len(items))
    chosen = items[window.offset : window.offset + window.limit]
    return offset_page(request, window, len(items), [_preference_out(i) for i in chosen])


# One handler for both: the list reads the same filters as the search (the clients call either).
@router.get(
    "/api/v2/dynamic_preference/search/",
    response_model=Page[PreferenceOut],
    responses=errors(400),
    summary="Search the community's preferences (no authentication)",
)
@router.get(
    "/api/v2/dynamic_preference/",
    response_model=Page[PreferenceOut],
    responses=errors(400),
    summary="The community's preferences (no authentication)",
)
async def preferences(
    request: Request,
    settings: AppSettings,
    limit: Limit = None,
    offset: Offset = None,
    search: SearchTerm = None,
    section: Annotated[str | None, Query(max_length=100)] = None,
    keys: Annotated[
        str | None, Query(max_length=2000, description="section.name,section.name,...")
    ] = None,
    ordering: Ordering = None,
) -> Page[PreferenceOut]:
    del limit, offset, search, section, keys, ordering  # read with the `undefined` rule
    return await _preferences_page(request, settings)


@router.get(
    "/api/v2/dynamic_preference/{id:int}/",
    response_model=PreferenceOut,
    responses=errors(400, 404),
    summary="One preference (no authentication)",
)
async def one_preference(id: ObjectId, settings: AppSettings) -> PreferenceOut:
    return _preference_out(service.preference(settings, id))


@router.get(
    "/api/v2/feature/",
    response_model=Page[FeatureOut],
    responses=errors(400),
    summary="SelfCommunity's features and whether this server serves them (no authentication)",
)
async def features(
    request: Request,
    limit: Limit = None,
    offset: Offset = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    search: SearchTerm = None,
) -> Page[FeatureOut]:
    del limit, offset, name, search  # read with the `undefined` rule
    items = service.select_features(query_value(request, "name"), query_value(request, "search"))
    window = _window(request, len(items))
    chosen = items[window.offset : window.offset + window.limit]
    results = [FeatureOut(id=i.id, name=i.feature.name, enabled=i.feature.enabled) for i in chosen]
    return offset_page(request, window, len(items), results)


@router.get(
    "/web-config.json",
    response_model=WebConfigOut,
    summary="What the web page needs before sign-in (no authentication)",
)
async def web_config(response: Response) -> WebConfigOut:
    response.headers["Cache-Control"] = "no-store"
    return WebConfigOut(
        oauth_client_id=FIRST_PARTY_CLIENT_ID,
        connection_header=CONNECTION_HEADER,
        send_response_header=SEND_RESPONSE_HEADER,
    )
