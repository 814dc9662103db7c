"""Queues shaped the way the real API may serve them: references with '/', the case listing, lead tasks,
spec-allowed odd task JSON, and cases that disappear while their tasks are still listed."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for

ODD_REFERENCES = ["2024/0001", "2024/01/0001", "50%/x", "A+B", "with space", "ÆØÅ-1", "a%2Fb", "%", "~x!*'()"]


def _by_cref(api: httpx.Client, ref: str) -> httpx.Response:
    # Percent-encoded as one path segment, as the hook sends it (quote(..., safe="")).
    return api.get("/cases/by-creditor-reference/" + quote(ref, safe=""))


@pytest.fixture
def odd_world(sb: SandboxServer) -> SandboxServer:
    sb.reset({"name": "odd", "cases": [{"creditorReference": ref} for ref in ODD_REFERENCES]})
    return sb


# ------------------------------------------------------------------------------------ references with '/'


@pytest.mark.parametrize("ref", ODD_REFERENCES)
def test_lookup_by_any_creditor_reference(odd_world: SandboxServer, api: httpx.Client, ref: str) -> None:
    r = _by_cref(api, ref)
    assert r.status_code == 200, r.text
    assert r.json()["creditorReference"] == ref and r.json()["id"] == case_id_for(ref)


def test_unencoded_slash_is_another_path(odd_world: SandboxServer, api: httpx.Client) -> None:
    r = api.get("/cases/by-creditor-reference/2024/0001")  # two segments: no such route, as on ASP.NET
    assert r.status_code == 404 and r.content == b""
    assert api.get("/cases/by-creditor-reference/").status_code == 404


def test_keep_mode_answers_404_like_aspnet_core(odd_world: SandboxServer, api: httpx.Client) -> None:
    """ASP.NET Core leaves %2F encoded in the route value, so the real API may not find such a reference."""
    assert odd_world.control("PUT", "/config", json={"encodedSlash": "keep"}).json()["encodedSlash"] == "keep"
    r = _by_cref(api, "2024/0001")
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    assert "2024%2F0001" in r.json()["message"]
    for ref in ("A+B", "with space", "ÆØÅ-1", "a%2Fb", "%"):  # only the slash is kept encoded
        assert _by_cref(api, ref).status_code == 200, ref


def test_keep_mode_from_the_constructor() -> None:
    with SandboxServer(scenario={"cases": [{"creditorReference": "2024/7"}]}, encoded_slash="keep") as sb:
        assert sb.control("GET", "/config").json()["encodedSlash"] == "keep"
        with sb.client() as api:
            assert _by_cref(api, "2024/7").status_code == 404
    with pytest.raises(ValueError, match="encodedSlash"):
        SandboxServer(scenario="empty", encoded_slash="maybe")


def test_the_hook_finds_a_reference_with_a_slash(odd_world: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_debitura.hooks.debitura import DebituraHook

    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", odd_world.conn_json())
    with DebituraHook() as hook:
        assert hook.find_case(creditor_reference="2024/0001").id == case_id_for("2024/0001")


# ------------------------------------------------------------------------------------ GET /cases


def test_case_listing_pages_sorts_and_filters(sb: SandboxServer, api: httpx.Client) -> None:
    body = api.get("/cases").json()
    assert set(body) == {"page", "cases"}
    assert body["page"] == {"totalResults": 5, "pageSize": 10, "currentPage": 1, "responseCount": 5, "totalPages": 1}
    page2 = api.get("/cases", params={"PageSize": 2, "Page": 2, "Sort": "GrossAmount:desc"}).json()
    amounts = [c["grossAmount"] for c in api.get("/cases", params={"Sort": "GrossAmount:desc"}).json()["cases"]]
    assert amounts == sorted(amounts, reverse=True)
    assert [c["grossAmount"] for c in page2["cases"]] == amounts[2:4] and page2["page"]["totalPages"] == 3
    wanted = [case_id_for("INV-1002"), case_id_for("INV-1004")]
    for params in ({"Ids": wanted}, {"Ids": ",".join(wanted)}, {"ids": wanted}):
        assert sorted(c["id"] for c in api.get("/cases", params=params).json()["cases"]) == sorted(wanted)
    active = {c["creditorReference"] for c in api.get("/cases", params={"Statuses": "Active"}).json()["cases"]}
    assert active == {"INV-1001", "INV-1002", "INV-1005"}
    more_info = [
        {"Statuses": "NeedsAdditionalDetails"},
        {"Statuses": "more info required"},
        {"statuses": "MORE INFO REQUIRED"},
    ]
    for params in more_info:
        assert [c["creditorReference"] for c in api.get("/cases", params=params).json()["cases"]] == ["INV-1003"]
    assert api.get("/cases", params={"Statuses": "Active,PendingVerification"}).json()["page"]["totalResults"] == 4
    assert api.get("/cases", params={"Sort": "Colour:desc"}).status_code == 200  # unknown sort fields are ignored
    latest = api.get("/cases", params={"Sort": "DateCreated:desc", "PageSize": 100}).json()["cases"]
    assert [c["dateCreated"] for c in latest] == sorted((c["dateCreated"] for c in latest), reverse=True)


@pytest.mark.parametrize(
    "params", [{"PageSize": 101}, {"PageSize": 0}, {"Page": 0}, {"Page": "x"}, {"Ids": "nope"}, {"Statuses": "Nope"}]
)
def test_case_listing_bad_queries_are_400(api: httpx.Client, params: dict) -> None:
    r = api.get("/cases", params=params)
    assert r.status_code == 400 and r.json()["businessErrors"][0]["type"] == r.json()["error"]


def test_case_listing_needs_the_key(anon: httpx.Client) -> None:
    assert anon.get("/cases").status_code == 401


# ------------------------------------------------------------------------------------ lead tasks


def test_lead_task_without_a_case_from_the_control_plane(sb: SandboxServer, api: httpx.Client) -> None:
    lead = str(uuid.uuid4())
    r = sb.control("POST", "/tasks", json={"type": "SelectQuoteWinner", "leadId": lead})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["caseId"] is None and task["caseReference"] is None and task["leadId"] == lead
    assert task["solutionUrl"].startswith("https://app.debitura.com/") and task["action"] is None
    listed = {t["id"]: t for t in api.get("/tasks", params={"PageSize": 100}).json()["tasks"]}
    assert listed[task["id"]] == task  # account-wide
    for ref in ("INV-1001", "INV-1002", "INV-1003", "INV-1004", "INV-1005"):  # never in a case's listing
        assert task["id"] not in {t["id"] for t in api.get(f"/cases/{case_id_for(ref)}/tasks").json()}


def test_lead_task_in_a_scenario(sb: SandboxServer, api: httpx.Client) -> None:
    sb.reset({"tasks": [{"type": "SelectQuoteWinner"}, {"type": "SelectQuoteWinner", "leadId": str(uuid.uuid4())}]})
    tasks = api.get("/tasks").json()["tasks"]
    assert [t["caseId"] for t in tasks] == [None, None] and all(t["leadId"] for t in tasks)
    assert len({t["leadId"] for t in tasks}) == 2


# ------------------------------------------------------------------------------------ odd-but-valid JSON


def test_wire_overrides_render_spec_allowed_odd_shapes(sb: SandboxServer, api: httpx.Client) -> None:
    odd = {"action": {"method": None, "path": None}, "status": None, "type": None, "caseId": None, "typeLabel": None}
    r = sb.control(
        "POST",
        "/tasks",
        json={
            "type": "ReplyToChat",
            "caseCreditorReference": "INV-1005",
            "wire": odd,
            "wireOmit": ["description", "deadline"],
        },
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert {k: task[k] for k in odd} == odd and "description" not in task and "deadline" not in task
    # Filters and membership follow the task itself (an open ReplyToChat on INV-1005), only the JSON is odd.
    assert task in api.get("/tasks", params={"PageSize": 100}).json()["tasks"]
    assert task in api.get("/tasks", params={"type": "ReplyToChat"}).json()["tasks"]
    assert api.get(f"/cases/{case_id_for('INV-1005')}/tasks").json() == [task]


def test_wire_serves_records_a_client_cannot_understand(sb: SandboxServer, api: httpx.Client) -> None:
    sb.reset(
        {
            "cases": [{"creditorReference": "C-1"}],
            "tasks": [
                {"type": "FutureKind", "wireOmit": ["id"]},
                {
                    "type": "Generic",
                    "caseCreditorReference": "C-1",
                    "wire": {"dateCreated": "yesterday-ish", "extra": [1]},
                },
                {"type": "ReviewPartner", "caseCreditorReference": "C-1"},
            ],
        }
    )
    tasks = api.get("/tasks").json()["tasks"]
    assert "id" not in tasks[0] and tasks[0]["type"] == "FutureKind"
    assert tasks[1]["dateCreated"] == "yesterday-ish" and tasks[1]["extra"] == [1]
    assert tasks[2]["type"] == "ReviewPartner" and tasks[2]["dateCreated"].endswith("Z")


def test_wire_must_be_an_object(sb: SandboxServer) -> None:
    r = sb.control("POST", "/tasks", json={"type": "Generic", "caseCreditorReference": "INV-1001", "wire": [1]})
    assert r.status_code == 400 and "task.wire" in r.json()["message"]


# ------------------------------------------------------------------------------------ a case disappears


@pytest.mark.parametrize("how", ["delete", "merge"])
def test_case_gone_while_its_task_is_listed(sb: SandboxServer, api: httpx.Client, how: str) -> None:
    cid = case_id_for("INV-1002")
    [reply] = api.get(f"/cases/{cid}/tasks").json()
    r = sb.control("POST", f"/cases/{cid}/{how}")
    assert r.status_code == 200 and r.json()["removed"] == f"{how}d", r.text
    for path in (
        f"/cases/{cid}",
        f"/cases/{cid}/chats",
        f"/cases/{cid}/tasks",
        "/cases/by-creditor-reference/INV-1002",
    ):
        got = api.get(path)
        assert got.status_code == 404 and got.json()["error"] == "NotFound", path
    posted = api.post(f"/cases/{cid}/chats", json={"message": "Hello?", "userEmail": "ops@example.com"})
    assert posted.status_code == 404
    assert reply in api.get("/tasks", params={"PageSize": 100}).json()["tasks"]  # still listed, still open
    assert cid not in {c["id"] for c in api.get("/cases", params={"PageSize": 100}).json()["cases"]}
    assert sb.control("POST", f"/cases/{cid}/{how}").status_code == 404  # already gone
    assert api.get(f"/cases/{case_id_for('INV-1003')}/chats").status_code == 200  # the others are untouched


def test_case_gone_tasks_leave_the_listing_after_n_seconds(sb: SandboxServer, api: httpx.Client) -> None:
    cid = case_id_for("INV-1003")
    assert sb.control("POST", f"/cases/{cid}/delete", json={"keepListingSeconds": 30}).status_code == 200

    def listed() -> set[str]:
        return {t["caseReference"] for t in api.get("/tasks", params={"PageSize": 100}).json()["tasks"]}

    assert "INV-1003" in listed()
    sb.state.advance_clock(31)
    assert "INV-1003" not in listed() and "INV-1002" in listed()
    for body in ({"keepListingSeconds": -1}, {"keepListingSeconds": "soon"}, {"colour": 1}):
        assert sb.control("POST", f"/cases/{case_id_for('INV-1004')}/delete", json=body).status_code == 400
    assert sb.control("POST", "/cases/not-a-guid/delete").status_code == 400
