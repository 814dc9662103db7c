"""The Customer API surface: routes, query parsing and the reference lookups' path decoding."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_debitura.sandbox import scenarios as sc
from airflow_provider_debitura.sandbox.cases import CaseQuery, parse_guids, parse_sort, parse_statuses
from airflow_provider_debitura.sandbox.dto import ApiError
from airflow_provider_debitura.sandbox.records import TASK_STATUSES
from airflow_provider_debitura.sandbox.state import SandboxState

Endpoint = Callable[[Request], Awaitable[Response]]
_CONVERTOR = re.compile(r":[a-z]+}")
_ENCODED_SLASH = re.compile(rb"(%2[fF])")


def template_of(route: Route) -> str:
    """A route's path as the spec writes it (``{creditorReference:path}`` -> ``{creditorReference}``).

    :param route: a Starlette route.
    """
    return _CONVERTOR.sub("}", route.path)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response.

    :param data: the body.
    :param status: the status code.
    :param headers: extra headers.
    """
    return JSONResponse(data, status_code=status, headers=headers)


def is_json_type(content_type: str | None) -> bool:
    """Whether a Content-Type is JSON (``application/json``, ``text/json``, ``application/*+json``).

    :param content_type: the header's value.
    """
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
        label = "Bad Request" if problem else "InvalidParameter"
        raise ApiError(400, label, f"The value '{values[0]}' is not valid for {name}.", problem=problem) from None


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


def _case_query(q: dict[str, list[str]]) -> CaseQuery:
    page, size = _paging(q, 10)
    sort = q.get("sort")
    return CaseQuery(
        page=page,
        page_size=size,
        ids=parse_guids(q.get("ids", []), "Ids"),
        statuses=parse_statuses(q.get("statuses", [])),
        division_ids=parse_guids(q.get("divisionids", []), "DivisionIds"),
        debtor_ids=parse_guids(q.get("debtorids", []), "DebtorIds"),
        sort=parse_sort(sort[0] if sort else None),
    )


def lookup_segment(request: Request, prefix: str, mode: str) -> str | None:
    """The reference in ``<prefix><segment>``, read from the raw path so ``%2F`` stays inside the segment.

    uvicorn hands Starlette an already-decoded ``path`` (``2024%2F0001`` arrives as ``2024/0001``), so
    the segment is cut from ``raw_path`` and percent-decoded here as UTF-8 (``%25`` -> ``%``, ``%20`` ->
    space; ``+`` stays a plus, as in any path). ``mode="keep"`` leaves each ``%2F`` as those three
    characters, as ASP.NET Core does by default. None when the path has no single segment there (a
    literal ``/`` or nothing): the route does not exist, as on ASP.NET.

    :param request: the request.
    :param prefix: the route's path up to the segment, e.g. ``/cases/by-creditor-reference/``.
    :param mode: ``"decode"`` or ``"keep"``.
    """
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    if not raw.startswith(prefix.encode()):
        return None
    segment = raw[len(prefix) :]
    if not segment or b"/" in segment:
        return None
    parts = _ENCODED_SLASH.split(segment) if mode == "keep" else [segment]
    return "".join(
        part.decode("ascii") if _ENCODED_SLASH.fullmatch(part) else unquote_to_bytes(part).decode("utf-8", "replace")
        for part in parts
    )


def _api(fn: Endpoint) -> Endpoint:
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return json_response(exc.body(), exc.status)

    wrapper.__name__ = fn.__name__
    return wrapper


def _reference_routes(state: SandboxState) -> list[Route]:
    def lookup(prefix: str, find: Callable[[str], dict[str, Any]]) -> Endpoint:
        @_api
        async def endpoint(request: Request) -> Response:
            ref = lookup_segment(request, prefix, state.config()["encodedSlash"])
            return Response(status_code=404) if ref is None else json_response(find(ref))

        return endpoint

    by_cref = lookup("/cases/by-creditor-reference/", state.case_by_creditor_reference)
    by_ref = lookup("/cases/case-reference/", state.case_by_reference)
    return [
        Route("/cases/by-creditor-reference/{creditorReference:path}", by_cref, methods=["GET"]),
        Route("/cases/case-reference/{caseReference:path}", by_ref, methods=["GET"]),
    ]


async def _chat_body(request: Request) -> Any:
    if not is_json_type(request.headers.get("content-type")):
        raise ApiError(415, "Unsupported Media Type", "", problem=True)
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "InvalidJson", "The request body is not valid JSON.") from None


def _case_routes(state: SandboxState) -> list[Route]:
    @_api
    async def cases(request: Request) -> Response:
        return json_response(state.cases_page(_case_query(_query(request))))

    @_api
    async def case_tasks(request: Request) -> Response:
        case_id = request.path_params["id"]
        if not sc.is_guid(case_id):
            raise ApiError(400, "InvalidId", f"'{case_id}' is not a valid case ID (GUID expected).")
        status, types = _task_filters(_query(request))
        return json_response(state.case_tasks(case_id, status, types))

    @_api
    async def case(request: Request) -> Response:
        return json_response(state.get_case(request.path_params["id"]))

    @_api
    async def chats(request: Request) -> Response:
        if request.method == "GET":
            return json_response(state.case_chats(request.path_params["id"]))
        return json_response(state.post_chat(request.path_params["id"], await _chat_body(request)))

    return [
        Route("/cases", cases, methods=["GET"]),
        *_reference_routes(state),
        Route("/cases/{id}/tasks", case_tasks, methods=["GET"]),
        Route("/cases/{id}/chats", chats, methods=["GET", "POST"]),
        Route("/cases/{id}", case, methods=["GET"]),
    ]


def api_routes(state: SandboxState) -> list[Route]:
    """Every Customer API route the sandbox serves, bound to ``state``.

    :param state: the store.
    """

    @_api
    async def me(request: Request) -> Response:
        return json_response(state.me())

    @_api
    async def users(request: Request) -> Response:
        page, size = _paging(_query(request), 50, problem=True)
        return json_response(state.users_page(page, size))

    @_api
    async def tasks(request: Request) -> Response:
        q = _query(request)
        status, types = _task_filters(q)
        page, size = _paging(q, 10)
        return json_response(state.tasks_page(status, types, page, size))

    return [
        Route("/me", me, methods=["GET"]),
        Route("/users", users, methods=["GET"]),
        Route("/tasks", tasks, methods=["GET"]),
        *_case_routes(state),
    ]
