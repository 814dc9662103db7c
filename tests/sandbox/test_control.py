"""Control plane: scenario loading (atomic), tasks, solving, partner messages, events, config,
request log/counters, and robustness against malformed, huge or unknown requests."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for


def _open_types(api: httpx.Client, case_ref: str | None = None) -> list[str]:
    if case_ref:
        return sorted(t["type"] for t in api.get(f"/cases/{case_id_for(case_ref)}/tasks").json())
    return sorted(t["type"] for t in api.get("/tasks", params={"PageSize": 100}).json()["tasks"])


def test_control_needs_no_auth_and_lists_operations(sb: SandboxServer) -> None:
    body = sb.control("GET", "/_sandbox/").json()
    assert "POST /_sandbox/reset" in body["operations"]
    assert sb.control("GET", "health").json()["scenario"] == "demo"


def test_reset_defaults_to_empty_and_clears_everything(sb: SandboxServer, api: httpx.Client) -> None:
    sb.control("PUT", "/_sandbox/faults", json={"rules": [{"kind": "latency", "latencyMs": 1}]})
    sb.control("PUT", "/_sandbox/config", json={"rateLimitPerMinute": 1000})
    api.get("/tasks")
    assert sb.control("POST", "/_sandbox/reset").json()["scenario"] == "empty"
    assert sb.control("GET", "/_sandbox/faults").json()["rules"] == []
    assert sb.control("GET", "/_sandbox/config").json()["rateLimitPerMinute"] is None
    assert sb.control("GET", "/_sandbox/requests").json() == []
    assert sb.control("GET", "/_sandbox/counters").json() == {"total": 0}
    assert api.get("/tasks").json()["tasks"] == []
    assert sb.control("POST", "/_sandbox/reset", json={"scenario": "demo"}).json()["scenario"] == "demo"
    assert len(_open_types(api)) == 6


def test_load_scenario_by_name_and_object(sb: SandboxServer, api: httpx.Client) -> None:
    assert sb.control("POST", "/_sandbox/scenario", json={"name": "large:20"}).status_code == 200
    assert api.get("/tasks").json()["page"]["totalResults"] == 20
    scenario = {"cases": [{"creditorReference": "X-1"}], "tasks": [{"type": "Generic", "caseCreditorReference": "X-1"}]}
    assert sb.control("POST", "/_sandbox/scenario", json=scenario).status_code == 200
    assert _open_types(api) == ["Generic"]


def test_load_scenario_from_path_only_from_python(sb: SandboxServer, api: httpx.Client, tmp_path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"tasks": [{"type": "SignContract"}]}))
    r = sb.control("POST", "/_sandbox/scenario", json={"name": str(path)})
    assert r.status_code == 400 and "--scenario PATH" in r.json()["message"]
    assert sb.state.scenario_name == "demo"
    sb.state.load_scenario(path)  # the Python API (and the command line) may read files
    assert sb.state.scenario_name == "mine" and _open_types(api) == ["SignContract"]


@pytest.mark.parametrize(
    ("scenario", "needle"),
    [
        ({"tasks": [{"type": "ReplyToChat"}]}, "tasks[0]"),
        ({"tasks": [{"type": "SignContract", "caseCreditorReference": "INV-1"}], "cases": [
            {"creditorReference": "INV-1"}]}, "account-level"),
        ({"tasks": [{"type": "Bad Type"}]}, "tasks[0].type"),
        ({"cases": [{"creditorReference": "A"}, {"creditorReference": "A"}]}, "cases[1].creditorReference"),
        ({"cases": [{"creditorReference": "A", "reference": "lower123"}]}, "cases[0].reference"),
        ({"cases": [{"creditorReference": "A", "colour": "red"}]}, "colour"),
        ({"chats": [{"caseCreditorReference": "nope", "message": "x"}]}, "chats[0]"),
        ({"users": [{"email": "not-an-email"}]}, "users[0].email"),
        ({"bogus": 1}, "bogus"),
        ({"name": "large:0"}, "large:N"),
        ({"name": "no-such-scenario"}, "unknown scenario"),
        ({"events": [{"at": {"afterSeconds": -1}, "action": {"type": "solveTask", "taskId": str(uuid.uuid4())}}]},
         "events[0].at.afterSeconds"),
    ],
)  # fmt: skip
def test_bad_scenario_is_atomic(sb: SandboxServer, api: httpx.Client, scenario: dict, needle: str) -> None:
    def ids() -> list[tuple[str, str]]:
        return [(t["id"], t["status"]) for t in sb.control("GET", "/_sandbox/state").json()["tasks"]]

    before = ids()
    r = sb.control("POST", "/_sandbox/scenario", json=scenario)
    assert r.status_code == 400, r.text
    assert needle in r.json()["message"]
    assert ids() == before and sb.state.scenario_name == "demo"
    assert len(_open_types(api)) == 6


def test_add_task(sb: SandboxServer, api: httpx.Client) -> None:
    r = sb.control("POST", "/_sandbox/tasks", json={"type": "SelectQuoteWinner", "caseCreditorReference": "INV-1005"})
    assert r.status_code == 201
    task = r.json()
    assert task["caseId"] == case_id_for("INV-1005") and task["leadId"] and task["action"] is None
    assert _open_types(api, "INV-1005") == ["SelectQuoteWinner"]
    assert api.get("/tasks", params={"PageSize": 100}).json()["tasks"][-1]["id"] == task["id"]
    # explicit id, future type, bad action override, scheduled solve
    tid = str(uuid.uuid4())
    body = {
        "id": tid,
        "type": "FutureThing",
        "caseId": case_id_for("INV-1001"),
        "action": {"method": "POST", "path": "/cases/not-a-guid/chats"},
        "solveAfterSeconds": 10,
    }
    assert sb.control("POST", "/_sandbox/tasks", json=body).json()["action"]["path"] == "/cases/not-a-guid/chats"
    assert sb.control("POST", "/_sandbox/tasks", json=body).status_code == 409
    assert "FutureThing" in _open_types(api, "INV-1001")
    sb.state.advance_clock(10)
    assert "FutureThing" not in _open_types(api, "INV-1001")


@pytest.mark.parametrize(
    "body",
    [{}, {"type": "ReplyToChat"}, {"type": "Generic", "caseId": str(uuid.uuid4())}, {"type": "X", "status": "Done"}],
)
def test_add_task_validation(sb: SandboxServer, body: dict) -> None:
    assert sb.control("POST", "/_sandbox/tasks", json=body).status_code == 400


def test_solve_now_and_later(sb: SandboxServer, api: httpx.Client) -> None:
    review = next(t for t in sb.state.list_tasks("Open") if t["type"] == "ReviewPartner")
    solved = sb.control("POST", f"/_sandbox/tasks/{review['id']}/solve").json()
    assert solved["status"] == "Solved" and solved["dateSolved"]
    other = next(t for t in sb.state.list_tasks("Open") if t["type"] == "CaseValidationNeedsInfo")
    pending = sb.control("POST", f"/_sandbox/tasks/{other['id']}/solve", json={"afterSeconds": 3}).json()
    assert pending["status"] == "Open" and pending["_solvesInSeconds"] == pytest.approx(3, abs=0.5)
    sb.control("POST", "/_sandbox/clock/advance", json={"seconds": 3})
    assert _open_types(api, "INV-1004") == []
    assert sb.control("POST", f"/_sandbox/tasks/{uuid.uuid4()}/solve").status_code == 404
    assert sb.control("POST", "/_sandbox/tasks/nope/solve").status_code == 400


def test_partner_message_with_task(sb: SandboxServer, api: httpx.Client) -> None:
    cid = case_id_for("INV-1005")
    r = sb.control("POST", f"/_sandbox/cases/{cid}/partner-message", json={"message": "Ping?", "task": "ReplyToChat"})
    assert r.status_code == 201 and r.json()["chat"]["role"] == 0 and r.json()["task"]["type"] == "ReplyToChat"
    assert api.get(f"/cases/{cid}/chats").json()[-1]["message"] == "Ping?"
    assert _open_types(api, "INV-1005") == ["ReplyToChat"]
    api.post(f"/cases/{cid}/chats", json={"message": "Pong", "userEmail": "ops@example.com"})
    assert _open_types(api, "INV-1005") == []
    assert (
        sb.control("POST", f"/_sandbox/cases/{uuid.uuid4()}/partner-message", json={"message": "x"}).status_code == 404
    )
    assert sb.control("POST", f"/_sandbox/cases/{cid}/partner-message", json={}).status_code == 400


def test_event_after_requests_makes_drift_between_pages(sb: SandboxServer, api: httpx.Client) -> None:
    sb.reset("large:30")
    first_ids = [t["id"] for t in sb.state.list_tasks("Open")[:3]]
    for tid in first_ids:
        ev = {"at": {"afterRequests": {"method": "GET", "path": "/tasks", "count": 1}},
              "action": {"type": "solveTask", "taskId": tid}}  # fmt: skip
        assert sb.control("POST", "/_sandbox/events", json=ev).status_code == 201
    page1 = api.get("/tasks", params={"PageSize": 10}).json()
    assert [t["id"] for t in page1["tasks"][:3]] == first_ids  # answered before the event fired
    page2 = api.get("/tasks", params={"PageSize": 10, "Page": 2}).json()
    assert page2["page"]["totalResults"] == 27  # drift: three tasks vanished, page 2 shifted
    events = sb.control("GET", "/_sandbox/events").json()
    assert all(e["fired"] and e["error"] is None for e in events)


def test_event_after_seconds_add_task_and_partner_message(sb: SandboxServer, api: httpx.Client) -> None:
    add = {"at": {"afterSeconds": 2}, "action": {"type": "addTask", "task": {"type": "SignContract"}}}
    msg = {"at": {"afterSeconds": 4}, "action": {"type": "partnerMessage", "caseCreditorReference": "INV-1001",
           "message": "New question", "task": "MoreInfoNeeded"}}  # fmt: skip
    assert sb.control("POST", "/_sandbox/events", json=add).status_code == 201
    assert sb.control("POST", "/_sandbox/events", json=msg).status_code == 201
    assert "SignContract" not in _open_types(api)
    sb.state.advance_clock(2.5)
    assert "SignContract" in _open_types(api)
    assert _open_types(api, "INV-1001") == []
    sb.state.advance_clock(2)
    assert _open_types(api, "INV-1001") == ["MoreInfoNeeded"]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"at": {"afterSeconds": 1}},
        {"at": {}, "action": {"type": "solveTask", "taskId": str(uuid.uuid4())}},
        {
            "at": {"afterSeconds": 1, "afterRequests": {"path": "/tasks"}},
            "action": {"type": "solveTask", "taskId": "x"},
        },
        {"at": {"afterRequests": {"path": "tasks"}}, "action": {"type": "solveTask", "taskId": str(uuid.uuid4())}},
        {"at": {"afterSeconds": 1}, "action": {"type": "explode"}},
        {"at": {"afterSeconds": 1}, "action": {"type": "addTask", "task": {"type": "ReplyToChat"}}},
        {"at": {"afterSeconds": 1}, "action": {"type": "partnerMessage", "caseId": str(uuid.uuid4()), "message": "x"}},
    ],
)
def test_event_validation(sb: SandboxServer, event: dict) -> None:
    assert sb.control("POST", "/_sandbox/events", json=event).status_code == 400


def test_config_partial_update_and_validation(sb: SandboxServer) -> None:
    assert sb.control("GET", "/_sandbox/config").json() == {
        "chatSolveDelaySeconds": 0.0,
        "rateLimitPerMinute": None,
        "rateLimitPerHour": None,
        "rateLimitPerDay": None,
        "rateLimitDayReset": "midnight-utc",
        "retryAfterHeader": False,
        "encodedSlash": "decode",
    }
    assert sb.control("PUT", "/_sandbox/config", json={"retryAfterHeader": True}).json()["retryAfterHeader"] is True
    bad_patches = ({"rateLimitPerMinute": 0}, {"chatSolveDelaySeconds": -1}, {"nope": 1}, {"retryAfterHeader": "yes"},
                   {"encodedSlash": "drop"}, [])  # fmt: skip
    for bad in bad_patches:
        assert sb.control("PUT", "/_sandbox/config", json=bad).status_code == 400
    assert sb.control("GET", "/_sandbox/config").json()["retryAfterHeader"] is True


def test_request_log_and_counters(sb: SandboxServer, api: httpx.Client) -> None:
    api.get("/tasks", params={"status": "Open"})
    api.get(f"/cases/{case_id_for('INV-1002')}/tasks")
    api.get(f"/cases/{case_id_for('INV-1003')}/tasks")
    sb.control("GET", "/_sandbox/state")  # control calls are not logged
    log = sb.control("GET", "/_sandbox/requests").json()
    assert [(r["seq"], r["method"], r["status"]) for r in log] == [(1, "GET", 200), (2, "GET", 200), (3, "GET", 200)]
    assert log[0]["query"] == "status=Open" and log[0]["fault"] is None
    assert set(log[0]) == {"seq", "time", "method", "path", "query", "status", "fault"}
    assert sb.api_key not in json.dumps(log)
    assert sb.control("GET", "/_sandbox/counters").json() == {"GET /tasks": 1, "GET /cases/{id}/tasks": 2, "total": 3}
    sb.control("DELETE", "/_sandbox/requests")
    assert sb.control("GET", "/_sandbox/counters").json() == {"total": 0}


def test_state_dump(sb: SandboxServer) -> None:
    dump = sb.control("GET", "/_sandbox/state").json()
    assert {c["creditorReference"] for c in dump["cases"]} == {f"INV-100{i}" for i in range(1, 6)}
    assert len(dump["tasks"]) == 6 and dump["users"][0]["email"] == "ops@example.com"


def test_malformed_huge_and_unknown_requests_keep_server_serving(sb: SandboxServer, api: httpx.Client) -> None:
    with httpx.Client(base_url=sb.url, timeout=10.0) as raw:
        r = raw.post("/_sandbox/scenario", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "malformed" in r.json()["message"]
        assert raw.post("/_sandbox/scenario", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
        r = raw.post("/_sandbox/explode")
        assert r.status_code == 404 and "POST /_sandbox/reset" in r.json()["operations"]
        assert raw.delete("/_sandbox/reset").status_code == 405
        huge = b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'
        r = raw.post("/_sandbox/scenario", content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        cid = case_id_for("INV-1002")
        r = api.post(f"/cases/{cid}/chats", content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
    assert api.get("/tasks").status_code == 200
    assert len(_open_types(api, "INV-1002")) == 1


def test_concurrent_clients_and_control_changes(sb: SandboxServer) -> None:
    """The store's lock keeps API reads consistent while tests mutate it from other threads."""
    from concurrent.futures import ThreadPoolExecutor

    sb.reset("large:300")

    def reader(_: int) -> set[int]:
        with sb.client(timeout=10.0) as client:
            return {client.get("/tasks", params={"PageSize": 100}).status_code for _ in range(15)}

    def writer(_: int) -> set[int]:
        codes = set()
        for _ in range(15):
            codes.add(sb.control("POST", "/_sandbox/tasks", json={"type": "SignContract"}).status_code)
        return codes

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(reader, range(6))) + list(pool.map(writer, range(2)))
    assert set().union(*results) == {200, 201}
    assert sb.state.tasks_page("Open", [], 1, 1)["page"]["totalResults"] == 330
