"""Helpers for the reliability suite: one sandbox per session, small worlds, an oracle, fast backoff.

The shared fixtures (``sandbox``, ``debitura_conn``, ``airflow_env``) live in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_debitura.hooks import retry as retry_module
from airflow_provider_debitura.models import TaskType
from airflow_provider_debitura.sandbox.scenarios import case_id_for

REL_KEY = "reliability-key-5d2e8a91-do-not-log"
CHAT_TYPES = frozenset(TaskType.chat_driven())
ACCOUNT_TYPES = frozenset(TaskType.account_level())
MATRIX_KEY = pytest.StashKey[dict]()


class FakeTI:
    """Enough of a task instance for the operators' and sensor's XCom pushes (the "Resolve" link)."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context() -> dict[str, Any]:
    return {"ti": FakeTI(), "ds": "2026-11-27", "params": {}}


@pytest.fixture(scope="session")
def rel_sb() -> Iterator[Any]:
    """One sandbox for the whole reliability session; tests load their own world into it."""
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="empty", api_key=REL_KEY) as server:
        yield server


def use_conn(monkeypatch: pytest.MonkeyPatch, sb: Any, **extra: Any) -> dict[str, Any]:
    conn = json.loads(sb.conn_json())
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    return conn


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink only the exponential backoff between retries (0.5 s -> 0.02 s); a server's retryAfter is
    still honoured as sent. Keeps the matrix fast without changing which errors are retried."""
    real = retry_module.wait_retry_after_or_backoff
    monkeypatch.setattr(retry_module, "wait_retry_after_or_backoff", lambda: real(initial=0.02, maximum=0.2))


def load_world(sb: Any, scenario: dict[str, Any], *, chat_solve_delay: float | None = None) -> None:
    """A clean server (faults, config, log, counters, events) holding ``scenario``."""
    assert sb.control("POST", "/reset", json={"scenario": "empty"}).status_code == 200
    response = sb.control("POST", "/scenario", json=scenario)
    assert response.status_code == 200, response.text
    if chat_solve_delay is not None:
        assert sb.control("PUT", "/config", json={"chatSolveDelaySeconds": chat_solve_delay}).status_code == 200


def set_faults(sb: Any, rules: list[dict[str, Any]], seed: int = 7) -> None:
    response = sb.control("PUT", "/faults", json={"seed": seed, "rules": rules})
    assert response.status_code == 200, response.text


def request_total(sb: Any) -> int:
    return sb.control("GET", "/counters").json().get("total", 0)


def settle(sb: Any, limit: float = 4.0) -> None:
    """Wait until every request the client gave up on (latency beyond its timeout) has been answered by
    the server, so it cannot land in the next test's world or log."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        faults = sb.control("GET", "/faults").json()["rules"]
        applied = sum(r.get("applied", 0) for r in faults if r["kind"] == "latency")
        logged = sum(1 for r in sb.control("GET", "/requests").json() if r["fault"] == "latency")
        if logged >= applied:
            return
        time.sleep(0.05)


# -- the oracle: the sandbox's own state --


def open_tasks(sb: Any) -> list[dict[str, Any]]:
    return sb.state.list_tasks("Open")


def truly_blocked(sb: Any, case_id: str, tasks: list[dict[str, Any]] | None = None) -> bool:
    """The documented rule, from the server's state: an open task of the case, or an open
    account-level task (by type), blocks it."""
    tasks = open_tasks(sb) if tasks is None else tasks
    case_id = case_id.lower()
    return any((t["caseId"] or "").lower() == case_id or t["type"] in ACCOUNT_TYPES for t in tasks)


def creditor_messages(sb: Any, case_id: str) -> list[dict[str, Any]]:
    return [c for c in sb.state.dump()["chats"].get(case_id, []) if c["role"] == 1]


def replyable_cases(sb: Any) -> set[str]:
    """Cases with an open chat task whose action the reply operator may follow (POST to the own case)."""
    out = set()
    for t in open_tasks(sb):
        action = t.get("action") or {}
        own = ("/cases/{caseId}/chats", f"/cases/{t['caseId']}/chats")
        if t["type"] in CHAT_TYPES and t["caseId"] and (action.get("method") or "").upper() == "POST":
            out.update([t["caseId"]] if action.get("path") in own else [])
    return out


def cid(ref: str) -> str:
    return case_id_for(ref)


# -- the matrix's record, written at the end of the session --


@pytest.fixture(scope="session")
def matrix_record(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    record: dict[str, Any] = {"cells": {}, "started": time.time()}
    request.config.stash[MATRIX_KEY] = record
    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    record = session.config.stash.get(MATRIX_KEY, None)
    if not record or not record["cells"]:
        return
    record["seconds"] = round(time.time() - record["started"], 1)
    out = os.environ.get("DEBITURA_MATRIX_JSON")
    path = Path(out) if out else Path(session.config._tmp_path_factory.getbasetemp()) / "fault_matrix.json"  # type: ignore[attr-defined]
    path.write_text(json.dumps(record, indent=1))
    record["path"] = str(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    record = config.stash.get(MATRIX_KEY, None)
    if not record or not record["cells"]:
        return
    cells = record["cells"].values()
    ran = [c for c in cells if c["status"] != "n/a"]
    bad = [c for c in ran if c["status"] != "pass"]
    terminalreporter.write_line(
        f"fault matrix: {len(ran)} cells run, {len(ran) - len(bad)} as expected, {len(bad)} not, "
        f"{len(record['cells']) - len(ran)} N/A; JSON: {record.get('path')} "
        "(render: python tests/reliability/render_matrix.py)"
    )
