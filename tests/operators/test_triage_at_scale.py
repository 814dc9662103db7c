"""The triage example, unmodified, on 5,000 open tasks in a real Airflow (issue 12 items 2 and 3).

``airflow dags test`` against the sandbox's ``large:5000`` (50 pages: 2,900 chat tasks on 580 cases,
2,100 tasks needing a human). On main the run failed (``tasks_for_humans`` returned 2,100 items, over
``[core] max_map_length``), wrote a 2.7 MB XCom and cost 1,410 requests.
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.scale, pytest.mark.timeout(900)]

DAG_ID = "example_debitura_task_triage"
MAX_REPLIES = 50  # as in the example
CHAT = {"ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"}


def test_triage_example_on_5000_open_tasks(airflow_env, sandbox) -> None:
    sandbox.reset("large:5000")
    sandbox.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600})  # like the real API
    open_tasks = sandbox.state.list_tasks("Open")
    chat_tasks = [t for t in open_tasks if t["type"] in CHAT]
    human = [t for t in open_tasks if t["type"] not in CHAT]
    sandbox.control("DELETE", "/requests")

    result = airflow_env.run_dag(DAG_ID, conn_json=sandbox.conn_json(), timeout=800)

    assert result.run_state == "success", result.explain()
    assert result.states and set(result.states.values()) == {"success"}, result.states
    sizes = {f"{t}/{k}/{i}": len(json.dumps(v)) for (t, k, i), v in result.xcoms.items()}
    assert max(sizes.values()) < 1_000_000, sizes
    assert sum(sizes.values()) < 100_000, sizes  # small, whatever the queue size

    report = result.xcom("auto_reply")
    assert len({r["case_id"] for r in report["replied"]}) == MAX_REPLIES
    assert report["capped"]["max_replies"] == MAX_REPLIES and report["failed"] == []
    assert report["capped"]["open_chat_tasks"] == len(chat_tasks)  # the listing's total: the rest was not read
    digest = result.xcom("notify_humans")
    assert digest.startswith(f"{len(human)} Debitura task(s) need a person")
    assert digest.count("https://") == 20  # the 20 oldest, with their links

    counters = sandbox.control("GET", "/counters").json()
    # reply: K direct reads of a case's open chat tasks (the listing is read only as far as the run needs), K case
    # reads, 2K history reads (plan + right before posting) + 1 (after the first post: two runs that started on the
    # same case, issue 20 item 10), K posts
    assert counters["GET /cases/{id}/tasks"] == MAX_REPLIES
    assert counters["GET /cases/{id}"] == MAX_REPLIES
    assert counters["GET /cases/{id}/chats"] == 2 * MAX_REPLIES + 1
    assert counters["POST /cases/{id}/chats"] == MAX_REPLIES
    # the listings: the reply operator reads the chat-type pages it needs (page 1 holds 100 cases: 1 page); the
    # digest (shape="counts", needs_human_only) one page per human type, one for the chat types' total and one
    # unfiltered (unknown types): 8, at any queue size
    assert counters["GET /tasks"] == 1 + 8, counters
    assert counters["total"] == counters["GET /tasks"] + 5 * MAX_REPLIES + 1 == 260, counters  # 284 when both read
    # their whole listing (the digest 52 pages), 1,410 before the plan stopped at the cap

    logs = result.output + airflow_env.task_logs(DAG_ID)
    assert "XCom not found" not in logs
    assert "Replied on case LRG-" in logs  # per-reply lines name the creditor reference and the GUID
    assert f"{len(human)} Debitura task(s) need a person" in logs  # the digest goes through the task logger
    assert sandbox.api_key not in logs
