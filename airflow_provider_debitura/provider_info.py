"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Kept free of Airflow imports: Airflow reads it at discovery time, and the connection form below is
loaded from here without importing the hook (Airflow 3.2+); the hook's legacy form methods reuse it.
"""

from __future__ import annotations

from typing import Any

PACKAGE = "airflow_provider_debitura"

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {
        "host": "https://customer-api.debitura.com",
        "password": "Creditor API key (Creditor Portal → API keys)",
        "extra": '{"user_email": "ops@example.com"}',
    },
}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "user_email": {
        "label": "Chat sender email",
        "description": "Default sender of chat replies: an active member of the API key's team (GET /users).",
        "schema": {"type": ["string", "null"], "format": "email"},
    },
    "auth_type": {
        "label": "Auth type",
        "description": "api_key sends the XApiKey header; bearer sends Authorization: Bearer (referral partners).",
        "schema": {"type": ["string", "null"], "enum": ["api_key", "bearer", None], "default": "api_key"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per-request timeout. Default 30.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
}


def provider_info() -> dict[str, Any]:
    from airflow_provider_debitura import __version__

    return {
        "package-name": "airflow-provider-debitura",
        "name": "Debitura",
        "description": "Debitura task queue: hook, case-gate sensor, task operators and a local sandbox.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Debitura",
                "external-doc-url": "https://docs.debitura.com",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Debitura", "python-modules": [f"{PACKAGE}.hooks.debitura"]}],
        "sensors": [{"integration-name": "Debitura", "python-modules": [f"{PACKAGE}.sensors.debitura"]}],
        "operators": [{"integration-name": "Debitura", "python-modules": [f"{PACKAGE}.operators.debitura"]}],
        "triggers": [
            {
                "integration-name": "Debitura",
                "python-modules": [f"{PACKAGE}.triggers.debitura", f"{PACKAGE}.triggers.new_tasks"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "debitura",
                "hook-class-name": f"{PACKAGE}.hooks.debitura.DebituraHook",
                "hook-name": "Debitura",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
        "extra-links": [f"{PACKAGE}.links.DebituraResolveLink"],
    }
