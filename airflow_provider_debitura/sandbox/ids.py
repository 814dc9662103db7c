"""Deterministic ids: every id the sandbox derives is a uuid5 in one namespace, so tests can compute them."""

from __future__ import annotations

import base64
import hashlib
import uuid

from airflow_provider_debitura.sandbox.scenario_models import is_guid

__all__ = [
    "SANDBOX_NAMESPACE",
    "case_id_for",
    "is_guid",
    "normalize_guid",
    "reference_for",
    "stable_id",
    "user_id_for",
]

#: Namespace of every deterministic id the sandbox derives (uuid5), so tests can compute them.
SANDBOX_NAMESPACE = uuid.UUID("5a7d8f3e-0b1c-4d6e-9f21-d3b17a5e0c42")


def stable_id(*parts: object) -> str:
    """Deterministic GUID for a named sandbox object (uuid5 in :data:`SANDBOX_NAMESPACE`).

    :param parts: what names the object; joined with ``:``.
    """
    return str(uuid.uuid5(SANDBOX_NAMESPACE, ":".join(str(p) for p in parts)))


def case_id_for(creditor_reference: str) -> str:
    """The id a scenario case gets when it names none.

    :param creditor_reference: the case's creditor reference.
    """
    return stable_id("case", creditor_reference)


def user_id_for(email: str) -> str:
    """The id a scenario user gets when it names none.

    :param email: the user's email (case-insensitive).
    """
    return stable_id("user", email.lower())


def reference_for(creditor_reference: str) -> str:
    """The 8-character Debitura reference a scenario case gets when it names none.

    :param creditor_reference: the case's creditor reference.
    """
    digest = hashlib.sha1(creditor_reference.encode()).digest()
    return base64.b32encode(digest).decode()[:8]


def normalize_guid(value: str) -> str:
    """A GUID in its canonical lower-case, dashed form.

    :param value: a GUID string (see :func:`is_guid`).
    """
    return str(uuid.UUID(value))
