"""Human handoff without a metadata DB: the request's content, the Debitura check (against the sandbox, requests
counted), the operator's decisions on each answer, and the trigger's wait. Airflow's HITL calls (which go through
the task supervisor) are replaced by an in-memory request; everything Debitura-side is the real sandbox.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hitl import compat as hitl_compat
from airflow_provider_debitura.hitl.handoff import HandoffReads, handoff_tasks
from airflow_provider_debitura.hitl.markdown import escape_markdown
from airflow_provider_debitura.hitl.request import default_subject, handoff_body

pytestmark = [
    pytest.mark.hitl,
    pytest.mark.skipif(
        not hitl_compat.HITL_AVAILABLE, reason=f"Human-in-the-loop: {hitl_compat.HITL_UNAVAILABLE_REASON}"
    ),
]

CASE_TASKS = "GET /cases/{id}/tasks"


def _counters(sandbox) -> dict[str, int]:
    return sandbox.control("GET", "/counters").json()


def _open(sandbox, type_name: str) -> dict[str, Any]:
    [task] = [t for t in sandbox.state.list_tasks("Open") if t["type"] == type_name]
    return task


class FakeRequest:
    """Airflow's side of one HITL request, in memory: what upsert/read/record would do through the supervisor."""

    def __init__(self) -> None:
        self.upserts: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None
        self.recorded: list[dict[str, Any]] = []
        self.kept: dict[Any, tuple[str, str | None]] = {}

    def upsert(self, ti_id, **kwargs) -> tuple[str, str | None]:
        self.upserts.append(kwargs)
        self.response = None  # re-opening clears an earlier answer, as Airflow's upsert does ...
        return self.kept.setdefault(ti_id, (kwargs["subject"], kwargs["body"]))  # ... and keeps the first text

    def answer(self, options: list[str], params_input: dict | None = None, user: str | None = "Alice") -> None:
        self.response = {
            "chosen_options": options,
            "params_input": params_input or {},
            "responded_at": datetime.now(timezone.utc),
            "responded_by_user": None if user is None else SimpleNamespace(id=user.lower(), name=user),
        }

    def read(self, ti_id) -> SimpleNamespace:
        response = self.response or {}
        return SimpleNamespace(
            response_received=bool(response),
            chosen_options=response.get("chosen_options"),
            params_input=response.get("params_input", {}),
            responded_at=response.get("responded_at"),
            responded_by_user=response.get("responded_by_user"),
        )

    def record(self, ti_id, *, chosen_options, params_input) -> SimpleNamespace:
        if self.response:
            raise RuntimeError("409 Conflict: already answered")
        self.recorded.append({"chosen_options": chosen_options, "params_input": params_input})
        self.answer(chosen_options, params_input, user=None)
        return self.read(ti_id)


@pytest.fixture
def request_(monkeypatch) -> FakeRequest:
    fake = FakeRequest()
    monkeypatch.setattr(hitl_compat, "upsert_request", fake.upsert)
    monkeypatch.setattr(hitl_compat, "read_response", fake.read)
    monkeypatch.setattr(hitl_compat, "record_response", fake.record)
    return fake


def _context() -> dict[str, Any]:
    return {"task_instance": SimpleNamespace(id=uuid.uuid4())}


def _operator(**kwargs):
    from airflow_provider_debitura.operators.human_handoff import DebituraHumanHandoffOperator

    kwargs.setdefault("task_id", "handoff")
    return DebituraHumanHandoffOperator(**kwargs)


def _deferred(op, context):
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    return deferred.value


# ------------------------------------------------------------------------------------------ input and content


