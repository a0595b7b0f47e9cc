"""Wire shapes shared by every domain: errors and pagination."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

T = TypeVar("T")

MAX_ID = 2**53 - 1  # the largest integer a JavaScript client holds exactly


def parse_id(value: Any) -> int:
    """A database id from JSON (an integer) or a form (a string of digits); never a bool."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():  # JSON Schema counts 5.0 as an integer
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("invalid", "Expected an id (a positive integer).")
    number: int = value
    if not 1 <= number <= MAX_ID:
        raise PydanticCustomError("invalid", "Ids are positive integers.")
    return number


ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
IdValue = Annotated[int, BeforeValidator(parse_id), WithJsonSchema(ID_SCHEMA)]


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
