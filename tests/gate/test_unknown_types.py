"""Issue 20 item 11: a caseless task of a type the provider does not know, with no lead, blocks every gate that
counts every type (doubt never opens a gate), on the shared read and on the direct reads, at a known cost."""

from __future__ import annotations

import contextvars
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_debitura import gate
from airflow_provider_debitura.gate import AccountSnapshot, DirectReads, GateSpec, GateState, read_records
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import drive

CASE = "d5ba0833-fd38-506d-8521-5ec5ae679c33"
OTHER = "11111111-2222-3333-4444-555555555555"
NEW = "ConfirmDataProcessingAgreement"


@pytest.fixture(autouse=True)
def _forget_types():
    gate.forget_learned_types()
    yield
    gate.forget_learned_types()


def record(type_: str | None, case_id: str | None = CASE, *, id_: str, lead: str | None = None) -> dict:
    return {
        "id": id_,
        "type": type_,
        "title": f"{type_} title",
        "status": "Open",
        "caseId": case_id,
        "leadId": lead,
        "dateCreated": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
        "solutionUrl": f"https://app.debitura.com/tasks/{id_}",
    }


class Queue:
    """``GET /tasks`` and ``GET /cases/{id}/tasks`` as the server answers them, counting requests."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.calls: list[tuple[tuple[str, str], ...]] = []

    def answer(self, call: ApiCall[Any]) -> Any:
        self.calls.append(call.params)
        if call.path != "/tasks":
            return call.parse([r for r in self.records if r["caseId"] and call.path == f"/cases/{r['caseId']}/tasks"])
        types = {value for key, value in call.params if key == "type"}
        params = dict(call.params)
        page, size = int(params.get("Page", 1)), int(params.get("PageSize", 10))
        selected = [r for r in self.records if not types or r["type"] in types]
        body = {
            "page": {"totalResults": len(selected), "pageSize": size, "currentPage": page},
            "tasks": selected[(page - 1) * size : page * size],
        }
        return call.parse(body)

    def check(self, spec: GateSpec) -> tuple[gate.GateVerdict, DirectReads]:
        """One direct check, as the sensor and the trigger make it."""
        reads = drive(DirectReads([spec.case_id], spec.account_types, prove_new_types=True), self.answer)
        return reads.snapshot(0.0).verdict_for(spec), reads


def test_the_shared_read_keeps_every_counting_gate_blocked_and_says_how_to_exclude_the_type():
    snapshot = AccountSnapshot.from_batch(read_records([record(NEW, None, id_="new")]), 0.0, verified=True)
    verdict = snapshot.verdict(CASE)
    assert verdict.state is GateState.BLOCKED and verdict.ids == ("new",)
    summary = verdict.summary()
    assert f"{NEW} [account-level]" in summary and "does not know" in summary
    assert "blocking_task_types=" in summary and "include_account_tasks=False" in summary
    # Excluded: the gate names the types that block, or does not count account-level tasks.
    assert snapshot.verdict(CASE, blocking_types=["ReplyToChat", "SignContract"]).is_unblocked
    assert snapshot.verdict(CASE, include_account_tasks=False).is_unblocked
    assert snapshot.verdict(CASE, blocking_types=[NEW]).state is GateState.BLOCKED  # named: it blocks


def test_a_leads_task_a_case_task_and_a_documented_caseless_type_stay_where_they_belong():
    records = [
        record(NEW, None, id_="lead-task", lead="9b2f0f7e-0000-4000-8000-000000000001"),  # a lead's: no gate
        record(NEW, OTHER, id_="other-case"),  # another case's
        record("Generic", None, id_="caseless-generic"),  # documented case-level type: as before, no gate
    ]
    snapshot = AccountSnapshot.from_batch(read_records(records), 0.0, verified=True)
    assert snapshot.verdict(CASE).is_unblocked
    assert snapshot.verdict(OTHER).ids == ("other-case",)


def test_a_caseless_task_with_no_type_and_an_unreadable_new_caseless_record_block_too():
    snapshot = AccountSnapshot.from_batch(read_records([record(None, None, id_="typeless")]), 0.0, verified=True)
    assert snapshot.verdict(CASE).state is GateState.BLOCKED
    broken = {**record(NEW, None, id_="broken"), "dateCreated": "not a date"}
    doubtful = AccountSnapshot.from_batch(read_records([broken]), 0.0, verified=True)
    assert doubtful.verdict(CASE).state is GateState.UNKNOWN
    assert doubtful.verdict(CASE, include_account_tasks=False).is_unblocked


def test_the_direct_check_finds_a_new_caseless_type_the_filtered_read_cannot_see():
    queue = Queue([record(NEW, None, id_="new")])
    verdict, reads = queue.check(GateSpec.of(CASE))
    assert verdict.state is GateState.BLOCKED and verdict.ids == ("new",)
    # The case, the filtered account-level read, page 1 of the whole queue (it holds every open task).
    assert len(queue.calls) == reads.requests == 3 and reads.scanned == 1
    assert ("type", "SignContract") in queue.calls[1] and not [p for p in queue.calls[2] if p[0] == "type"]
    assert gate.learned_types() == (NEW,)
    # Learned: the next check asks for the new type by name and finds it in the filtered read.
    queue.calls.clear()
    verdict, reads = queue.check(GateSpec.of(CASE))
    assert verdict.state is GateState.BLOCKED and len(queue.calls) == 2 and ("type", NEW) in queue.calls[1]
    queue.records.clear()
    verdict, reads = queue.check(GateSpec.of(CASE))
    assert verdict.is_unblocked and reads.requests == 3  # page 1 of the queue proves nothing else is open


def test_a_large_queue_costs_one_count_when_every_type_is_known():
    others = [record("ReplyToChat", OTHER, id_=f"r{i}") for i in range(250)]
    queue = Queue(others)
    verdict, reads = queue.check(GateSpec.of(CASE))
    assert verdict.is_unblocked
    # The case, the filtered read, page 1 of 3 of the queue, the count of the known types (equal: done).
    assert reads.requests == 4 and reads.scanned == 1 and reads.counted == 250
    assert dict(queue.calls[3])["PageSize"] == "1"


def test_a_large_queue_is_read_on_until_the_new_caseless_task_shows():
    queue = Queue([*(record("ReplyToChat", OTHER, id_=f"r{i}") for i in range(150)), record(NEW, None, id_="new")])
    verdict, reads = queue.check(GateSpec.of(CASE))
    assert verdict.state is GateState.BLOCKED and verdict.ids == ("new",)
    assert reads.requests == 5 and reads.scanned == 2 and reads.counted == 150  # 1 case, 1 filtered, 2 pages, 1 count


def test_no_proof_is_read_when_the_gate_cannot_open_or_does_not_count_new_types():
    queue = Queue([record("ReplyToChat", CASE, id_="own"), record(NEW, None, id_="new")])
    verdict, reads = queue.check(GateSpec.of(CASE))  # blocked by its own case: 2 requests, as before
    assert verdict.state is GateState.BLOCKED and reads.requests == 2 and reads.scanned == 0
    queue = Queue([record("SignContract", None, id_="sign"), record(NEW, None, id_="new")])
    verdict, reads = queue.check(GateSpec.of(CASE))  # blocked by a documented account-level task
    assert verdict.ids == ("sign",) and reads.requests == 2
    queue = Queue([record(NEW, None, id_="new")])
    verdict, reads = queue.check(GateSpec.of(CASE, ["ReplyToChat", "SignContract"]))
    assert verdict.is_unblocked and reads.requests == 2  # names its types: new ones do not count, no proof read


def test_a_gate_that_names_a_new_type_asks_for_it_by_name():
    spec = GateSpec.of(CASE, [NEW, "ReplyToChat"])
    assert spec.account_types == frozenset({NEW})
    queue = Queue([record(NEW, None, id_="new")])
    verdict, reads = queue.check(spec)
    assert verdict.ids == ("new",) and reads.requests == 2 and ("type", NEW) in queue.calls[1]


def test_a_new_type_is_logged_once_with_the_way_to_exclude_it(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_provider_debitura.gate.records"):
        read_records([record(NEW, None, id_="a"), record(NEW, None, id_="b")])
    lines = [r.getMessage() for r in caplog.records if NEW in r.getMessage()]
    assert len(lines) == 1 and "blocking_task_types" in lines[0]


def test_reads_confirming_a_full_read_of_the_same_round_lean_on_it_and_it_keeps_the_gates_blocked(monkeypatch):
    """The shared poll's confirming reads follow its read of the whole queue, in the same task: that read stands
    for the proof (they cost what they did: 1 case, 1 filtered read), and a new caseless task it saw stays a
    blocker after the direct reads replace the account-level part. Elsewhere (another task, or a second later)
    the proof is made."""

    def confirm(queue: Queue, clock: float) -> tuple[AccountSnapshot, DirectReads]:
        monkeypatch.setattr("airflow_provider_debitura.gate.snapshot.time.monotonic", lambda: 100.0)
        full = AccountSnapshot.from_batch(read_records(queue.records), 0.0, verified=False)
        monkeypatch.setattr("airflow_provider_debitura.gate.snapshot.time.monotonic", lambda: 100.0 + clock)
        reads = drive(DirectReads([CASE], GateSpec.of(CASE).account_types), queue.answer)
        return full.with_reads(reads.cases, reads.account), reads

    snapshot, reads = contextvars.copy_context().run(confirm, Queue([record(NEW, None, id_="new")]), 0.2)
    assert reads.requests == 2 and reads.prove_new_types is False
    assert snapshot.verdict(CASE).ids == ("new",)  # the shared read's blocker survives the direct account part
    snapshot, reads = contextvars.copy_context().run(confirm, Queue([]), 0.2)
    assert snapshot.verdict(CASE).is_unblocked and reads.requests == 2
    _, reads = contextvars.copy_context().run(confirm, Queue([]), 1.5)  # the full read is too old
    assert reads.prove_new_types is True and reads.requests == 3
    fresh = contextvars.Context().run(DirectReads, [CASE], GateSpec.of(CASE).account_types)
    assert fresh.prove_new_types is True  # a task that read no queue (the trigger alone, a sensor) proves


def test_a_queue_whose_totals_lie_is_read_on_to_a_short_page():
    class Lying(Queue):
        def answer(self, call: ApiCall[Any]) -> Any:
            if call.path == "/tasks" and not [p for p in call.params if p[0] == "type"]:
                self.calls.append(call.params)
                params = dict(call.params)
                page, size = int(params["Page"]), int(params["PageSize"])
                chunk = self.records[(page - 1) * size : page * size]
                return call.parse({"page": {"totalResults": 0, "pageSize": size, "currentPage": page}, "tasks": chunk})
            return super().answer(call)

    others = [record("ReplyToChat", OTHER, id_=f"r{i}") for i in range(150)]
    verdict, reads = Lying(others).check(GateSpec.of(CASE))
    assert verdict.is_unblocked and reads.forward and reads.scanned == 2 and reads.counted is None
    verdict, reads = Lying([*others, record(NEW, None, id_="new")]).check(GateSpec.of(CASE))
    assert verdict.ids == ("new",)