def test_tasks_come_as_a_dict_a_list_or_rendered_text():
    task = {"id": "T1", "type": "SignContract", "solutionUrl": "https://app.debitura.com/x", "extra": 1}
    assert handoff_tasks("debitura_tasks", task)[0]["solutionUrl"] == "https://app.debitura.com/x"
    assert [t["id"] for t in handoff_tasks("debitura_tasks", [task, {**task, "id": "T2"}, task])] == ["T1", "T2"]
    assert handoff_tasks("debitura_tasks", '{"id": "T1"}')[0]["id"] == "T1"
    assert handoff_tasks("debitura_tasks", "[{'id': 'T1', 'caseId': None}]")[0]["caseId"] is None
    # the reply operator's needs_human entries work as they are
    needs_human = {"task_id": "T3", "type": "ReviewPartner", "solution_url": "https://app.debitura.com/y"}
    assert handoff_tasks("debitura_tasks", needs_human)[0] | {} == {
        **dict.fromkeys(("typeLabel", "title", "description", "deadline", "caseId", "caseReference", "leadId")),
        "id": "T3",
        "type": "ReviewPartner",
        "solutionUrl": "https://app.debitura.com/y",
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([], "non-empty list"),
        ({"type": "SignContract"}, "has no task 'id'"),
        (["T1"], "is not a task dict"),
        ("not a task", "is text, not a task"),
        (42, "must be a Debitura task"),
    ],
)
def test_bad_tasks_name_the_parameter_and_the_fix(value, says):
    with pytest.raises(DebituraConfigError, match="debitura_tasks") as err:
        handoff_tasks("debitura_tasks", value)
    assert says in str(err.value)


def test_body_shows_each_task_with_a_link_and_escapes_debitura_text():
    tasks = handoff_tasks(
        "t",
        [
            {
                "id": "T1",
                "type": "SignContract",
                "typeLabel": "Sign contract",
                "title": "Sign [here](javascript:alert(1)) <b>now</b>",
                "description": "Needs *two* signatures",
                "deadline": "2026-12-01T09:30:00",
                "solutionUrl": "https://app.debitura.com/creditor/contracts?task=T1",
            },
            {"id": "T2", "type": "Generic", "caseId": "C", "caseReference": "INV-9", "solutionUrl": "javascript:x"},
        ],
    )
    body = handoff_body(tasks, intro="Please handle **today**.", done="Done", cant_do="Can't do")
    state = "**2 tasks open in Debitura** when this was asked. This request opens again after **Done** only while"
    assert body.startswith(f"Please handle **today**.\n\n{state}") and "Already solved" not in body
    assert "### 1. Sign \\[here\\]\\(javascript\\:alert\\(1\\)\\) \\<b\\>now\\<\\/b\\>" in body
    assert "Needs \\*two\\* signatures" in body and "deadline **2026-12-01 09:30 UTC**" in body
    assert "**[Open in Debitura](https://app.debitura.com/creditor/contracts?task=T1)**" in body
    assert "[Open in Debitura](javascript" not in body and "(not a clean https URL): javascript\\:x" in body
    assert "### 2. Generic" in body and "case INV\\-9" in body
    assert default_subject(tasks) == "2 Debitura tasks"
    assert default_subject(tasks[:1]).startswith("Sign contract: Sign [here]")
    assert default_subject(tasks[1:]) == "Generic: T2 (case INV-9)"


# ---------------------------------------------------------------------------------------------- the check


def test_check_costs_one_request_per_case(debitura_conn):
    from airflow_provider_debitura.hooks.debitura import DebituraHook

    sandbox = debitura_conn
    review, validation = _open(sandbox, "ReviewPartner"), _open(sandbox, "CaseValidationNeedsInfo")
    tasks = handoff_tasks("t", [review, validation])  # both on INV-1004
    with DebituraHook() as hook:
        assert len(hook.exchange(HandoffReads(tasks)).still_open) == 2
        sandbox.control("POST", f"/tasks/{review['id']}/solve")
        check = hook.exchange(HandoffReads(tasks))
    assert [t["id"] for t in check.still_open] == [validation["id"]] and not check.cleared
    assert _counters(sandbox)[CASE_TASKS] == 2 and "GET /tasks" not in _counters(sandbox)


