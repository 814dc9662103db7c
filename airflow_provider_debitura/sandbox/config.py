"""The sandbox's runtime settings (``GET/PUT /_sandbox/config``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from airflow_provider_debitura.sandbox.ratelimit import DayReset
from airflow_provider_debitura.sandbox.scenario_models import Seconds, Spec, parse

ENCODED_SLASH_MODES = ("decode", "keep")

DEFAULT_CONFIG: dict[str, Any] = {
    "chatSolveDelaySeconds": 0.0,
    "rateLimitPerMinute": None,
    "rateLimitPerHour": None,
    "rateLimitPerDay": None,
    "rateLimitDayReset": "midnight-utc",
    "retryAfterHeader": False,
    "encodedSlash": "decode",
}


class ConfigPatch(Spec):
    """A partial update of the settings; every field is optional."""

    chatSolveDelaySeconds: Seconds = Field(
        default=0.0, description="Delay before a creditor chat message solves tasks."
    )
    rateLimitPerMinute: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Requests per sliding minute per API key; null: off (the API: 2,000)."
    )
    rateLimitPerHour: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Requests per clock hour per API key; null: off (the API: 20,000)."
    )
    rateLimitPerDay: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Requests per day per API key; null: off (the API: 100,000)."
    )
    rateLimitDayReset: DayReset = Field(
        default="midnight-utc",
        description="When the day window resets: midnight-utc, rolling (24 h after the window's first request) "
        "or sliding (any 24 h).",
    )
    retryAfterHeader: bool = Field(default=False, description="Send Retry-After with 429s (the body always has it).")
    encodedSlash: Literal["decode", "keep"] = Field(
        default="decode",
        description="How a %2F in a reference lookup's path segment is read: decode (a '/' in the reference, "
        "found) or keep (left as the three characters '%2F', as ASP.NET Core does by default: not found).",
    )


def check_config_patch(patch: Any) -> dict[str, Any]:
    """The validated keys of a ``PUT /_sandbox/config`` body.

    :param patch: the JSON body.
    """
    model = parse(ConfigPatch, patch, "config")
    return {k: getattr(model, k) for k in model.model_fields_set}
