"""The ``/_sandbox/`` control plane: shape the world, move time, inject faults, read the request log.

It has no auth (see ``docs/sandbox.md``, "Security"), so it never touches the host: scenarios come as
bundled names or as objects, never as file paths.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_debitura.sandbox import scenarios as sc
from airflow_provider_debitura.sandbox.api import is_json_type, json_response
from airflow_provider_debitura.sandbox.clock import ClockError, parse_clock_patch
from airflow_provider_debitura.sandbox.faults import FaultError
from airflow_provider_debitura.sandbox.state import ControlError, SandboxState

CONTROL_PREFIX = "/_sandbox"
Endpoint = Callable[[Request], Awaitable[Response]]

CONTROL_OPERATIONS = [
    "GET /_sandbox/health",
    "POST /_sandbox/reset",
    "POST /_sandbox/scenario",
    "POST /_sandbox/tasks",
    "POST /_sandbox/tasks/{id}/solve",
    "POST /_sandbox/cases/{id}/partner-message",
    "POST /_sandbox/cases/{id}/delete",
    "POST /_sandbox/cases/{id}/merge",
    "GET|POST /_sandbox/events",
    "GET|PUT /_sandbox/config",
    "GET|PUT|DELETE /_sandbox/faults",
    "GET|DELETE /_sandbox/requests",
    "GET /_sandbox/counters",
    "GET /_sandbox/state",
    "GET|PUT /_sandbox/clock",
    "POST /_sandbox/clock/advance",
    "GET|DELETE /_sandbox/rate-limits",
]


def is_control(path: str) -> bool:
    """Whether a request path belongs to the control plane.

    :param path: the request path.
    """
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def control_error(status: int, message: str, **extra: Any) -> JSONResponse:
    """A control-plane error body ``{"error", "message", ...}``.

    :param status: the status code.
    :param message: what went wrong and how to fix it.
    :param extra: more fields (e.g. ``operations``).
    """
    label = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict"}.get(status, "error")
    return json_response({"error": label, "message": message, **extra}, status)


async def _body(request: Request) -> Any:
    """Parsed JSON body, or ``None`` when empty; raises ``ControlError`` (400/415)."""
    raw = await request.body()
    if not raw.strip():
        return None
    if not is_json_type(request.headers.get("content-type")):
        raise ControlError("control-plane bodies must be application/json", status=415)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ControlError(f"malformed JSON body: {exc}") from exc


async def _object(request: Request, what: str) -> dict[str, Any]:
    body = await _body(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError(f"{what} body must be a JSON object")
    return body


def _seconds(value: Any, name: str, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ControlError(f"{name} must be a number >= 0" + (" or null" if optional else ""))
    return float(value)


def _scenario_source(value: Any, what: str) -> str | dict[str, Any]:
    """A bundled name or a scenario object: never a path (the control plane reads no host files)."""
    if isinstance(value, (str, dict)):
        return value
    raise ControlError(f"{what} must be a bundled scenario name ({sc.bundled_names()}) or a scenario object")


def _control(fn: Endpoint) -> Endpoint:
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ControlError as exc:
            return control_error(exc.status, str(exc))
        except (sc.ScenarioError, FaultError, ClockError) as exc:
            return control_error(400, str(exc))

    wrapper.__name__ = fn.__name__
    return wrapper


def _world_routes(state: SandboxState) -> list[Route]:
    @_control
    async def reset(request: Request) -> Response:
        body = await _object(request, "reset")
        state.reset(_scenario_source(body.get("scenario", "empty"), "scenario"), allow_files=False)
        return json_response({"status": "reset", "scenario": state.scenario_name})

    @_control
    async def scenario(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict):
            raise ControlError('body must be a scenario object or {"name": "<bundled name>"}')
        if set(body) == {"name"} and not isinstance(body["name"], str):
            raise ControlError(f"name must be a bundled scenario name ({sc.bundled_names()})")
        source = body["name"] if set(body) == {"name"} else body
        state.load_scenario(source, allow_files=False)
        return json_response({"status": "loaded", "scenario": state.scenario_name})

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/reset", reset, methods=["POST"]),
        Route(f"{p}/scenario", scenario, methods=["POST"]),
    ]


def _time_routes(state: SandboxState) -> list[Route]:
    @_control
    async def advance(request: Request) -> Response:
        seconds = (await _object(request, "clock/advance")).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ControlError(f'seconds must be a number >= 0, e.g. {{"seconds": 3600}}; got {seconds!r}')
        state.advance_clock(float(seconds))
        return json_response(state.clock_view())

    @_control
    async def clock(request: Request) -> Response:
        if request.method == "GET":
            return json_response(state.clock_view())
        speed, wall_time = parse_clock_patch(await _body(request))
        return json_response(state.set_clock(speed, wall_time))

    @_control
    async def rate_limits(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_rate()
        return json_response(state.rate_report())

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/clock", clock, methods=["GET", "PUT"]),
        Route(f"{p}/clock/advance", advance, methods=["POST"]),
        Route(f"{p}/rate-limits", rate_limits, methods=["GET", "DELETE"]),
    ]


def _task_routes(state: SandboxState) -> list[Route]:
    @_control
    async def add_task(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict):
            raise ControlError("body must be a task object")
        return json_response(state.add_task(body), 201)

    @_control
    async def solve_task(request: Request) -> Response:
        after = _seconds((await _object(request, "solve")).get("afterSeconds"), "afterSeconds")
        return json_response(state.solve_task(request.path_params["id"], after))

    @_control
    async def partner_message(request: Request) -> Response:
        body = await _object(request, "partner-message")
        return json_response(
            state.partner_message(request.path_params["id"], body.get("message"), body.get("task")), 201
        )

    def remove(how: str) -> Endpoint:
        @_control
        async def endpoint(request: Request) -> Response:
            body = await _object(request, how)
            unknown = sorted(set(body) - {"keepListingSeconds"})
            if unknown:
                raise ControlError(f"unknown field(s) {unknown}; allowed: ['keepListingSeconds']")
            keep = _seconds(body.get("keepListingSeconds"), "keepListingSeconds")
            return json_response(state.remove_case(request.path_params["id"], how, keep))

        return endpoint

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/tasks", add_task, methods=["POST"]),
        Route(f"{p}/tasks/{{id}}/solve", solve_task, methods=["POST"]),
        Route(f"{p}/cases/{{id}}/partner-message", partner_message, methods=["POST"]),
        Route(f"{p}/cases/{{id}}/delete", remove("deleted"), methods=["POST"]),
        Route(f"{p}/cases/{{id}}/merge", remove("merged"), methods=["POST"]),
    ]


def _settings_routes(state: SandboxState) -> list[Route]:
    @_control
    async def events(request: Request) -> Response:
        if request.method == "GET":
            return json_response(state.events())
        return json_response(state.add_event(await _body(request)), 201)

    @_control
    async def config(request: Request) -> Response:
        if request.method == "GET":
            return json_response(state.config())
        return json_response(state.update_config(await _body(request)))

    @_control
    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            return json_response(state.set_faults(await _body(request)))
        if request.method == "DELETE":
            state.clear_faults()
        return json_response(state.faults_view())

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/events", events, methods=["GET", "POST"]),
        Route(f"{p}/config", config, methods=["GET", "PUT"]),
        Route(f"{p}/faults", faults, methods=["GET", "PUT", "DELETE"]),
    ]


def _read_routes(state: SandboxState) -> list[Route]:
    @_control
    async def index(request: Request) -> Response:
        return json_response({"operations": CONTROL_OPERATIONS, "docs": "docs/sandbox.md"})

    @_control
    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "scenario": state.scenario_name})

    @_control
    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_requests()
        return json_response(state.requests())

    @_control
    async def counters(request: Request) -> Response:
        return json_response(state.counters())

    @_control
    async def dump(request: Request) -> Response:
        return json_response(state.dump())

    p = CONTROL_PREFIX
    return [
        Route(p, index, methods=["GET"]),
        Route(f"{p}/", index, methods=["GET"]),
        Route(f"{p}/health", health, methods=["GET"]),
        Route(f"{p}/requests", requests_log, methods=["GET", "DELETE"]),
        Route(f"{p}/counters", counters, methods=["GET"]),
        Route(f"{p}/state", dump, methods=["GET"]),
    ]


def control_routes(state: SandboxState) -> list[Route]:
    """Every ``/_sandbox/`` route, bound to ``state``.

    :param state: the store.
    """
    routes = _read_routes(state) + _world_routes(state) + _time_routes(state)
    return routes + _task_routes(state) + _settings_routes(state)
