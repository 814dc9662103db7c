"""Local Debitura Customer API sandbox (like moto for AWS): a real HTTP server on loopback.

Needs the ``sandbox`` extra. Importing this package starts nothing.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "The Debitura sandbox needs starlette and uvicorn: pip install 'airflow-provider-debitura[sandbox]'"
    ) from exc

from airflow_provider_debitura.sandbox.scenarios import ScenarioError
from airflow_provider_debitura.sandbox.server import SandboxServer
from airflow_provider_debitura.sandbox.state import SandboxState

__all__ = ["SandboxServer", "SandboxState", "ScenarioError"]
