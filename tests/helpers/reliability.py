"""The reliability suite's helpers: small worlds loaded into one sandbox, faults, and an oracle that reads
the sandbox's own state (the fixtures are in ``tests/reliability/conftest.py``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_debitura.models import TaskType
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from helpers.context import task_context

REL_KEY = "reliability-key-5d2e8a91-do-not-log"
CHAT_TYPES = frozenset(TaskType.chat_driven())
ACCOUNT_TYPES = frozenset(TaskType.account_level())


def use_conn(monkeypatch: pytest.MonkeyPatch, sb: Any, **extra: Any) -> dict[str, Any]:
    conn = json.loads(sb.conn_json())
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    return conn


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


def context() -> dict[str, Any]:
    """A task context for calling ``execute``/``poke`` directly."""
    return task_context()