def test_check_of_caseless_tasks_confirms_before_calling_one_gone(debitura_conn):
    from airflow_provider_debitura.hooks.debitura import DebituraHook

    sandbox = debitura_conn
    sign = sandbox.control("POST", "/tasks", json={"type": "SignContract"}).json()
    tasks = handoff_tasks("t", sign)
    with DebituraHook() as hook:
        assert not hook.exchange(HandoffReads(tasks)).cleared
        assert _counters(sandbox)["GET /tasks"] == 1  # present: one filtered page is proof enough
        sandbox.control("POST", f"/tasks/{sign['id']}/solve")
        assert hook.exchange(HandoffReads(tasks)).cleared
    assert _counters(sandbox)["GET /tasks"] == 2  # one page is one snapshot: no confirming pass needed


def test_check_of_caseless_tasks_on_a_multi_page_listing_proves_a_gone_task(debitura_conn):
    from airflow_provider_debitura.hooks.debitura import DebituraHook

    sandbox = debitura_conn
    signs = [sandbox.control("POST", "/tasks", json={"type": "SignContract"}).json() for _ in range(102)]
    sandbox.control("POST", f"/tasks/{signs[0]['id']}/solve")  # 101 open SignContract tasks: two pages
    sandbox.control("DELETE", "/requests")
    with DebituraHook() as hook:
        assert hook.exchange(HandoffReads(handoff_tasks("t", signs[0]))).cleared
    # One listing that returns every task open while it read (hooks.paging): 2 pages + 1 first read of page 1.
    assert _counters(sandbox)["GET /tasks"] == 3


def test_a_case_that_is_gone_is_reported_as_gone_never_as_solved(debitura_conn):
    from airflow_provider_debitura.hooks.debitura import DebituraHook

    case_id = str(uuid.uuid4())
    tasks = handoff_tasks("t", {"id": str(uuid.uuid4()), "type": "Generic", "caseId": case_id})
    with DebituraHook() as hook:
        check = hook.exchange(HandoffReads(tasks))
    assert not check.cleared and check.gone == () and check.still_open == ()
    assert check.missing_cases == (case_id,) and [t["id"] for t in check.missing] == [tasks[0]["id"]]
    assert "1 on a case that is gone" in check.describe() and "were not solved" in check.describe()


# ------------------------------------------------------------------------------------------- the operator


def test_constructor_refuses_what_it_sets_itself_and_bad_modes():
    with pytest.raises(DebituraConfigError, match="sets options itself"):
        _operator(debitura_tasks={"id": "T"}, options=["Yes"])
    with pytest.raises(DebituraConfigError, match="on_still_open='retry'"):
        _operator(debitura_tasks={"id": "T"}, on_still_open="retry")
    with pytest.raises(DebituraConfigError, match="poll_interval"):
        _operator(debitura_tasks={"id": "T"}, poll_interval=0)
    with pytest.raises(ValueError, match="subset of options"):
        _operator(debitura_tasks={"id": "T"}, defaults="Maybe")


def test_nothing_is_asked_when_debitura_already_shows_it_solved(debitura_conn, request_):
    review = _open(debitura_conn, "ReviewPartner")
    debitura_conn.control("POST", f"/tasks/{review['id']}/solve")
    report = _operator(debitura_tasks=review).execute(_context())
    assert report["outcome"] == "already_cleared" and report["rounds"] == 0 and request_.upserts == []


