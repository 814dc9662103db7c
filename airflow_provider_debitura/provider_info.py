"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Kept free of Airflow imports: Airflow reads it at discovery time, and the connection form below is
loaded from here without importing the hook (Airflow 3.2+); the hook's legacy form methods reuse it.
"""

from __future__ import annotations

from typing import Any

PACKAGE = "airflow_provider_debitura"

# The connection's defaults: the form shows them and hooks/settings.py applies them (this module imports
# nothing heavy, so Airflow can read the form without importing the hook).
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_DEADLINE = 120.0
# The request budget (hooks/budget.py, docs/request-budget.md): half of each of the API's windows per key.
API_PER_MINUTE, API_PER_HOUR, API_PER_DAY = 2_000, 20_000, 100_000
DEFAULT_BUDGET_PER_MINUTE = API_PER_MINUTE // 2
DEFAULT_BUDGET_PER_HOUR = API_PER_HOUR // 2
DEFAULT_BUDGET_PER_DAY = API_PER_DAY // 2
DEFAULT_BUDGET_PROCESSES = 1
DEFAULT_BUDGET_MAX_WAIT = 300.0

# Every field has a concrete default where the hook has one: Airflow 3's form writes each field into the
# extra, and an empty one as null (which the hook reads as "not set").
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "user_email": {
        "label": "Chat sender email",
        "description": "Default sender of chat replies: an active member of the API key's team (GET /users).",
        "schema": {"type": ["string", "null"], "format": "email"},
    },
    "auth_type": {
        "label": "Auth type",
        "description": "api_key sends the XApiKey header; bearer sends Authorization: Bearer (referral partners).",
        "schema": {"type": ["string", "null"], "enum": ["api_key", "bearer"], "default": "api_key"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": f"Per-request timeout. Default {DEFAULT_TIMEOUT:g}.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT},
    },
    "max_attempts": {
        "label": "Attempts per read",
        "description": f"Tries of a read on timeouts, 429 and 5xx (1 = no retries). Default {DEFAULT_MAX_ATTEMPTS}.",
        "schema": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_MAX_ATTEMPTS},
    },
    "retry_deadline": {
        "label": "Retry budget (seconds)",
        "description": f"Time a read may spend retrying, waits included. Default {DEFAULT_RETRY_DEADLINE:g}.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": DEFAULT_RETRY_DEADLINE},
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "description": "Send the API key over http:// to a host that is not loopback (never for the real API).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    **{
        f"budget_per_{window}": {
            "label": f"Request budget per {window}",
            "description": f"Requests this deployment may send per {window} on the key (the API allows {limit:,} per "
            f"key, shared with your other systems). Default {default:,}. See docs/request-budget.md.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": limit, "default": default},
        }
        for window, limit, default in (
            ("minute", API_PER_MINUTE, DEFAULT_BUDGET_PER_MINUTE),
            ("hour", API_PER_HOUR, DEFAULT_BUDGET_PER_HOUR),
            ("day", API_PER_DAY, DEFAULT_BUDGET_PER_DAY),
        )
    },
    "budget_processes": {
        "label": "Processes sharing the budget",
        "description": "Triggerers and concurrent worker tasks that use this connection at once; each process gets "
        f"the budget divided by this. Default {DEFAULT_BUDGET_PROCESSES}.",
        "schema": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_BUDGET_PROCESSES},
    },
    "budget_max_wait": {
        "label": "Longest wait for the budget (seconds)",
        "description": "A request waits at most this long for the budget; a run that would wait longer fails "
        f"before its first request. Default {DEFAULT_BUDGET_MAX_WAIT:g}.",
        "schema": {"type": ["number", "null"], "minimum": 0, "default": DEFAULT_BUDGET_MAX_WAIT},
    },
}


UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # Port stays visible: Airflow 3.3's Test button sends `port: 0` for a connection without one, and the API
    # answers 400 ("host or port differs from the stored connection"); a stored port makes Test work, and the
    # edit form keeps it only while the field is shown. docs/ui.md has the details.
    "hidden-fields": ["schema", "login"],
    "relabeling": {"host": "Base URL", "password": "API key", "port": "Port"},
    "placeholders": {
        "host": "https://customer-api.debitura.com",
        "port": "443 (needed by the Test button on Airflow 3.3)",
        "password": "Creditor API key (Creditor Portal → API keys)",
        "extra": '{"user_email": "ops@example.com"}',
        # Airflow 2 shows the extras as text fields: say what to type and what an empty one means.
        "user_email": "ops@example.com",
        "auth_type": "api_key (default) or bearer",
        "timeout": f"{DEFAULT_TIMEOUT:g} (default)",
        "max_attempts": f"{DEFAULT_MAX_ATTEMPTS} (default)",
        "retry_deadline": f"{DEFAULT_RETRY_DEADLINE:g} (default)",
        "allow_insecure_http": "false (default) or true",
        "budget_per_minute": f"{DEFAULT_BUDGET_PER_MINUTE} (default; the API allows {API_PER_MINUTE})",
        "budget_per_hour": f"{DEFAULT_BUDGET_PER_HOUR} (default; the API allows {API_PER_HOUR})",
        "budget_per_day": f"{DEFAULT_BUDGET_PER_DAY} (default; the API allows {API_PER_DAY})",
        "budget_processes": f"{DEFAULT_BUDGET_PROCESSES} (default): triggerers + concurrent worker tasks",
        "budget_max_wait": f"{DEFAULT_BUDGET_MAX_WAIT:g} (default)",
    },
}


def provider_info() -> dict[str, Any]:
    from airflow_provider_debitura import __version__

    return {
        "package-name": "airflow-provider-debitura",
        "name": "Debitura",
        "description": "Debitura task queue: hook, case gate, task operators, humans in the loop, local sandbox.",
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
        "operators": [
            {
                "integration-name": "Debitura",
                "python-modules": [
                    f"{PACKAGE}.operators.list_tasks",
                    f"{PACKAGE}.operators.reply_to_chat",
                    f"{PACKAGE}.operators.human_handoff",
                    f"{PACKAGE}.operators.reply_approval",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Debitura",
                "python-modules": [
                    f"{PACKAGE}.triggers.case_gate",
                    f"{PACKAGE}.triggers.new_tasks",
                    f"{PACKAGE}.triggers.human_handoff",
                ],
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
