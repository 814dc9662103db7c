"""The base of every API model (camelCase on the wire, unknown fields kept) and the shared field types."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

_ZERO = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if value.utcoffset() == _ZERO:  # the common case ("...Z"): runs once per timestamp on every page
        return value
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00: valid text, no UTC instant Python can hold
        raise ValueError("timestamp is outside the range Python can hold in UTC") from None


def _none_to_empty_list(value: object) -> object:
    return [] if value is None else value


def _none_to_empty_dict(value: object) -> object:
    return {} if value is None else value


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp that is always timezone-aware UTC, whatever zone (or none) the API sent."""


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=True,
        # Build validators on first use (in a worker), not when a DAG file imports the provider.
        defer_build=True,
    )

    def to_api_dict(self) -> dict[str, Any]:
        """The API's own JSON shape (camelCase, ISO timestamps): what goes into XCom."""
        return self.model_dump(mode="json", by_alias=True)