def test_execute_opens_the_request_and_defers_to_the_handoff_trigger(debitura_conn, request_):
    from airflow_provider_debitura.triggers.human_handoff import DebituraHandoffTrigger

    review = _open(debitura_conn, "ReviewPartner")
    op = _operator(
        debitura_tasks=[review],
        assigned_users={"id": "alice", "name": "Alice"},
        response_timeout=timedelta(hours=4),
        poll_interval=120,
    )
    deferred = _deferred(op, _context())
    [upsert] = request_.upserts
    assert upsert["options"] == ["Done", "Can't do"] and upsert["assigned_users"] == [{"id": "alice", "name": "Alice"}]
    assert upsert["subject"] == "Review partner: Review your collection partner (case INV-1004)"
    assert review["solutionUrl"] in upsert["body"] and upsert["params"]["note"]["schema"]["type"] == ["null", "string"]
    trigger = deferred.trigger
    assert isinstance(trigger, DebituraHandoffTrigger) and trigger.poll_interval == 120
    assert 4 * 3600 - 60 < trigger.timeout_at - datetime.now(timezone.utc).timestamp() <= 4 * 3600
    classpath, kwargs = trigger.serialize()
    assert classpath.endswith("DebituraHandoffTrigger") and DebituraHandoffTrigger(**kwargs).serialize() == (
        classpath,
        kwargs,
    )
    assert deferred.kwargs["rounds"] == 1 and deferred.method_name == "execute_complete"


def _event(options: list[str], *, note: str | None = None, user: str | None = "Alice", **extra) -> dict[str, Any]:
    return {
        "chosen_options": options,
        "params_input": {"note": note} if note else {},
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": None if user is None else {"id": user.lower(), "name": user},
        "timedout": user is None,
        **extra,
    }


def test_done_is_checked_against_debitura(debitura_conn, request_):
    review = _open(debitura_conn, "ReviewPartner")
    op = _operator(debitura_tasks=review)
    debitura_conn.control("POST", f"/tasks/{review['id']}/solve")
    report = op.execute_complete(_context(), _event(["Done"], note="Reviewed"), tasks=[review], rounds=1, checks=1)
    assert report["outcome"] == "done" and report["note"] == "Reviewed" and report["checks"] == 2
    assert report["responded_by"] == {"id": "alice", "name": "Alice"}


def test_done_while_still_open_asks_again_or_fails(debitura_conn, request_):
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_debitura.exceptions import DebituraHandoffStillOpenError

    review = handoff_tasks("t", _open(debitura_conn, "ReviewPartner"))
    op = _operator(debitura_tasks=review)
    with pytest.raises(TaskDeferred) as again:
        op.execute_complete(_context(), _event(["Done"]), tasks=review, rounds=1, checks=1)
    assert again.value.kwargs["rounds"] == 2
    [upsert] = request_.upserts  # re-opened (Airflow clears the answer and keeps the text, still true: it is open)
    assert "only while Debitura still shows this task open: if you see it again, it still is." in upsert["body"]

    strict = _operator(debitura_tasks=review, on_still_open="fail")
    with pytest.raises(DebituraHandoffStillOpenError, match="Alice answered 'Done', but Debitura still shows 1"):
        strict.execute_complete(_context(), _event(["Done"]), tasks=review)
    # a timeout default of "Done" is nobody's word: never asked again
    lenient = _operator(debitura_tasks=review, defaults="Done")
    with pytest.raises(DebituraHandoffStillOpenError, match="the timeout default answered 'Done'"):
        lenient.execute_complete(_context(), _event(["Done"], user=None), tasks=review)


def test_done_on_a_request_partly_solved_is_not_asked_again_with_its_old_list(debitura_conn, request_):
    """Issue 21 item 6. Airflow keeps a request's text as first written (on every re-open and every later try), so a
    request that lists a task solved since would say it is open: it is not re-opened; the rest is reported."""
    review = _open(debitura_conn, "ReviewPartner")
    [other] = [t for t in debitura_conn.state.list_tasks("Open") if t["caseId"] == review["caseId"] and t != review]
    tasks = handoff_tasks("t", [review, other])
    deferred = _deferred(_operator(debitura_tasks=tasks), _context())
    [asked] = request_.upserts
    assert asked["subject"] == "2 Debitura tasks on case INV-1004"
    assert "only while Debitura still shows every one of them open: if you see it again, they all are" in asked["body"]

    debitura_conn.control("POST", f"/tasks/{other['id']}/solve")  # one solved in the app, one not
    op = _operator(debitura_tasks=tasks)
    report = op.execute_complete(_context(), _event(["Done"], note="Did mine"), **deferred.kwargs)
    assert report["outcome"] == "partly_done" and report["still_open"] == [review["id"]]
    assert report["note"] == "Did mine" and report["rounds"] == 1 and report["checks"] == 2
    assert len(request_.upserts) == 1  # not re-opened: its list would show the solved task as open


