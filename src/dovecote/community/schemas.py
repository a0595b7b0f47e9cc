"""Wire shapes of preferences and features (SelfCommunity's DynamicPreference and Feature)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PreferenceOut(BaseModel):
    id: int
    section: str
    name: str
    value: bool | int | str = Field(description="Typed: a boolean, an integer or a string.")
    type: str = Field(description="`boolean`, `string`, `color` or `image`.")
    help: str


class FeatureOut(BaseModel):
    id: int
    name: str
    enabled: bool


class WebConfigOut(BaseModel):
    """What the web page needs to know before anyone signs in."""

    oauth_client_id: str = Field(description="The first-party OAuth client of the web page.")
    connection_header: str = Field(
        description="The header naming the page's connection on API requests (docs/API.md)."
    )
    send_response_header: str = Field(
        description="The header asking POST /api/v2/pm/ for the list answer."
    )
