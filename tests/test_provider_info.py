"""Airflow finds the provider through its entry point and shows its connection type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_providers_manager_discovers_it_through_the_entry_point(tmp_path):
    airflow = Path(sys.executable).parent / "airflow"
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    listing = subprocess.run([str(airflow), "providers", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "airflow-provider-debitura" in listing.stdout, listing.stderr[-2000:]
    assert airflow_provider_debitura.__version__ in listing.stdout
    hooks = subprocess.run([str(airflow), "providers", "hooks"], env=env, capture_output=True, text=True, timeout=120)
    line = next(line for line in hooks.stdout.splitlines() if line.startswith("debitura"))
    assert "airflow_provider_debitura.hooks.debitura.DebituraHook" in line and "Debitura" in line
