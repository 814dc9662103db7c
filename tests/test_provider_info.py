"""Airflow finds the provider through its entry point and shows its connection type."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import airflow
import httpx
import pytest

import airflow_provider_debitura
from airflow_provider_debitura import get_provider_info
from airflow_provider_debitura.provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR

AIRFLOW = tuple(int(part) for part in airflow.__version__.split(".")[:2])
# `airflow providers widgets` and `behaviours` list the connection form from the declarative conn-fields on
# Airflow 3.2+, and from the hook's methods before that, which the CLI loads only with Flask-AppBuilder (there on
# 2.11; on 3.0 and 3.1 only with the FAB provider, without which those versions show no extra fields).
FORM_FIELDS_LISTED = AIRFLOW >= (3, 2) or importlib.util.find_spec("flask_appbuilder") is not None

# Every extra the README documents for the connection.
DOCUMENTED_EXTRAS = (
    "user_email",
    "auth_type",
    "timeout",
    "max_attempts",
    "retry_deadline",
    "allow_insecure_http",
    # the request budget (docs/request-budget.md)
    "budget_per_minute",
    "budget_per_hour",
    "budget_per_day",
    "budget_processes",
    "budget_max_wait",
)


def test_metadata_is_complete_and_importable():
    import importlib

    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-debitura"
    conn = info["connection-types"][0]
    assert conn["connection-type"] == "debitura"
    module, _, cls = conn["hook-class-name"].rpartition(".")
    hook_cls = getattr(importlib.import_module(module), cls)
    assert hook_cls.conn_type == "debitura"
    assert hook_cls.get_ui_field_behaviour()["relabeling"]["password"] == "API key"
    for section in ("hooks", "sensors", "operators", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for link in info["extra-links"]:
        module, _, cls = link.rpartition(".")
        assert getattr(importlib.import_module(module), cls).name == "Resolve in Debitura"


def airflow_cli(airflow_env, *args: str) -> str:
    returncode, output = airflow_env.cli(*args)
    assert returncode == 0, output[-2000:]
    return output


@pytest.mark.e2e
def test_airflow_cli_shows_provider_hook_and_connection_form(airflow_env):
    """Through the entry point, in a real Airflow: 3.2+ reads the declarative form, 2.x the hook methods."""
    listing = airflow_cli(airflow_env, "providers", "list")
    assert "airflow-provider-debitura" in listing and airflow_provider_debitura.__version__ in listing
    hooks = airflow_cli(airflow_env, "providers", "hooks")
    line = next(line for line in hooks.splitlines() if line.startswith("debitura"))
    assert "airflow_provider_debitura.hooks.debitura.DebituraHook" in line and "Debitura" in line
    widgets = airflow_cli(airflow_env, "providers", "widgets")
    if FORM_FIELDS_LISTED:
        for field in DOCUMENTED_EXTRAS:
            assert f"extra__debitura__{field}" in widgets
    else:  # Airflow 3.0/3.1 without Flask-AppBuilder: the hook's wtforms widgets cannot be built
        assert "extra__debitura__" not in widgets
    behaviours = airflow_cli(airflow_env, "providers", "behaviours")
    assert any(line.startswith("debitura") for line in behaviours.splitlines()) == FORM_FIELDS_LISTED


def test_every_documented_extra_is_a_form_field():
    assert set(CONN_FIELDS) == set(DOCUMENTED_EXTRAS)


def test_form_defaults_are_the_hooks_defaults_so_saving_writes_no_null_for_them():
    """Airflow 3's form writes every field into the extra, an empty one as null: each field the hook has a
    default for starts with that default, so a connection saved untouched holds values, not nulls."""
    from airflow_provider_debitura.hooks import settings
    from airflow_provider_debitura.hooks.budget import BudgetLimits

    defaults = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}
    budget = BudgetLimits()
    assert defaults == {
        "user_email": None,  # no sensible default: the team member replies are sent as
        "auth_type": "api_key",
        "timeout": settings.DEFAULT_TIMEOUT,
        "max_attempts": settings.DEFAULT_MAX_ATTEMPTS,
        "retry_deadline": settings.DEFAULT_RETRY_DEADLINE,
        "allow_insecure_http": False,
        "budget_per_minute": budget.per_minute,
        "budget_per_hour": budget.per_hour,
        "budget_per_day": budget.per_day,
        "budget_processes": budget.processes,
        "budget_max_wait": budget.max_wait,
    }
    assert defaults["auth_type"] == settings.AUTH_TYPES[0]
    assert CONN_FIELDS["auth_type"]["schema"]["enum"] == list(settings.AUTH_TYPES)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}, id="airflow3-defaults"
        ),
        pytest.param({name: None for name in CONN_FIELDS}, id="airflow3-all-cleared"),
        pytest.param({"timeout": "30", "max_attempts": "5", "retry_deadline": "120"}, id="airflow2-strings"),
    ],
)
def test_what_the_forms_save_reads_back_as_the_defaults(extra):
    from airflow_provider_debitura.hooks import settings
    from airflow_provider_debitura.hooks.settings import ConnectionSettings

    read = ConnectionSettings.from_connection_fields("c", host=None, password="k", extra=extra)
    assert (read.timeout, read.max_attempts, read.retry_deadline, read.auth_type) == (
        settings.DEFAULT_TIMEOUT,
        settings.DEFAULT_MAX_ATTEMPTS,
        settings.DEFAULT_RETRY_DEADLINE,
        "api_key",
    )


@pytest.mark.parametrize(("saved", "allowed"), [(False, False), (True, True), ("true", True), ("false", False)])
def test_allow_insecure_http_from_either_form(saved, allowed):
    """Airflow 3 saves a JSON boolean, Airflow 2's text field a string."""
    from airflow_provider_debitura.exceptions import DebituraConfigError
    from airflow_provider_debitura.hooks.settings import ConnectionSettings

    def read():
        extra = {"allow_insecure_http": saved}
        return ConnectionSettings.from_connection_fields("c", host="http://10.1.2.3", password="k", extra=extra)

    if allowed:
        assert read().base_url == "http://10.1.2.3"
    else:
        with pytest.raises(DebituraConfigError, match="allow_insecure_http"):
            read()


