"""Airflow finds the provider through its entry point and shows its connection type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_debitura
from airflow_provider_debitura import get_provider_info


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


def airflow_cli(tmp_path, *args: str) -> str:
    airflow = Path(sys.executable).parent / "airflow"
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "PATH": str(Path(sys.executable).parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    proc = subprocess.run([str(airflow), *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.e2e
def test_airflow_cli_shows_provider_hook_and_connection_form(tmp_path):
    """Through the entry point, in a real Airflow: 3.2+ reads the declarative form, 2.x the hook methods."""
    listing = airflow_cli(tmp_path, "providers", "list")
    assert "airflow-provider-debitura" in listing and airflow_provider_debitura.__version__ in listing
    hooks = airflow_cli(tmp_path, "providers", "hooks")
    line = next(line for line in hooks.splitlines() if line.startswith("debitura"))
    assert "airflow_provider_debitura.hooks.debitura.DebituraHook" in line and "Debitura" in line
    widgets = airflow_cli(tmp_path, "providers", "widgets")
    for field in ("user_email", "auth_type", "timeout"):
        assert f"extra__debitura__{field}" in widgets
    behaviours = airflow_cli(tmp_path, "providers", "behaviours")
    assert any(line.startswith("debitura") for line in behaviours.splitlines())
