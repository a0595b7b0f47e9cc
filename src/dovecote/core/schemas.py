"""Wire shapes shared by every domain: errors and pagination."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ErrorItem(BaseModel):
    code: str = Field(description="Stable snake_case identifier.")
    message: str


class FieldErrorItem(BaseModel):
    field: str
    messages: list[ErrorItem]


class ErrorOut(BaseModel):
    detail: str
    errors: list[ErrorItem | FieldErrorItem]


class Page(BaseModel, Generic[T]):
    count: int
    next: str | None
    previous: str | None
    results: list[T]
