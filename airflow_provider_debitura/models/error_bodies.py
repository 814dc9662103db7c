"""What the server says when a request fails: the error bodies the API sends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import BeforeValidator

from airflow_provider_debitura.models.base import ApiModel, _none_to_empty_list


class BusinessError(ApiModel):
    """``BusinessErrorApiDTO``: one structured error of an error body."""

    type: str | None = None
    message: str | None = None
    solution_url: str | None = None


class ApiError(ApiModel):
    """An error body: ``ApiErrorResponseDto``, the 429 body, or RFC 7807 ``ProblemDetails``."""

    error: str | None = None
    message: str | None = None
    business_errors: Annotated[list[BusinessError], BeforeValidator(_none_to_empty_list)] = []
    retry_after: float | None = None
    title: str | None = None
    detail: str | None = None

    def summary(self) -> str:
        """One short line with what the server said: its messages, then the error labels in brackets.

        The API dual-writes (``error``/``message`` and the same again in ``businessErrors``), so
        repeats are dropped.
        """
        messages = _distinct([self.message, self.detail, *(be.message for be in self.business_errors)])
        labels = _distinct([self.error, self.title, *(be.type for be in self.business_errors)])
        labels = [label for label in labels if not any(label in m for m in messages)]
        if not messages:
            return "; ".join(labels)
        text = "; ".join(m.rstrip(".") for m in messages)
        return f"{text} ({', '.join(labels)})" if labels else text


def _distinct(parts: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
