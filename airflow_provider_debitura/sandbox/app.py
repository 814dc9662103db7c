"""Starlette application: the Customer API surface, the ``/_sandbox/`` control plane, and a
pure-ASGI middleware that applies body limits, faults, rate limiting, auth and request logging.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_debitura.sandbox import scenarios as sc
from airflow_provider_debitura.sandbox.dto import ApiError, api_error_body, problem_body
from airflow_provider_debitura.sandbox.faults import FaultError, FaultRule
from airflow_provider_debitura.sandbox.models import TASK_STATUSES
from airflow_provider_debitura.sandbox.state import ControlError, SandboxState

MAX_BODY_BYTES = 1024 * 1024
#: Bodies up to this size are read and discarded before answering 413, so the client sees the
#: 413 instead of a broken pipe; bigger ones are answered straight away.
_DRAIN_LIMIT = 64 * 1024 * 1024
CONTROL_PREFIX = "/_sandbox"

Endpoint = Callable[[Request], Awaitable[Response]]


# ------------------------------------------------------------------------------------ helpers


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def _api_error(exc: ApiError) -> Response:
    return _json(exc.body(), exc.status)


def _control_error(status: int, message: str, **extra: Any) -> JSONResponse:
    label = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict"}.get(status, "error")
    return _json({"error": label, "message": message, **extra}, status)


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or (media.startswith("application/") and media.endswith("+json"))


def _query(request: Request) -> dict[str, list[str]]:
    # ASP.NET binds query names case-insensitively (Page == page), so the sandbox does too.
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key.lower(), []).append(value)
    return out


def _int_param(q: dict[str, list[str]], name: str, default: int, *, problem: bool = False) -> int:
    values = q.get(name.lower())
    if not values or values[0] == "":
        return default
    try:
        return int(values[0])
    except ValueError:
        raise ApiError(
            400,
            "Bad Request" if problem else "InvalidParameter",
            f"The value '{values[0]}' is not valid for {name}.",
            problem=problem,
        ) from None


def _task_filters(q: dict[str, list[str]]) -> tuple[str, list[str]]:
    statuses = [s for s in q.get("status", []) if s != ""]
    status = statuses[0] if statuses else "Open"
    if status not in TASK_STATUSES:
        raise ApiError(400, "InvalidStatus", f"Invalid status '{status}'. Allowed values: Open, Solved.")
    types = q.get("type", [])
    for value in types:
        if not sc.TYPE_NAME_RE.match(value):
            raise ApiError(400, "InvalidType", f"Invalid task type '{value}'.")
    return status, types


def _paging(q: dict[str, list[str]], default_size: int, *, problem: bool = False) -> tuple[int, int]:
    page = _int_param(q, "Page", 1, problem=problem)
    size = _int_param(q, "PageSize", default_size, problem=problem)
    label = "Bad Request" if problem else "InvalidPagination"
    if page < 1:
        raise ApiError(400, label, "Page must be 1 or greater.", problem=problem)
    if not 1 <= size <= 100:
        raise ApiError(400, label, "PageSize must be between 1 and 100.", problem=problem)
    return page, size


def _api(fn: Endpoint) -> Endpoint:
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return _api_error(exc)

    wrapper.__name__ = fn.__name__
    return wrapper


async def _control_body(request: Request) -> Any:
    """Parsed JSON body, or ``None`` when empty; raises ``ControlError`` (400/415)."""
    raw = await request.body()
    if not raw.strip():
        return None
    if not _is_json_type(request.headers.get("content-type")):
        raise ControlError("control-plane bodies must be application/json", status=415)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ControlError(f"malformed JSON body: {exc}") from exc


def _control(fn: Endpoint) -> Endpoint:
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ControlError as exc:
            return _control_error(exc.status, str(exc))
        except (sc.ScenarioError, FaultError) as exc:
            return _control_error(400, str(exc))

    wrapper.__name__ = fn.__name__
    return wrapper


def _object(body: Any, what: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError(f"{what} body must be a JSON object")
    return body


# ------------------------------------------------------------------------------------ routes


def _api_routes(state: SandboxState) -> list[Route]:
    @_api
    async def me(request: Request) -> Response:
        return _json(state.me())

    @_api
    async def users(request: Request) -> Response:
        page, size = _paging(_query(request), 50, problem=True)
        return _json(state.users_page(page, size))

    @_api
    async def tasks(request: Request) -> Response:
        q = _query(request)
        status, types = _task_filters(q)
        page, size = _paging(q, 10)
        return _json(state.tasks_page(status, types, page, size))

    @_api
    async def case_tasks(request: Request) -> Response:
        case_id = request.path_params["id"]
        if not sc.is_guid(case_id):
            raise ApiError(400, "InvalidId", f"'{case_id}' is not a valid case ID (GUID expected).")
        status, types = _task_filters(_query(request))
        return _json(state.case_tasks(case_id, status, types))

    @_api
    async def case(request: Request) -> Response:
        return _json(state.get_case(request.path_params["id"]))

    @_api
    async def by_creditor_reference(request: Request) -> Response:
        return _json(state.case_by_creditor_reference(request.path_params["creditorReference"]))

    @_api
    async def by_case_reference(request: Request) -> Response:
        return _json(state.case_by_reference(request.path_params["caseReference"]))

    @_api
    async def chats(request: Request) -> Response:
        if request.method == "GET":
            return _json(state.case_chats(request.path_params["id"]))
        if not _is_json_type(request.headers.get("content-type")):
            return _json(problem_body(415, "Unsupported Media Type"), 415)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "InvalidJson", "The request body is not valid JSON.") from None
        return _json(state.post_chat(request.path_params["id"], body))

    return [
        Route("/me", me, methods=["GET"]),
        Route("/users", users, methods=["GET"]),
        Route("/tasks", tasks, methods=["GET"]),
        Route("/cases/by-creditor-reference/{creditorReference}", by_creditor_reference, methods=["GET"]),
        Route("/cases/case-reference/{caseReference}", by_case_reference, methods=["GET"]),
        Route("/cases/{id}/tasks", case_tasks, methods=["GET"]),
        Route("/cases/{id}/chats", chats, methods=["GET", "POST"]),
        Route("/cases/{id}", case, methods=["GET"]),
    ]


def _control_routes(state: SandboxState) -> list[Route]:
    @_control
    async def index(request: Request) -> Response:
        return _json({"operations": CONTROL_OPERATIONS, "docs": "docs/sandbox.md"})

    @_control
    async def health(request: Request) -> Response:
        return _json({"status": "ok", "scenario": state.scenario_name})

    @_control
    async def reset(request: Request) -> Response:
        body = _object(await _control_body(request), "reset")
        state.reset(body.get("scenario", "empty"))
        return _json({"status": "reset", "scenario": state.scenario_name})

    @_control
    async def scenario(request: Request) -> Response:
        body = await _control_body(request)
        if not isinstance(body, dict):
            raise ControlError('body must be a scenario object or {"name": ...}')
        spec = body["name"] if set(body) == {"name"} else body
        state.load_scenario(spec)
        return _json({"status": "loaded", "scenario": state.scenario_name})

    @_control
    async def add_task(request: Request) -> Response:
        body = await _control_body(request)
        if not isinstance(body, dict):
            raise ControlError("body must be a task object")
        return _json(state.add_task(body), 201)

    @_control
    async def solve_task(request: Request) -> Response:
        body = _object(await _control_body(request), "solve")
        after = body.get("afterSeconds")
        if after is not None and (isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0):
            raise ControlError("afterSeconds must be a number >= 0")
        return _json(state.solve_task(request.path_params["id"], after))

    @_control
    async def partner_message(request: Request) -> Response:
        body = _object(await _control_body(request), "partner-message")
        return _json(state.partner_message(request.path_params["id"], body.get("message"), body.get("task")), 201)

    @_control
    async def events(request: Request) -> Response:
        if request.method == "GET":
            return _json(state.events())
        return _json(state.add_event(await _control_body(request)), 201)

    @_control
    async def config(request: Request) -> Response:
        if request.method == "GET":
            return _json(state.config())
        return _json(state.update_config(await _control_body(request)))

    @_control
    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            return _json(state.set_faults(await _control_body(request)))
        if request.method == "DELETE":
            state.clear_faults()
        return _json(state.faults_view())

    @_control
    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_requests()
        return _json(state.requests())

    @_control
    async def counters(request: Request) -> Response:
        return _json(state.counters())

    @_control
    async def dump(request: Request) -> Response:
        return _json(state.dump())

    @_control
    async def advance(request: Request) -> Response:
        body = _object(await _control_body(request), "clock/advance")
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ControlError("seconds must be a number")
        state.advance_clock(float(seconds))
        return _json({"elapsedSeconds": round(state.elapsed(), 3)})

    p = CONTROL_PREFIX
    return [
        Route(p, index, methods=["GET"]),
        Route(f"{p}/", index, methods=["GET"]),
        Route(f"{p}/health", health, methods=["GET"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
        Route(f"{p}/scenario", scenario, methods=["POST"]),
        Route(f"{p}/tasks", add_task, methods=["POST"]),
        Route(f"{p}/tasks/{{id}}/solve", solve_task, methods=["POST"]),
        Route(f"{p}/cases/{{id}}/partner-message", partner_message, methods=["POST"]),
        Route(f"{p}/events", events, methods=["GET", "POST"]),
        Route(f"{p}/config", config, methods=["GET", "PUT"]),
        Route(f"{p}/faults", faults, methods=["GET", "PUT", "DELETE"]),
        Route(f"{p}/requests", requests_log, methods=["GET", "DELETE"]),
        Route(f"{p}/counters", counters, methods=["GET"]),
        Route(f"{p}/state", dump, methods=["GET"]),
        Route(f"{p}/clock/advance", advance, methods=["POST"]),
    ]


CONTROL_OPERATIONS = [
    "GET /_sandbox/health",
    "POST /_sandbox/reset",
    "POST /_sandbox/scenario",
    "POST /_sandbox/tasks",
    "POST /_sandbox/tasks/{id}/solve",
    "POST /_sandbox/cases/{id}/partner-message",
    "GET|POST /_sandbox/events",
    "GET|PUT /_sandbox/config",
    "GET|PUT|DELETE /_sandbox/faults",
    "GET|DELETE /_sandbox/requests",
    "GET /_sandbox/counters",
    "GET /_sandbox/state",
    "POST /_sandbox/clock/advance",
]


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


async def _not_found(request: Request, exc: Exception) -> Response:
    if _is_control(request.url.path):
        return _control_error(
            404, f"unknown control operation {request.method} {request.url.path}", operations=CONTROL_OPERATIONS
        )
    return Response(status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    headers = getattr(exc, "headers", None)
    if _is_control(request.url.path):
        return _control_error(405, f"{request.method} not allowed on {request.url.path}", operations=CONTROL_OPERATIONS)
    return Response(status_code=405, headers=headers)


# ------------------------------------------------------------------------------------ middleware


def _presented_key(scope: Scope) -> str | None:
    xkey = bearer = None
    for name, value in scope["headers"]:
        lname = name.lower()
        if lname == b"xapikey":
            xkey = value.decode("latin-1")
        elif lname == b"authorization":
            text = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return xkey if xkey is not None else bearer


async def drop_connection(send: Send) -> None:
    """Close the TCP connection without any response (the client sees a transport error).

    Raising from the app would make uvicorn answer 500, so reach the transport through
    uvicorn's per-request cycle (``send`` is its bound method), close it, and wait until
    uvicorn notices the disconnect so it doesn't try to send a 500 either.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # pragma: no cover - only under a non-uvicorn server
        raise ConnectionAbortedError("sandbox drop fault: cannot reach the transport (not running under uvicorn)")
    transport.close()
    for _ in range(200):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


