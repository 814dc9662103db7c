"""The sandbox's ASGI app: the Customer API (:mod:`.api`), the ``/_sandbox/`` control plane
(:mod:`.control`) and the middleware around both (:mod:`.middleware`)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from airflow_provider_debitura.sandbox.api import api_routes
from airflow_provider_debitura.sandbox.control import (
    CONTROL_OPERATIONS,
    CONTROL_PREFIX,
    control_error,
    control_routes,
    is_control,
)
from airflow_provider_debitura.sandbox.middleware import MAX_BODY_BYTES, SandboxMiddleware, drop_connection
from airflow_provider_debitura.sandbox.state import SandboxState

__all__ = ["CONTROL_OPERATIONS", "CONTROL_PREFIX", "MAX_BODY_BYTES", "create_app", "drop_connection"]


def _api_routes(state: SandboxState) -> list[Route]:
    """The Customer API routes (kept under the old name for callers)."""
    return api_routes(state)


async def _not_found(request: Request, exc: Exception) -> Response:
    if is_control(request.url.path):
        message = f"unknown control operation {request.method} {request.url.path}"
        return control_error(404, message, operations=CONTROL_OPERATIONS)
    return Response(status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    if is_control(request.url.path):
        message = f"{request.method} not allowed on {request.url.path}"
        return control_error(405, message, operations=CONTROL_OPERATIONS)
    return Response(status_code=405, headers=getattr(exc, "headers", None))


def create_app(state: SandboxState) -> ASGIApp:
    """The full sandbox ASGI app bound to ``state`` (serve it with uvicorn, h11 protocol).

    :param state: the store.
    """
    routes = api_routes(state)
    app = Starlette(
        routes=routes + control_routes(state),
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    return SandboxMiddleware(app, state, routes)
