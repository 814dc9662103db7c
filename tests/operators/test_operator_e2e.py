"""The operators in a real Airflow (``airflow dags test`` in a subprocess) against the sandbox.

Few runs on purpose (each costs ~15-20 s); the many edge cases are covered by direct ``execute`` calls
in the other test modules.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

POSTS = "POST /cases/{id}/chats"
CHAT_TYPES = {"ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"}


def _posts(sandbox) -> int:
    return sandbox.control("GET", "/counters").json().get(POSTS, 0)


def _open_chat_tasks(sandbox) -> list[dict]:
    tasks = sandbox.control("GET", "/state").json()["tasks"]
    return [t for t in tasks if t["status"] == "Open" and t["type"] in CHAT_TYPES]


def test_list_into_xcom_and_map_over_it(airflow_env, sandbox) -> None:
    # The demo's AssignBankAccount clears itself after 5 s; add an account-level task that stays.
    assert sandbox.control("POST", "/tasks", json={"type": "SignContract"}).status_code == 201
    result = airflow_env.run_dag("operators_list_map", conn_json=sandbox.conn_json())
    assert result.run_state == "success", result.explain()
    listed = result.xcom("list_tasks")
    assert {"SignContract", "ReplyToChat", "ClientInputRequired", "MoreInfoNeeded", "ReviewPartner"} <= {
        t["type"] for t in listed
    }
    assert all("caseId" in t and "solutionUrl" in t for t in listed)
    mapped = result.mapped_xcoms("describe")
    assert len(mapped) == len(listed) >= 6, result.explain()
    assert sorted(m.split("|")[0] for m in mapped) == sorted(t["type"] for t in listed)
    assert all(result.states[f"describe[{i}]"] == "success" for i in range(len(listed)))
    case_chat = result.xcom("list_case_chat_tasks")  # templated params rendered by Airflow
    assert sorted(t["type"] for t in case_chat) == ["ClientInputRequired", "MoreInfoNeeded"]
    assert result.xcom("list_tasks", key="debitura_solution_url").startswith("https://")


def test_reply_then_rerun_posts_nothing(airflow_env, sandbox) -> None:
    # Like the real API, keep replied tasks open for a while: the re-run must rely on the chat history.
    sandbox.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600})
    first = airflow_env.run_dag("operators_reply", conn_json=sandbox.conn_json(), conf={"contract_date": "2026-01-15"})
    assert first.run_state == "success", first.explain()
    report = first.xcom("reply")
    assert len(report["replied"]) == 3 and report["dry_run"] is False
    assert first.xcom("summarise") in (  # AssignBankAccount clears itself 5 s into the scenario
        {"replied": 3, "skipped": 0, "needs_human": 3},
        {"replied": 3, "skipped": 0, "needs_human": 2},
    )
    assert _posts(sandbox) == 2
    chats = sandbox.control("GET", "/state").json()["chats"]
    inv1003 = sandbox.state.case_id("INV-1003")
    [message] = [c["message"] for c in chats[inv1003] if c["role"] == 1]
    assert message.startswith('Regarding INV-1003 (Client input required): you wrote "We need the original invoice')
    assert message.endswith("Olivia from Nordic Widgets\n\nContract date: 2026-01-15.")
    # the "Resolve in Debitura" link points at the first task needing a human
    assert first.xcom("reply", key="debitura_solution_url") == report["needs_human"][0]["solution_url"]
    assert sandbox.api_key not in airflow_env.task_logs("operators_reply")

    second = airflow_env.run_dag("operators_reply", conn_json=sandbox.conn_json())
    assert second.run_state == "success", second.explain()
    assert second.xcom("summarise") == {"replied": 0, "skipped": 3, "needs_human": 2}
    assert _posts(sandbox) == 2
    assert len(_open_chat_tasks(sandbox)) == 3  # still open, still not answered twice


def test_dry_run_via_conf_posts_nothing(airflow_env, sandbox) -> None:
    result = airflow_env.run_dag("operators_reply", conn_json=sandbox.conn_json(), conf={"dry_run": True})
    assert result.run_state == "success", result.explain()
    report = result.xcom("reply")
    assert report["dry_run"] is True and len(report["rendered"]) == 3 and report["replied"] == []
    assert _posts(sandbox) == 0 and len(_open_chat_tasks(sandbox)) == 3


def test_bad_template_fails_the_task_and_posts_nothing(airflow_env, sandbox) -> None:
    result = airflow_env.run_dag("operators_reply_bad_template", conn_json=sandbox.conn_json())
    assert result.states.get("reply") in ("failed", "upstream_failed"), result.explain()
    assert _posts(sandbox) == 0
    logs = result.output + airflow_env.task_logs("operators_reply_bad_template")
    assert "'invoice_number' is undefined" in logs
