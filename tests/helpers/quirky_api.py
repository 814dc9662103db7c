"""A stand-in for the Customer API with the quirks the sandbox does not have (issue 20, items 2, 3, 5).

``QuirkyApi`` is a ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) that serves the wire format of
``GET /tasks`` (the ``page``/``tasks`` envelope, ``Page``/``PageSize``, repeated ``type``),
``GET /cases/{id}/tasks`` (a bare array; 404 for a deleted case) and ``GET /cases/{id}``, from a list of
task records kept in memory, with these quirks:

- ``order="unstable"``: tasks with equal ``dateCreated`` come in a different order on every request (a
  seeded shuffle of each group of equal timestamps), as a database without a tie-breaker does;
  ``order="swap"``: the two tasks on either side of the first page boundary trade places on every other
  request (one task read twice, its neighbour never);
- ``totals``: ``"true"`` (default), ``"zero"`` (``totalResults: 0`` on pages that hold tasks),
  ``"cap:N"`` (never more than N), ``"lag:N"`` (N fewer than there are), ``"over:N"`` (N more).

The quirks apply to every ``GET /tasks`` (the account-level read included), as a real server's would.
``counts`` holds the requests per ``"GET /tasks"``, ``"GET /cases/{id}/tasks"``, ``"GET /cases/{id}"``.
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "quirky-key-do-not-log"
CASE_TASKS = re.compile(r"^/cases/([0-9a-fA-F-]{36})/tasks$")
CASE = re.compile(r"^/cases/([0-9a-fA-F-]{36})$")


def task(type_: str, case_id: str | None, created: str, task_id: str | None = None) -> dict[str, Any]:
    """An open TaskDto record.

    :param type_: the task type.
    :param case_id: its case (None: caseless).
    :param created: ``dateCreated`` (ISO 8601).
    :param task_id: its id (default: a random GUID).
    """
    return {
        "id": task_id or str(uuid.uuid4()),
        "type": type_,
        "typeLabel": type_,
        "title": f"{type_} task",
        "description": None,
        "status": "Open",
        "caseId": case_id,
        "caseReference": None,
        "leadId": None,
        "deadline": None,
        "dateCreated": created,
        "dateSolved": None,
        "solutionUrl": "https://app.debitura.com/tasks",
        "action": None,
    }


class QuirkyApi:
    """The stand-in server; a context manager (started on entry, stopped on exit).

    :param tasks: the open task records, oldest first.
    :param cases: the case GUIDs that exist (every case of a task, when None).
    :param order: ``"stable"``, ``"unstable"`` or ``"swap"``.
    :param totals: ``"true"``, ``"zero"``, ``"cap:N"``, ``"lag:N"`` or ``"over:N"``.
    :param seed: the seed of the unstable order.
    """

    def __init__(
        self,
        tasks: list[dict[str, Any]],
        *,
        cases: set[str] | None = None,
        order: str = "stable",
        totals: str = "true",
        seed: int = 7,
    ) -> None:
        self.tasks = list(tasks)
        self.cases = {c.lower() for c in cases} if cases is not None else {t["caseId"] for t in tasks if t["caseId"]}
        self.order, self.totals = order, totals
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def conn_json(self) -> str:
        """The connection for ``AIRFLOW_CONN_<ID>``."""
        return json.dumps({"conn_type": "debitura", "host": self.url, "password": API_KEY, "extra": {}})

    def delete_case(self, case_id: str) -> None:
        """The case is gone (404 on its reads); the queue still lists its tasks.

        :param case_id: the case GUID.
        """
        self.cases.discard(case_id.lower())

    def __enter__(self) -> QuirkyApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- answers --

    def listing(self, types: list[str], page: int, size: int) -> dict[str, Any]:
        """One ``GET /tasks`` page with the server's quirks."""
        with self._lock:
            self.counts["GET /tasks"] += 1
            rows = [t for t in self.tasks if not types or t["type"] in types]
            rows = self._ordered(rows, size)
        chunk = rows[(page - 1) * size : page * size]
        return {
            "page": {
                "totalResults": self._total(len(rows)),
                "pageSize": size,
                "currentPage": page,
                "responseCount": len(chunk),
                "totalPages": max(1, -(-self._total(len(rows)) // size)),
            },
            "tasks": chunk,
        }

    def _ordered(self, rows: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
        rows = sorted(rows, key=lambda t: t["dateCreated"])
        if self.order == "unstable":
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(row["dateCreated"], []).append(row)
            for group in groups.values():
                self._random.shuffle(group)
            rows = [row for key in sorted(groups) for row in groups[key]]
        elif self.order == "swap" and len(rows) > size and self.counts["GET /tasks"] % 2 == 0:
            rows[size - 1], rows[size] = rows[size], rows[size - 1]
        return rows

    def _total(self, real: int) -> int:
        kind, _, value = self.totals.partition(":")
        if kind == "zero":
            return 0
        if kind == "cap":
            return min(real, int(value))
        if kind == "lag":
            return max(0, real - int(value))
        if kind == "over":
            return real + int(value)
        return real


def _handler(api: QuirkyApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if self.headers.get("XApiKey") != API_KEY:
                self._send(401, {"error": "unauthorized", "message": "bad key"})
            elif url.path == "/tasks":
                page = int(query.get("Page", ["1"])[0])
                size = int(query.get("PageSize", ["10"])[0])
                self._send(200, api.listing(query.get("type", []), page, size))
            elif match := CASE_TASKS.match(url.path):
                self._case_tasks(match.group(1).lower())
            elif match := CASE.match(url.path):
                api.counts["GET /cases/{id}"] += 1
                case_id = match.group(1).lower()
                found = case_id in api.cases
                self._send(200 if found else 404, {"id": case_id} if found else _not_found())
            else:
                self._send(404, _not_found())

        def _case_tasks(self, case_id: str) -> None:
            api.counts["GET /cases/{id}/tasks"] += 1
            if case_id not in api.cases:
                self._send(404, _not_found())
                return
            self._send(200, [t for t in api.tasks if (t["caseId"] or "").lower() == case_id])

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _not_found() -> dict[str, Any]:
    return {"error": "NotFound", "message": "Case not found", "businessErrors": []}


class _Answer:
    """What the fault matrix reads of a control-plane answer (``status_code``, ``json()``)."""

    def __init__(self, body: Any) -> None:
        self.status_code = 200
        self._body = body

    def json(self) -> Any:
        return self._body


class _State:
    """The oracle's view of a :class:`QuirkyApi` (the subset of the sandbox's ``state`` the matrix reads)."""

    def __init__(self, api: QuirkyApi) -> None:
        self._api = api
        self.removed_cases: set[str] = set()

    def list_tasks(self, status: str = "Open") -> list[dict[str, Any]]:
        return [dict(t) for t in self._api.tasks if t["status"] == status]


class MatrixServer(QuirkyApi):
    """A :class:`QuirkyApi` that answers the few control-plane reads of ``tests/reliability/test_fault_matrix.py``
    (``/counters``, ``/faults``, ``DELETE /requests``) and keeps the oracle's ``state``.

    :param tasks: as :class:`QuirkyApi`.
    :param kwargs: as :class:`QuirkyApi`.
    """

    def __init__(self, tasks: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(tasks, **kwargs)
        self.state = _State(self)

    def delete_case(self, case_id: str) -> None:
        super().delete_case(case_id)
        self.state.removed_cases.add(case_id.lower())

    def control(self, method: str, path: str, json: Any = None) -> _Answer:
        """The matrix's control-plane calls; anything else is a no-op.

        :param method: HTTP method.
        :param path: the operation's path.
        :param json: ignored.
        """
        if path.endswith("/counters"):
            return _Answer({**self.counts, "total": sum(self.counts.values())})
        if path.endswith("/faults"):
            return _Answer({"rules": []})
        if method == "DELETE" and path.endswith("/requests"):
            self.counts.clear()
        return _Answer([])