def test_a_later_try_does_not_ask_with_an_earlier_tries_text_that_is_out_of_date(debitura_conn, request_):
    """A retry or a cleared task re-opens the request its first try wrote (Airflow moves it to each try's new id and
    keeps its text): asked again only while that text is exactly what Debitura shows."""
    from airflow_provider_debitura.exceptions import DebituraHandoffOutOfDateError

    review = _open(debitura_conn, "ReviewPartner")
    [other] = [t for t in debitura_conn.state.list_tasks("Open") if t["caseId"] == review["caseId"] and t != review]
    context = _context()  # one task instance: its request follows it to every try
    _deferred(_operator(debitura_tasks=[review, other]), context)
    _deferred(_operator(debitura_tasks=[review, other]), context)  # a later try, nothing changed: the text holds
    debitura_conn.control("POST", f"/tasks/{other['id']}/solve")
    with pytest.raises(DebituraHandoffOutOfDateError, match=f"Open in Debitura now: ReviewPartner {review['id']}"):
        _operator(debitura_tasks=[review, other]).execute(context)
    assert len(request_.upserts) == 3 and len(request_.kept) == 1


def test_a_task_already_solved_before_asking_is_named_as_solved_not_asked(debitura_conn, request_):
    review = _open(debitura_conn, "ReviewPartner")
    [other] = [t for t in debitura_conn.state.list_tasks("Open") if t["caseId"] == review["caseId"] and t != review]
    debitura_conn.control("POST", f"/tasks/{other['id']}/solve")
    deferred = _deferred(_operator(debitura_tasks=[review, other]), _context())
    [asked] = request_.upserts
    assert asked["subject"] == "Review partner: Review your collection partner (case INV-1004)"
    solved = escape_markdown(f"{other['typeLabel']}: {other['title']} (case INV-1004)")
    assert f"Already solved in Debitura, not asked: {solved}." in asked["body"]
    assert review["solutionUrl"] in asked["body"] and other["solutionUrl"] not in asked["body"]
    assert [t["id"] for t in deferred.trigger.tasks] == [review["id"]]


def test_cant_do_returns_or_fails(debitura_conn, request_):
    from airflow.providers.common.compat.sdk import AirflowFailException

    review = handoff_tasks("t", _open(debitura_conn, "ReviewPartner"))
    report = _operator(debitura_tasks=review).execute_complete(_context(), _event(["Can't do"], note="No access"))
    assert report["outcome"] == "cant_do" and report["still_open"] == [review[0]["id"]]
    assert _counters(debitura_conn).get(CASE_TASKS, 0) == 0  # no check needed
    with pytest.raises(AirflowFailException, match='Alice answered "Can\'t do": No access'):
        _operator(debitura_tasks=review, fail_on_cant_do=True).execute_complete(
            _context(), _event(["Can't do"], note="No access")
        )