def test_port_is_shown_because_airflow_33_test_button_needs_a_stored_one():
    """Airflow 3.3's Test button sends ``port: 0`` for a connection without a port and the API answers 400;
    the edit form keeps a stored port only while the field is shown (tests/ui checks it in a browser)."""
    assert "port" not in UI_FIELD_BEHAVIOUR["hidden-fields"]
    assert "443" in UI_FIELD_BEHAVIOUR["placeholders"]["port"]


@pytest.mark.parametrize(
    ("host", "port"), [("https://customer-api.debitura.com", 443), ("http://127.0.0.1:8765", 8765)]
)
def test_a_port_matching_the_base_url_changes_nothing(host, port):
    from airflow_provider_debitura.hooks.settings import ConnectionSettings

    read = ConnectionSettings.from_connection_fields("c", host=host, password="k", extra={}, port=port)
    assert httpx.URL(read.base_url) == httpx.URL(host)


def test_connection_type_matches_airflows_provider_schema():
    """Airflow 3.2+ validates the declarative form against its provider.yaml schema."""
    import jsonschema

    schema_path = Path(airflow.__file__).parent / "provider.yaml.schema.json"
    schema = json.loads(schema_path.read_text())
    connection_type = schema["properties"]["connection-types"]["items"]
    if "conn-fields" not in connection_type["properties"]:
        pytest.skip(f"Airflow {airflow.__version__} has no declarative connection form")
    jsonschema.validate(get_provider_info()["connection-types"], schema["properties"]["connection-types"])