async def _respond(response: Response, scope: Scope, send: Send) -> int:
    async def no_receive() -> Message:  # responses built here never read the body
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)
    return response.status_code


_STATUS_LABELS = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
    b"<body><h1>Service Temporarily Unavailable</h1><p>The server is temporarily unable to service your "
    b"request. Please try again later.</p><hr><address>sandbox-proxy</address></body></html>\n"
)


def _rate_limited(retry_after: float, in_body: bool, in_header: bool) -> Response:
    body: dict[str, Any] = {
        "error": "rate_limit_exceeded",
        "message": f"Rate limit exceeded. Try again in {math.ceil(retry_after)} seconds.",
    }
    if in_body:
        body["retryAfter"] = round(retry_after, 3)
    headers = {"Retry-After": str(math.ceil(retry_after))} if in_header else None
    return _json(body, 429, headers)


def _fault_response(rule: FaultRule) -> Response:
    if rule.kind == "html200":
        return Response(_HTML_PAGE, status_code=200, media_type="text/html; charset=utf-8")
    if rule.kind == "rateLimit":
        where = rule.params["retryAfterIn"]
        return _rate_limited(rule.params["retryAfter"], where in ("body", "both"), where in ("header", "both"))
    status = rule.params["status"]
    headers = rule.params.get("headers") or None
    if "body" in rule.params:
        body = rule.params["body"]
        if isinstance(body, str):
            return Response(body, status_code=status, headers=headers, media_type="text/plain; charset=utf-8")
        return _json(body, status, headers)
    label = _STATUS_LABELS.get(status, f"Http{status}")
    return _json(api_error_body(label, f"Injected fault: HTTP {status}."), status, headers)


