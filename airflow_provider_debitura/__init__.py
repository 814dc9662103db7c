"""Apache Airflow provider for Debitura's task queue."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    # Imported lazily: Airflow's ProvidersManager calls this at discovery time and nothing
    # here should pull in httpx, pydantic or Airflow itself.
    from airflow_provider_debitura.provider_info import provider_info

    return provider_info()
