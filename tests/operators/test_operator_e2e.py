"""The operators in a real Airflow (``airflow dags test`` in a subprocess) against the sandbox.

Few runs on purpose (each costs ~15-20 s); the many edge cases are covered by direct ``execute`` calls
in the other test modules.
"""

from __future__ import annotations

import pytest
from helpers.airflow_harness import airflow_major

pytestmark = pytest.mark.e2e

POSTS = "POST /cases/{id}/chats"
CHAT_TYPES = {"ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"}
RUN_TIMEOUT = 600  # one `airflow dags test` takes ~20 s alone, minutes on a machine shared by many suites


def _posts(sandbox) -> int:
    return sandbox.control("GET", "/counters").json().get(POSTS, 0)


def _open_chat_tasks(sandbox) -> list[dict]:
    tasks = sandbox.control("GET", "/state").json()["tasks"]
    return [t for t in tasks if t["status"] == "Open" and t["type"] in CHAT_TYPES]


def test_list_into_xcom_and_map_over_it(airflow_env, sandbox) -> None:
    # The demo's AssignBankAccount clears itself after 5 s; add an account-level task that stays.
    assert sandbox.control("POST", "/tasks", json={"type": "SignContract"}).status_code == 201
    result = airflow_env.run_dag("operators_list_map", conn_json=sandbox.conn_json(), timeout=RUN_TIMEOUT)
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
    # The "Resolve in Debitura" URL is stored once: Airflow 3 keeps it in the link's own XCom (written by the
    # worker), Airflow 2 in debitura_solution_url (read by the webserver). No lookup of a missing XCom.
    first_human = next(t["solutionUrl"] for t in listed if t["type"] not in CHAT_TYPES)
    if airflow_major() >= 3:
        assert result.xcom("list_tasks", key="_link_DebituraResolveLink") == first_human
        assert result.xcom("list_case_chat_tasks", key="_link_DebituraResolveLink") == ""  # nothing to link to
        assert not [k for k in result.xcoms if k[1] == "debitura_solution_url"]
    else:
        assert result.xcom("list_tasks", key="debitura_solution_url") == first_human
    assert "XCom not found" not in result.output + airflow_env.task_logs("operators_list_map")


def test_reply_then_rerun_posts_nothing(airflow_env, sandbox) -> None:
    # Like the real API, keep replied tasks open for a while: the re-run must rely on the chat history.
    sandbox.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600})
    first = airflow_env.run_dag(
        "operators_reply", conn_json=sandbox.conn_json(), conf={"contract_date": "2026-01-15"}, timeout=RUN_TIMEOUT
    )
    assert first.run_state == "success", first.explain()
    report = first.xcom("reply")
    assert len(report["replied"]) == 3 and report["dry_run"] is False
    assert first.xcom("summarise") == {"replied": 3, "skipped": 0, "needs_human": 0, "failed": 0}
    assert _posts(sandbox) == 2
    chats = sandbox.control("GET", "/state").json()["chats"]
    inv1003 = sandbox.state.case_id("INV-1003")
    [message] = [c["message"] for c in chats[inv1003] if c["role"] == 1]
    assert message.startswith('Regarding INV-1003 (Client input required): you wrote "We need the original invoice')
    assert message.endswith("Olivia from Nordic Widgets\n\nContract date: 2026-01-15.")
    logs = first.output + airflow_env.task_logs("operators_reply")
    assert sandbox.api_key not in logs
    for ref in ("INV-1002", "INV-1003"):  # each reply line names the creditor reference and the GUID
        assert f"Replied on case {ref} ({sandbox.state.case_id(ref)})" in logs

    second = airflow_env.run_dag("operators_reply", conn_json=sandbox.conn_json(), timeout=RUN_TIMEOUT)
    assert second.run_state == "success", second.explain()
    assert second.xcom("summarise") == {"replied": 0, "skipped": 3, "needs_human": 0, "failed": 0}
    assert _posts(sandbox) == 2
    assert len(_open_chat_tasks(sandbox)) == 3  # still open, still not answered twice


def test_dry_run_via_conf_posts_nothing(airflow_env, sandbox) -> None:
    result = airflow_env.run_dag(
        "operators_reply", conn_json=sandbox.conn_json(), conf={"dry_run": True}, timeout=RUN_TIMEOUT
    )
    assert result.run_state == "success", result.explain()
    report = result.xcom("reply")
    assert report["dry_run"] is True and len(report["rendered"]) == 3 and report["replied"] == []
    assert _posts(sandbox) == 0 and len(_open_chat_tasks(sandbox)) == 3


def test_bad_template_fails_the_task_and_posts_nothing(airflow_env, sandbox) -> None:
    result = airflow_env.run_dag("operators_reply_bad_template", conn_json=sandbox.conn_json(), timeout=RUN_TIMEOUT)
    assert result.states.get("reply") in ("failed", "upstream_failed"), result.explain()
    assert _posts(sandbox) == 0
    logs = result.output + airflow_env.task_logs("operators_reply_bad_template")
    assert "'invoice_number' is undefined" in logs


def test_list_shapes_and_the_mapping_limit(airflow_env, sandbox) -> None:
    """With [core] max_map_length = 3 and 6 open tasks: mapping one task per record fails in the list task with
    an error naming the fix; batches of 2 map into 3 task instances; the summary is one small dict."""
    for task in sandbox.state.list_tasks("Open"):  # the demo's AssignBankAccount clears itself: clear it now
        if task["type"] == "AssignBankAccount":
            assert sandbox.control("POST", f"/tasks/{task['id']}/solve").status_code == 200
    assert sandbox.control("POST", "/tasks", json={"type": "SignContract"}).status_code == 201
    result = airflow_env.run_dag(
        "operators_list_shapes",
        conn_json=sandbox.conn_json(),
        env={"AIRFLOW__CORE__MAX_MAP_LENGTH": "3"},
        timeout=RUN_TIMEOUT,
    )
    assert result.states["records"] == "failed", result.explain()
    logs = result.output + airflow_env.task_logs("operators_list_shapes")
    assert "max_map_length = 3" in logs and "shape='batches' with batch_size >= 2" in logs
    assert result.states["batches"] == "success" and result.mapped_xcoms("batch") == [2, 2, 2]
    summary = result.xcom("summary")
    assert summary["total"] == 6 and summary["by_type"]["SignContract"] == 1 and len(summary["oldest"]) == 6
    assert result.xcom("digest") == 6
