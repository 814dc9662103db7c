"""A pure-ASGI middleware around every route: body limits, faults, rate limiting, auth and request logging."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_debitura.sandbox.api import json_response, template_of
from airflow_provider_debitura.sandbox.control import control_error, is_control
from airflow_provider_debitura.sandbox.dto import api_error_body, problem_body
from airflow_provider_debitura.sandbox.faults import FaultRule
from airflow_provider_debitura.sandbox.state import SandboxState

MAX_BODY_BYTES = 1024 * 1024
#: Bodies up to this size are read and discarded before answering 413, so the client sees the
#: 413 instead of a broken pipe; bigger ones are answered straight away.
_DRAIN_LIMIT = 64 * 1024 * 1024

_STATUS_LABELS = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
    b"<body><h1>Service Temporarily Unavailable</h1><p>The server is temporarily unable to service your "
    b"request. Please try again later.</p><hr><address>sandbox-proxy</address></body></html>\n"
)


def _presented_key(scope: Scope) -> str | None:
    xkey = bearer = None
    for name, value in scope["headers"]:
        lname = name.lower()
        if lname == b"xapikey":
            xkey = value.decode("latin-1")
        elif lname == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return xkey if xkey is not None else bearer


async def drop_connection(send: Send) -> None:
    """Close the TCP connection without any response (the client sees a transport error).

    Raising from the app would make uvicorn answer 500, so reach the transport through uvicorn's
    per-request cycle (``send`` is its bound method), close it, and wait until uvicorn notices the
    disconnect so it doesn't try to send a 500 either.

    :param send: uvicorn's ASGI send callable.
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


def rate_limited(retry_after: float, in_body: bool, in_header: bool, window: str | None = None) -> Response:
    """The API's 429 answer (the documented body; the window hit is named only in the message text).

    :param retry_after: seconds to wait.
    :param in_body: put ``retryAfter`` in the body.
    :param in_header: send a ``Retry-After`` header (whole seconds, rounded up).
    :param window: the window that refused, e.g. ``hour window: 200 requests per clock hour`` (None: not said).
    """
    which = f" ({window})" if window else ""
    body: dict[str, Any] = {
        "error": "rate_limit_exceeded",
        "message": f"Rate limit exceeded{which}. Try again in {math.ceil(retry_after)} seconds.",
    }
    if in_body:
        body["retryAfter"] = round(retry_after, 3)
    headers = {"Retry-After": str(math.ceil(retry_after))} if in_header else None
    return json_response(body, 429, headers)


def _fault_response(rule: FaultRule) -> Response:
    if rule.kind == "html200":
        return Response(_HTML_PAGE, status_code=200, media_type="text/html; charset=utf-8")
    if rule.kind == "rateLimit":
        where = rule.params["retryAfterIn"]
        return rate_limited(rule.params["retryAfter"], where in ("body", "both"), where in ("header", "both"))
    status = rule.params["status"]
    headers = rule.params.get("headers") or None
    if "body" in rule.params:
        body = rule.params["body"]
        if isinstance(body, str):
            return Response(body, status_code=status, headers=headers, media_type="text/plain; charset=utf-8")
        return json_response(body, status, headers)
    label = _STATUS_LABELS.get(status, f"Http{status}")
    return json_response(api_error_body(label, f"Injected fault: HTTP {status}."), status, headers)


def _malformed(body: bytes) -> bytes:
    cut = body[: max(1, len(body) // 2)] if body else b'{"page":{"totalResults":'
    try:
        json.loads(cut)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return cut
    return cut + b'{"'  # pragma: no cover - a JSON prefix of an object/array is never valid JSON


async def _read_body(receive: Receive, declared: int) -> tuple[bytes, bool]:
    """The request body, and whether it is over :data:`MAX_BODY_BYTES` (then the body is empty)."""
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


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class SandboxMiddleware:
    """Everything that must happen around a route: limits, faults, rate limit, auth, logging.

    :param app: the Starlette app.
    :param state: the store.
    :param api_routes: the Customer API routes (to name each request's route template).
    """

    def __init__(self, app: ASGIApp, state: SandboxState, api_routes: list[Route]) -> None:
        self.app = app
        self.state = state
        self.api_routes = api_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        control = is_control(scope["path"])
        template = None if control else self._template(scope)
        body, too_large = await _read_body(receive, _declared_length(scope))
        if too_large:
            await self._too_large(scope, send, control, template)
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

    async def _too_large(self, scope: Scope, send: Send, control: bool, template: str | None) -> None:
        message = f"Request body exceeds {MAX_BODY_BYTES} bytes."
        if control:
            await _respond(control_error(413, message), scope, send)
            return
        response = json_response(problem_body(413, "Payload Too Large", message), 413)
        self._finish(scope, template, response.status_code, None)
        await _respond(response, scope, send)

    def _template(self, scope: Scope) -> str | None:
        for route in self.api_routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return template_of(route)
        return None

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
            self._finish(scope, template, None, fault)
            await drop_connection(send)
        elif rule is not None and rule.kind in ("status", "rateLimit", "html200"):
            response = _fault_response(rule)
            self._finish(scope, template, response.status_code, fault)
            await _respond(response, scope, send)
        elif rule is not None and rule.kind in ("commitThenDrop", "malformedJson"):
            await self._serve_then_spoil(scope, receive, send, template, rule)
        else:
            await self._serve_and_log(scope, receive, send, template, fault)

    async def _serve_and_log(
        self, scope: Scope, receive: Receive, send: Send, template: str | None, fault: str | None
    ) -> None:
        holder: dict[str, int] = {}

        async def inner_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                holder["status"] = message["status"]
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Log (and fire afterRequests events) before the client can see the answer, so the
                # request log and any event are in place by the time the client sends its next request.
                self._finish(scope, template, holder.get("status"), fault)
                holder["finished"] = 1
            await send(message)

        await self._serve(scope, receive, inner_send, template)
        if "finished" not in holder:
            self._finish(scope, template, holder.get("status"), fault)

    async def _serve_then_spoil(
        self, scope: Scope, receive: Receive, send: Send, template: str | None, rule: FaultRule
    ) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self._serve(scope, receive, capture, template)
        if rule.kind == "commitThenDrop":
            self._finish(scope, template, None, rule.kind)
            await drop_connection(send)
            return
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        response = Response(_malformed(body), status_code=200, media_type="application/json")
        self._finish(scope, template, 200, rule.kind)
        await _respond(response, scope, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, template: str | None) -> None:
        state = self.state
        key = _presented_key(scope)
        refusal = state.check_rate_limit(key or None)  # no key or an empty one: the shared bucket
        if refusal is not None:
            header, wait = bool(state.config()["retryAfterHeader"]), max(refusal.retry_after, 0.001)
            await _respond(rate_limited(wait, True, header, refusal.describe()), scope, send)
            return
        if template is not None and not state.check_auth(key):
            if template == "/me":
                response: Response = Response(status_code=401)
            else:
                response = json_response(
                    problem_body(401, "Unauthorized", "Missing or invalid API key or bearer token."), 401
                )
            await _respond(response, scope, send)
            return
        await self.app(scope, receive, send)
