"""The account behind the API key (``GET /me``) and its team (``GET /users``)."""

from __future__ import annotations

from airflow_provider_debitura.models.base import ApiModel


class Creditor(ApiModel):
    """``GET /me``: the account the API key belongs to."""

    id: str | None = None
    company_name: str | None = None
    company_registration_number: str | None = None
    country: str | None = None
    office_email: str | None = None


class User(ApiModel):
    """``CollectionPartnerUserDto`` of ``GET /users``: a member of the API key's team."""

    id: str | None = None
    name: str | None = None
    email: str | None = None
