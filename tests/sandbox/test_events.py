"""Churn for paging tests: recurring events ("every N page reads, one task created and one solved")."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer


def _every(count: int, action: dict, **extra: object) -> dict:
    return {"at": {"everyRequests": {"method": "GET", "path": "/tasks", "count": count, **extra}}, "action": action}


ADD = {"type": "addTask", "task": {"type": "ReplyToChat", "caseCreditorReference": "LRG-000001"}}


def _read_pages(api: httpx.Client, reads: int) -> None:
    for i in range(reads):
        assert api.get("/tasks", params={"Page": i % 3 + 1, "PageSize": 100}).status_code == 200


def test_one_created_and_one_solved_every_n_page_reads(sb: SandboxServer, api: httpx.Client) -> None:
    sb.reset("large:300")
    oldest = [t["id"] for t in sb.state.list_tasks("Open")[:2]]
    assert sb.control("POST", "/events", json=_every(25, ADD)).status_code == 201
    assert (
        sb.control("POST", "/events", json=_every(25, {"type": "solveOpenTask", "pick": "oldest"})).status_code == 201
    )
    _read_pages(api, 24)
    assert sb.state.tasks_page("Open", [], 1, 1)["page"]["totalResults"] == 300
    _read_pages(api, 26)  # 50 reads: each event fired twice
    events = sb.control("GET", "/events").json()
    assert [(e["fired"], e["firedCount"], e["seen"], e["error"]) for e in events] == [(True, 2, 50, None)] * 2
    solved = {t["id"] for t in sb.state.list_tasks("Solved")}
    assert solved == set(oldest)
    opened = sb.state.list_tasks("Open")
    assert len(opened) == 300 and [t["type"] for t in opened[-2:]] == ["ReplyToChat", "ReplyToChat"]
    assert len({t["id"] for t in opened}) == 300
    _read_pages(api, 1)
    sb.control("GET", "/counters")  # control reads count for nothing
    assert [e["seen"] for e in sb.control("GET", "/events").json()] == [51, 51]


def _random_solves(sb: SandboxServer, api: httpx.Client, seed: int) -> list[str]:
    sb.reset("large:200")
    event = _every(1, {"type": "solveOpenTask", "pick": "random", "seed": seed, "types": ["ReplyToChat"]})
    assert sb.control("POST", "/events", json=event).status_code == 201
    _read_pages(api, 5)
    solved = [t for t in sb.state.list_tasks("Solved")]
    assert len(solved) == 5 and {t["type"] for t in solved} == {"ReplyToChat"}
    return sorted(t["id"] for t in solved)


def test_random_pick_is_seeded(sb: SandboxServer, api: httpx.Client) -> None:
    assert _random_solves(sb, api, 7) == _random_solves(sb, api, 7)
    assert _random_solves(sb, api, 7) != _random_solves(sb, api, 8)


def test_newest_pick_times_limit_and_template_paths(sb: SandboxServer, api: httpx.Client) -> None:
    sb.reset("large:50")
    newest = sb.state.list_tasks("Open")[-1]["id"]
    event = {
        "id": "churn",
        "at": {"everyRequests": {"method": None, "path": "/cases/{id}/tasks", "count": 2, "times": 1}},
        "action": {"type": "solveOpenTask", "pick": "newest"},
    }
    assert sb.control("POST", "/events", json=event).json()["id"] == "churn"
    case_id = sb.state.case_id("LRG-000001")
    for _ in range(6):
        api.get(f"/cases/{case_id}/tasks")
    [state] = sb.control("GET", "/events").json()
    assert state["firedCount"] == 1 and state["error"] is None
    assert [t["id"] for t in sb.state.list_tasks("Solved")] == [newest]


def test_nothing_left_to_solve_is_recorded_not_raised(sb: SandboxServer, api: httpx.Client) -> None:
    sb.reset("empty")
    sb.control("POST", "/events", json=_every(1, {"type": "solveOpenTask"}))
    assert api.get("/tasks").status_code == 200
    assert sb.control("GET", "/events").json()[0]["error"] == "no open task to solve"


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        (_every(0, ADD), "event.at.everyRequests.count: must be >= 1"),
        (_every(2, ADD, times=0), "event.at.everyRequests.times: must be >= 1"),
        (_every(2, {"type": "solveOpenTask", "pick": "middle"}), "event.action.pick"),
        (_every(2, {"type": "solveOpenTask", "types": ["Not A Type"]}), "event.action.types[0]"),
        (_every(2, {"type": "explode"}), "type must be one of ['solveTask', 'solveOpenTask', 'addTask'"),
        (_every(2, {"type": "solveOpenTask", "colour": 1}), "unknown field(s) ['colour']; allowed:"),
        (
            {"at": {"afterRequests": {"path": "/tasks"}, "everyRequests": {"path": "/tasks"}}, "action": ADD},
            "exactly one",
        ),
    ],
)
def test_event_errors_name_the_field(sb: SandboxServer, event: dict, needle: str) -> None:
    r = sb.control("POST", "/events", json=event)
    assert r.status_code == 400 and needle in r.json()["message"], r.text
