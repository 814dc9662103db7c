"""A case (``InvoiceDto``)."""

from __future__ import annotations

from airflow_provider_debitura.models.base import ApiModel, UtcDateTime


class Case(ApiModel):
    """The fields of ``InvoiceDto`` that DAGs use; everything else the API sends is kept too."""

    id: str
    reference: str | None = None
    creditor_reference: str | None = None
    lifecycle: str | None = None
    close_code: str | None = None
    current_engagement_phase: str | None = None
    currency: str | None = None
    gross_amount: float | None = None
    remainder: float | None = None
    is_test_case: bool | None = None
    date_created: UtcDateTime | None = None
    date_updated: UtcDateTime | None = None
    due_date: UtcDateTime | None = None
    solution_url: str | None = None