def _malformed(body: bytes) -> bytes:
    cut = body[: max(1, len(body) // 2)] if body else b'{"page":{"totalResults":'
    try:
        json.loads(cut)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return cut
    return cut + b'{"'  # pragma: no cover - a JSON prefix of an object/array is never valid JSON


class SandboxMiddleware:
    """Everything that must happen around a route: limits, faults, rate limit, auth, logging."""

    def __init__(self, app: ASGIApp, state: SandboxState, api_routes: list[Route]) -> None:
        self.app = app
        self.state = state
        self.api_routes = api_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        control = _is_control(path)
        template = None if control else self._template(scope)
        body, too_large = await self._read_body(scope, receive)
        if too_large:
            message = f"Request body exceeds {MAX_BODY_BYTES} bytes."
            if control:
                response: Response = _control_error(413, message)
            else:
                response = _json(problem_body(413, "Payload Too Large", message), 413)
            if not control:
                self._finish(scope, template, response.status_code, None)
            await _respond(response, scope, send)
            return

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if control:
            await self.app(scope, replay, send)
        else:
            await self._api(scope, replay, send, template)

    def _template(self, scope: Scope) -> str | None:
        for route in self.api_routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        declared = 0
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
        if declared > _DRAIN_LIMIT:
            return b"", True
        chunks: list[bytes] = []
        size = 0
        too_large = declared > MAX_BODY_BYTES
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                too_large = True
                chunks = []
            elif not too_large:
                chunks.append(chunk)
            if not message.get("more_body", False) or size > _DRAIN_LIMIT:
                break
        return b"".join(chunks), too_large

    def _finish(self, scope: Scope, template: str | None, status: int | None, fault: str | None) -> None:
        method, path = scope["method"], scope["path"]
        self.state.record_request(method, path, scope["query_string"].decode("latin-1"), template, status, fault)
        if status is not None:
            self.state.after_request(method, path, template)

    async def _api(self, scope: Scope, receive: Receive, send: Send, template: str | None) -> None:
        state = self.state
        state.tick()
        latency_ms, rule = state.pick_fault(scope["method"], scope["path"])
        fault = rule.kind if rule else ("latency" if latency_ms else None)
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000.0)
        if rule is not None and rule.kind == "drop":
            self._finish_dropped(scope, template, fault)
            await drop_connection(send)
            return
        if rule is not None and rule.kind in ("status", "rateLimit", "html200"):
            response = _fault_response(rule)
            self._finish(scope, template, response.status_code, fault)
            await _respond(response, scope, send)
            return

        captured: list[Message] = []
        holder: dict[str, int] = {}
        capture = rule is not None and rule.kind in ("commitThenDrop", "malformedJson")

        async def inner_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                holder["status"] = message["status"]
            if capture:
                captured.append(message)
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Log (and fire afterRequests events) before the client can see the answer, so the
                # request log and any event are in place by the time the client sends its next request.
                self._finish(scope, template, holder.get("status"), fault)
                holder["finished"] = 1
            await send(message)

        await self._serve(scope, receive, inner_send, template)
        if rule is not None and rule.kind == "commitThenDrop":
            self._finish_dropped(scope, template, fault)
            await drop_connection(send)
            return
        if rule is not None and rule.kind == "malformedJson":
            body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
            response = Response(_malformed(body), status_code=200, media_type="application/json")
            self._finish(scope, template, 200, fault)
            await _respond(response, scope, send)
            return
        if "finished" not in holder:
            self._finish(scope, template, holder.get("status"), fault)

    def _finish_dropped(self, scope: Scope, template: str | None, fault: str | None) -> None:
        query = scope["query_string"].decode("latin-1")
        self.state.record_request(scope["method"], scope["path"], query, template, None, fault)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, template: str | None) -> None:
        state = self.state
        key = _presented_key(scope)
        wait = state.check_rate_limit(key or "anonymous")
        if wait is not None:
            await _respond(_rate_limited(wait, True, bool(state.config()["retryAfterHeader"])), scope, send)
            return
        if template is not None and not state.check_auth(key):
            if template == "/me":
                response: Response = Response(status_code=401)
            else:
                response = _json(problem_body(401, "Unauthorized", "Missing or invalid API key or bearer token."), 401)
            await _respond(response, scope, send)
            return
        await self.app(scope, receive, send)


def create_app(state: SandboxState) -> ASGIApp:
    """The full sandbox ASGI app bound to ``state`` (serve it with uvicorn, h11 protocol)."""
    api_routes = _api_routes(state)
    app = Starlette(
        routes=api_routes + _control_routes(state),
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    return SandboxMiddleware(app, state, api_routes)