def test_cleared_in_debitura_and_timeouts_and_bad_answers(request_):
    from airflow.providers.standard.exceptions import HITLTimeoutError

    tasks = handoff_tasks("t", {"id": "T1", "type": "Generic"})
    op = _operator(debitura_tasks=tasks)
    cleared = _event(["Done"], user=None, debitura_cleared=True, gone=tasks, notes=[], checks=5, rounds=2)
    report = op.execute_complete(_context(), cleared)
    assert (report["outcome"], report["timed_out"], report["checks"], report["rounds"]) == (
        "cleared_in_debitura",
        False,
        5,
        2,
    )
    with pytest.raises(HITLTimeoutError):
        op.execute_complete(_context(), {"error": "timed out", "error_type": "timeout", "tasks": tasks})
    with pytest.raises(ValueError, match="not in"):
        op.execute_complete(_context(), _event(["Maybe"]))


def test_partial_and_expand_map_one_request_per_task_or_per_case():
    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_debitura.operators.human_handoff import DebituraHumanHandoffOperator, group_tasks_by_case

    tasks = [
        {"id": "A", "caseId": "C1"},
        {"id": "B", "caseId": "C1"},
        {"id": "C", "caseId": None},
        {"id": "D", "caseId": "C2"},
    ]
    assert [[t["id"] for t in g] for g in group_tasks_by_case(tasks)] == [["A", "B"], ["C"], ["D"]]
    with DAG("map_handoff", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        mapped = DebituraHumanHandoffOperator.partial(task_id="h", poll_interval=30).expand(
            debitura_tasks=group_tasks_by_case(tasks)
        )
    assert mapped.partial_kwargs["poll_interval"] == 30


# -------------------------------------------------------------------------------------------- the trigger


def _trigger(tasks, **kwargs):
    from airflow_provider_debitura.triggers.human_handoff import DebituraHandoffTrigger

    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("response_poll_interval", 0.05)
    return DebituraHandoffTrigger(ti_id=str(uuid.uuid4()), tasks=tasks, **kwargs)


async def _first_event(trigger, timeout: float = 30):
    return (await asyncio.wait_for(trigger.run().__anext__(), timeout)).payload


async def test_trigger_resumes_with_the_persons_answer(debitura_conn, request_):
    tasks = handoff_tasks("t", _open(debitura_conn, "ReviewPartner"))
    trigger = _trigger(tasks, poll_interval=3600)
    run = asyncio.ensure_future(_first_event(trigger))
    await asyncio.sleep(0.3)
    assert not run.done()
    request_.answer(["Can't do"], {"note": "later"})
    event = await run
    assert event["chosen_options"] == ["Can't do"] and event["responded_by_user"]["name"] == "Alice"
    assert event["tasks"] == tasks and "debitura_cleared" not in event
    assert _counters(debitura_conn).get(CASE_TASKS, 0) == 0  # the operator's check counts as the first


async def test_trigger_closes_the_request_when_debitura_clears_the_task(debitura_conn, request_):
    review = _open(debitura_conn, "ReviewPartner")
    tasks = handoff_tasks("t", review)
    run = asyncio.ensure_future(_first_event(_trigger(tasks, checks=1)))
    await asyncio.sleep(0.5)
    assert not run.done()
    debitura_conn.control("POST", f"/tasks/{review['id']}/solve")
    event = await run
    assert event["debitura_cleared"] is True and event["chosen_options"] == ["Done"]
    [recorded] = request_.recorded
    assert recorded["chosen_options"] == ["Done"]
    assert recorded["params_input"]["note"].startswith("Closed by Airflow: Debitura shows this task solved")
    assert event["checks"] == 1 + _counters(debitura_conn)[CASE_TASKS]  # one request per check


async def test_trigger_lets_a_person_who_answered_first_win(debitura_conn, request_, monkeypatch):
    review = _open(debitura_conn, "ReviewPartner")
    debitura_conn.control("POST", f"/tasks/{review['id']}/solve")
    record = request_.record

    def answered_just_before(ti_id, **kwargs):  # the person answers between the trigger's read and its write
        request_.answer(["Can't do"])
        return record(ti_id, **kwargs)  # Airflow refuses the write (409): an answer is already recorded

    monkeypatch.setattr(hitl_compat, "record_response", answered_just_before)
    event = await _first_event(_trigger(handoff_tasks("t", review), poll_interval=0.01))
    assert event["chosen_options"] == ["Can't do"] and "debitura_cleared" not in event
    assert request_.recorded == []


async def test_trigger_timeout_takes_defaults_or_fails(debitura_conn, request_):
    tasks = handoff_tasks("t", _open(debitura_conn, "ReviewPartner"))
    soon = datetime.now(timezone.utc).timestamp() + 0.3
    event = await _first_event(_trigger(tasks, poll_interval=3600, timeout_at=soon))
    assert event["error_type"] == "timeout" and request_.recorded == []
    assert _counters(debitura_conn)[CASE_TASKS] == 1  # one last look at Debitura before giving up
    soon = datetime.now(timezone.utc).timestamp() + 0.3
    event = await _first_event(_trigger(tasks, poll_interval=3600, timeout_at=soon, defaults=["Can't do"]))
    assert event["chosen_options"] == ["Can't do"] and event["timedout"] is True
    assert request_.recorded == [{"chosen_options": ["Can't do"], "params_input": {}}]


async def test_trigger_keeps_waiting_for_the_person_when_debitura_fails(debitura_conn, request_):
    tasks = handoff_tasks("t", _open(debitura_conn, "ReviewPartner"))
    debitura_conn.control("PUT", "/faults", json={"rules": [{"kind": "status", "status": 401}]})
    run = asyncio.ensure_future(_first_event(_trigger(tasks, poll_interval=0.1)))
    await asyncio.sleep(0.6)
    assert not run.done()
    request_.answer(["Done"])
    assert (await run)["chosen_options"] == ["Done"]


# ------------------------------------------------------------------------- a case that is gone (issue 21, item 7)


def _delete_case_of(sandbox, task: dict[str, Any]) -> None:
    """Debitura deletes the case: its endpoints answer 404 while GET /tasks still lists the task open."""
    assert sandbox.control("POST", f"/cases/{task['caseId']}/delete").status_code == 200


def test_a_deleted_case_fails_the_handoff_before_asking(debitura_conn, request_):
    from airflow_provider_debitura.operators.human_handoff import DebituraHandoffCaseGoneError

    review = _open(debitura_conn, "ReviewPartner")
    _delete_case_of(debitura_conn, review)
    with pytest.raises(DebituraHandoffCaseGoneError, match="Cannot find Debitura case .* were not solved"):
        _operator(debitura_tasks=review).execute(_context())
    assert request_.upserts == []


def test_done_on_a_deleted_case_fails_saying_the_case_is_gone(debitura_conn, request_):
    from airflow_provider_debitura.operators.human_handoff import DebituraHandoffCaseGoneError

    review = handoff_tasks("t", _open(debitura_conn, "ReviewPartner"))
    _delete_case_of(debitura_conn, review[0])
    with pytest.raises(DebituraHandoffCaseGoneError, match="Alice answered 'Done', but Cannot find Debitura case"):
        _operator(debitura_tasks=review).execute_complete(_context(), _event(["Done"]), tasks=review)


async def test_trigger_reports_a_deleted_case_as_gone_not_solved(debitura_conn, request_):
    from airflow_provider_debitura.operators.human_handoff import DebituraHandoffCaseGoneError

    review = _open(debitura_conn, "ReviewPartner")
    tasks = handoff_tasks("t", review)
    run = asyncio.ensure_future(_first_event(_trigger(tasks, checks=1)))
    await asyncio.sleep(0.5)
    assert not run.done()
    _delete_case_of(debitura_conn, review)
    assert any(t["id"] == review["id"] for t in debitura_conn.state.list_tasks("Open"))  # still listed open
    event = await run
    assert "debitura_cleared" not in event and event["debitura_case_gone"] is True
    assert request_.recorded == []  # nobody's "Done" is written for a task that was not solved
    with pytest.raises(DebituraHandoffCaseGoneError, match="Cannot find Debitura case") as failed:
        _operator(debitura_tasks=tasks).execute_complete(_context(), event)
    assert "solved in Debitura" not in str(failed.value)


# ------------------------------------------------------------------ an outage after "Done" (issue 21, item 8)


@pytest.fixture
def one_try_conn(debitura_conn, monkeypatch):
    """The sandbox connection with no retries inside the hook, so each check is one request."""
    conn = debitura_conn.conn_dict()
    conn["extra"] = {**conn["extra"], "max_attempts": 1}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    return debitura_conn


def _fail_case_reads(sandbox, status: int = 503, count: int | None = 40) -> None:
    rule = {"kind": "status", "status": status, "method": "GET", "path": "/cases", "count": count}
    assert sandbox.control("PUT", "/faults", json={"rules": [rule]}).status_code == 200


async def test_done_during_a_short_outage_is_checked_again_not_lost(one_try_conn, request_):
    from airflow.providers.common.compat.sdk import TaskDeferred

    sandbox = one_try_conn
    review = handoff_tasks("t", _open(sandbox, "ReviewPartner"))
    sandbox.control("POST", f"/tasks/{review[0]['id']}/solve")
    _fail_case_reads(sandbox)  # the next 40 case reads answer 503
    op = _operator(debitura_tasks=review, poll_interval=0.02)
    with pytest.raises(TaskDeferred) as deferred:  # not failed: the answer waits for Debitura
        op.execute_complete(_context(), _event(["Done"], note="Reviewed"), tasks=review, rounds=1, checks=1)
    trigger = deferred.value.trigger
    assert trigger.verify_answer["chosen_options"] == ["Done"] and trigger.verify_answer["params_input"]["note"]
    event = await _first_event(trigger, timeout=60)
    report = _operator(debitura_tasks=review, poll_interval=0.02).execute_complete(_context(), event)
    assert report["outcome"] == "done" and report["note"] == "Reviewed" and report["rounds"] == 1
    assert report["responded_by"] == {"id": "alice", "name": "Alice"}
    assert _counters(sandbox)[CASE_TASKS] == 41 == report["checks"] - 1  # 40 refused, then the one that answered
    assert request_.upserts == [] and request_.recorded == []  # nobody asked again, nothing written


async def test_an_outage_past_the_deadline_fails_saying_the_answer_was_kept(one_try_conn, request_):
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_debitura.operators.human_handoff import DebituraHandoffUnverifiedError

    sandbox = one_try_conn
    review = handoff_tasks("t", _open(sandbox, "ReviewPartner"))
    _fail_case_reads(sandbox, count=None)  # down for good
    op = _operator(debitura_tasks=review, poll_interval=0.05)
    soon = datetime.now(timezone.utc).timestamp() + 0.5
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(_context(), _event(["Done"], note="Signed"), tasks=review, timeout_at=soon)
    assert deferred.value.trigger.timeout_at >= soon
    event = await _first_event(deferred.value.trigger, timeout=60)
    with pytest.raises(DebituraHandoffUnverifiedError) as failed:
        op.execute_complete(_context(), event)
    message = str(failed.value)
    assert "Alice's answer 'Done' (note: 'Signed') is kept" in message and "503" in message
    assert request_.upserts == []


def test_a_permanent_error_after_done_fails_at_once_saying_the_answer_was_kept(one_try_conn, request_):
    from airflow_provider_debitura.operators.human_handoff import DebituraHandoffUnverifiedError

    review = handoff_tasks("t", _open(one_try_conn, "ReviewPartner"))
    _fail_case_reads(one_try_conn, status=401, count=None)
    with pytest.raises(DebituraHandoffUnverifiedError, match="Alice's answer 'Done' is kept .*401"):
        _operator(debitura_tasks=review).execute_complete(_context(), _event(["Done"]), tasks=review)
