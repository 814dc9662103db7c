"""The gate without I/O: the verdict rule, record isolation, snapshots, direct reads, bookkeeping."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_debitura import gate
from airflow_provider_debitura.exceptions import (
    DebituraBudgetError,
    DebituraConfigError,
    DebituraNotFoundError,
    DebituraServerError,
)
from airflow_provider_debitura.gate import (
    AccountSnapshot,
    DirectReads,
    GateProgress,
    GateSpec,
    GateState,
    Part,
    read_records,
    read_task_page,
)
from airflow_provider_debitura.gate.snapshot import SMALL_CASE
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import drive
from airflow_provider_debitura.models import Task

CASE = "d5ba0833-fd38-506d-8521-5ec5ae679c33"
OTHER = "11111111-2222-3333-4444-555555555555"


def record(type_: str, case_id: str | None = CASE, *, id_: str | None = None, status: str | None = "Open") -> dict:
    return {
        "id": id_ or f"{type_}-{case_id}",
        "type": type_,
        "title": f"{type_} title",
        "status": status,
        "caseId": case_id,
        "caseReference": "INV-1" if case_id == CASE else None,
        "dateCreated": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
        "solutionUrl": f"https://app.debitura.com/{type_}",
    }


def tasks(*records: dict) -> tuple:
    return read_records(list(records)).open


def page(records: list, *, total: int | None = None, current: int = 1) -> dict:
    total = len(records) if total is None else total
    return {
        "page": {"totalResults": total, "pageSize": 100, "currentPage": current, "totalPages": -(-total // 100)},
        "tasks": records,
    }


# -- the rule --


def test_no_tasks_is_unblocked_and_any_case_task_blocks_by_default():
    spec = GateSpec.of(CASE)
    assert spec.verdict(Part(), Part()).state is GateState.UNBLOCKED
    verdict = spec.verdict(Part(tasks(record("SomethingNewFromDebitura"))), Part())
    assert verdict.state is GateState.BLOCKED
    assert verdict.blockers()[0]["type"] == "SomethingNewFromDebitura"
    assert set(verdict.blockers()[0]) == set(gate.COMPACT_FIELDS)


def test_blocking_types_filter_case_and_account_level_tasks_alike():
    case = Part(tasks(record("ReplyToChat"), record("ReviewPartner")))
    account = Part(tasks(record("AssignBankAccount", None), record("SignContract", None)))
    assert GateSpec.of(CASE, ["Generic"]).verdict(case, account).is_unblocked
    verdict = GateSpec.of(CASE, ["ReviewPartner", "SignContract"]).verdict(case, account)
    assert [t["type"] for t in verdict.blockers()] == ["ReviewPartner", "SignContract"]
    assert not GateSpec.of(CASE, ["ReplyToChat"]).needs_account  # no account-level read is needed at all
    assert GateSpec.of(CASE, ["ReplyToChat", "SignContract"]).account_types == {"SignContract"}


def test_account_level_tasks_ignored_when_excluded():
    account = Part(tasks(record("SignContract", None)))
    assert GateSpec.of(CASE, include_account_tasks=False).verdict(Part(), account).is_unblocked
    assert GateSpec.of(CASE, include_account_tasks=False).account_types == frozenset()


@pytest.mark.parametrize(
    ("types", "include"), [(["SignContract"], False), (["SignContract", "AssignBankAccount"], False), ([], True)]
)
def test_configurations_that_can_never_block_are_refused(types, include):
    with pytest.raises(DebituraConfigError, match="blocking_task_types"):
        GateSpec.of(CASE, types, include)


def test_solved_tasks_do_not_block():
    solved = tasks(record("ReplyToChat", status="Solved"), record("SignContract", None, status="Solved"))
    assert solved == ()
    assert GateSpec.of(CASE).verdict(Part(solved), Part(solved)).is_unblocked


def test_doubt_never_opens_but_a_blocker_is_a_blocker():
    spec = GateSpec.of(CASE)
    doubt = Part.unknown("HTTP 503")
    assert spec.verdict(doubt, Part()).state is GateState.UNKNOWN
    assert spec.verdict(Part(), doubt).state is GateState.UNKNOWN
    assert spec.verdict(Part(complete=False), Part()).state is GateState.UNKNOWN  # an unverified listing
    assert spec.verdict(Part(tasks(record("ReplyToChat"))), doubt).state is GateState.BLOCKED
    assert "treating it as blocked" in spec.verdict(doubt, Part()).summary()


def test_policy_fatal_fails_transient_is_doubt_other_errors_propagate():
    missing = DebituraNotFoundError("HTTP 404", method="GET", path="/cases/x/tasks", status=404)
    part = gate.part_from_error(missing)
    verdict = GateSpec.of(CASE).verdict(part, Part(tasks(record("SignContract", None))))
    assert verdict.state is GateState.FAILED and verdict.error is missing  # fatal wins over blockers
    assert gate.failure_message("INV-1 (x)", verdict).startswith("Cannot find Debitura case INV-1 (x): HTTP 404")
    assert gate.part_from_error(DebituraServerError("503", method="GET", path="/tasks", status=503)).known is False
    with pytest.raises(KeyError):
        gate.part_from_error(KeyError("a bug"))


def test_a_read_the_request_budget_refused_is_doubt_not_a_crash():
    """Seen in a simulated day at 20,000 open tasks: a confirming read refused by the budget (the day's pace spent,
    longer than budget_max_wait) was re-raised by the policy and ended the shared poll's round with a traceback."""
    refused = DebituraBudgetError("Connection 'x': the next request fits the request budget in 301 s, longer than ...")
    part = gate.part_from_error(refused)
    assert part.known is False and part.error is None and "request budget" in part.reason
    assert GateSpec.of(CASE).verdict(part, Part()).state is GateState.UNKNOWN  # checked again later, never opened


# -- records the gate cannot read --


def test_an_unreadable_record_is_isolated_to_its_case():
    batch = read_records(
        [
            record("ReplyToChat", OTHER),
            {**record("Generic", CASE, id_="odd-1"), "dateCreated": "yesterday"},  # carries the case: that case
            {**record("SelectQuoteWinner", None, id_="lead"), "dateCreated": None},  # a lead's task: no gate
            {**record("Generic", None, id_="odd-2"), "caseId": 42},  # may belong to any case
            "not even an object",  # the same
        ]
    )
    assert len(batch.listed) == 1 and len(batch.open) == 1
    assert [r.scope for r in batch.rejected] == ["case", "none", "any", "any"]
    odd_case = {**record("Generic", CASE, id_="odd-1"), "dateCreated": "yesterday"}
    snapshot = AccountSnapshot.from_batch(read_records([record("ReplyToChat", OTHER), odd_case]), 0.0, verified=True)
    assert snapshot.verdict(CASE, include_account_tasks=False).state is GateState.UNKNOWN
    assert snapshot.verdict(OTHER, include_account_tasks=False).state is GateState.BLOCKED
    assert snapshot.verdict("99999999-2222-3333-4444-555555555555").is_unblocked
    anywhere = AccountSnapshot.from_batch(batch, 0.0, verified=True)
    assert (
        anywhere.verdict("99999999-2222-3333-4444-555555555555", include_account_tasks=False).state is GateState.UNKNOWN
    )
    assert not gate.part_from(read_records([{**record("Generic", CASE), "dateCreated": None}])).known


def test_an_unreadable_caseless_account_level_record_holds_every_gate():
    odd = {**record("AssignBankAccount", None, id_="odd"), "dateCreated": "not a date"}
    snapshot = AccountSnapshot.from_batch(read_records([odd, record("ReplyToChat", OTHER)]), 0.0, verified=True)
    assert snapshot.verdict(CASE).state is GateState.UNKNOWN
    assert snapshot.verdict(CASE, include_account_tasks=False).is_unblocked  # does not need account-level tasks
    assert snapshot.verdict(OTHER).state is GateState.BLOCKED


def test_a_broken_envelope_is_an_error_but_null_tasks_are_an_empty_page():
    with pytest.raises(ValueError):
        read_task_page(["not", "an", "envelope"])
    with pytest.raises(ValueError):
        read_records({"not": "a list"})
    empty = read_task_page({"page": {"totalResults": 0, "pageSize": 100, "currentPage": 1}, "tasks": None})
    assert empty.batch.listed == () and empty.page.total_results == 0 and empty.raw_count == 0


# -- snapshots --


def test_snapshot_answers_each_case_and_a_failed_snapshot_is_unknown():
    snap = AccountSnapshot.from_tasks(
        tasks(record("ReplyToChat", CASE), record("Generic", OTHER), record("AssignBankAccount", None)), 0.0
    )
    assert snap.total == 3
    assert [t["type"] for t in snap.verdict(CASE.upper(), include_account_tasks=False).blockers()] == ["ReplyToChat"]
    assert snap.verdict("99999999-2222-3333-4444-555555555555", include_account_tasks=False).is_unblocked
    assert not snap.verdict("99999999-2222-3333-4444-555555555555").is_unblocked
    assert snap.verdict(OTHER, blocking_types=["ReplyToChat"], include_account_tasks=False).is_unblocked
    assert AccountSnapshot.failed("drift", 0.0).verdict(CASE).state is GateState.UNKNOWN


@pytest.mark.parametrize("size", [1, SMALL_CASE, SMALL_CASE + 1, 3 * SMALL_CASE + 2])
async def test_a_case_of_any_size_is_indexed_whole_and_in_listing_order(size):
    """Small cases grow as tuples, large ones in a list made a tuple at the end (linear, not quadratic): every
    task is there once, in the listing's order, whichever path (in one piece, or in chunks between loop turns)."""
    records = []
    for i in range(size):
        records.append(record("ReplyToChat", CASE, id_=f"big-{i}"))
        records.append(record("ReplyToChat", OTHER, id_=f"other-{i}"))
    records.append(record("SignContract", None, id_="account"))
    batch = read_records(records)
    for snapshot in (
        AccountSnapshot.from_batch(batch, 0.0, verified=True),
        await AccountSnapshot.afrom_batch(batch, 0.0, verified=True),
    ):
        assert [t[0] for t in snapshot.by_case[CASE]] == [f"big-{i}" for i in range(size)]
        assert [t[0] for t in snapshot.by_case[OTHER]] == [f"other-{i}" for i in range(size)]
        assert all(type(tasks) is tuple for tasks in snapshot.by_case.values())
        assert [t[0] for t in snapshot.account.tasks] == ["account"]


def test_an_unverified_snapshot_blocks_but_never_opens():
    snap = AccountSnapshot.from_tasks(tasks(record("ReplyToChat", CASE)), 0.0, verified=False)
    assert snap.verdict(CASE).state is GateState.BLOCKED
    free = snap.verdict(OTHER)
    assert free.state is GateState.UNKNOWN and "missed" in free.reason
    confirmed = snap.with_reads({OTHER: Part()}, Part())
    assert confirmed.verdict(OTHER).is_unblocked and confirmed.verdict(CASE).state is GateState.BLOCKED


def test_snapshot_from_models_and_from_records_agree():
    records = [record("ReplyToChat", CASE), record("SignContract", None), record("Generic", OTHER)]
    from_models = AccountSnapshot.from_tasks([Task.model_validate(r) for r in records], 0.0)
    from_records = AccountSnapshot.from_batch(read_records(records), 0.0, verified=True)
    for types in (None, ["Generic"], ["ReplyToChat"], ["SignContract"]):
        for include in (True, False):
            if types == ["SignContract"] and not include:
                continue
            a = from_models.verdict(CASE, blocking_types=types, include_account_tasks=include)
            b = from_records.verdict(CASE, blocking_types=types, include_account_tasks=include)
            assert (a.state, a.blocking) == (b.state, b.blocking)


def test_snapshot_and_direct_reads_agree():
    records = [record("ReplyToChat", CASE), record("SignContract", None), record("Generic", OTHER)]
    shared = AccountSnapshot.from_batch(read_records(records), 0.0, verified=True)
    for types in (None, ["Generic"], ["ReplyToChat"], ["ReplyToChat", "SignContract"]):
        for include in (True, False):
            spec = GateSpec.of(CASE, types, include)
            reads = DirectReads([CASE], spec.account_types)

            def answer(call: ApiCall[Any]) -> object:
                if call.path.startswith("/cases/"):
                    return read_records([r for r in records if r["caseId"] == CASE])
                return read_task_page(page([records[1]]))

            direct = drive(reads, answer).snapshot(0.0).verdict_for(spec)
            assert (direct.state, direct.blocking) == (
                shared.verdict_for(spec).state,
                shared.verdict_for(spec).blocking,
            )


def test_full_records_come_back_from_the_pages():
    records = [record("ReplyToChat", CASE), record("Generic", OTHER)]
    pages = (json.dumps(records),)
    snap = AccountSnapshot.from_batch(read_records(records), 0.0, verified=True, pages=pages)
    assert snap.records([records[1]["id"]]) == [records[1]]
    assert snap.records() == records


# -- direct reads --


def test_direct_reads_send_one_account_page_when_it_decides_every_gate():
    reads = DirectReads([CASE, OTHER, CASE.upper()], frozenset({"SignContract", "AssignBankAccount"}))
    cases = reads.next_calls()
    assert [c.path for c in cases] == [f"/cases/{CASE}/tasks", f"/cases/{OTHER}/tasks"]  # one per distinct case
    for call in cases:
        reads.feed(call, read_records([]))
    [call] = reads.next_calls()  # the cases first, then the account-level read
    assert ("type", "AssignBankAccount") in call.params and ("Page", "1") in call.params
    first = [record("AssignBankAccount", None, id_=f"a{i}") for i in range(99)] + [record("SignContract", None)]
    reads.feed(call, read_task_page(page(first, total=250)))
    assert not reads.next_calls()  # both types seen on page 1: more pages cannot change a verdict
    assert reads.account is not None and not reads.account.complete and len(reads.account.tasks) == 100


def test_direct_reads_page_on_while_a_needed_type_is_unseen():
    reads = DirectReads([], frozenset({"SignContract"}))
    [call] = reads.next_calls()
    reads.feed(
        call, read_task_page(page([record("AssignBankAccount", None, id_=f"a{i}") for i in range(100)], total=101))
    )
    [call] = reads.next_calls()
    assert ("Page", "2") in call.params
    reads.feed(call, read_task_page(page([record("AssignBankAccount", None, id_="b")], total=101, current=2)))
    assert reads.account is not None and reads.account.settled
    assert GateSpec.of(CASE, ["SignContract"]).verdict(Part(), reads.account).is_unblocked


def test_direct_reads_distrust_a_page_that_disagrees_with_its_count():
    reads = DirectReads([], frozenset({"SignContract"}))
    [call] = reads.next_calls()
    reads.feed(call, read_task_page(page([], total=3)))
    assert reads.account is not None and not reads.account.known


def test_direct_reads_stop_after_three_transient_failures():
    reads = DirectReads([f"{i:08d}-0000-0000-0000-000000000000" for i in range(6)])
    error = DebituraServerError("503", method="GET", path="/cases", status=503)
    sent: list[str] = []

    def answer(call: ApiCall[Any]) -> object:
        sent.append(call.path)
        return error

    drive(reads, answer)
    assert len(sent) == 3 and reads.requests == 3 and reads.failures == 3
    assert not reads.next_calls()  # the skipped cases are done with, not asked again
    assert sum("skipped" in (p.reason or "") for p in reads.cases.values()) == 3


# -- bookkeeping --


def test_progress_names_the_case_keeps_the_first_blockers_and_quiets_repeats():
    progress = GateProgress(CASE)
    blocked = GateSpec.of(CASE).verdict(Part(tasks(record("ReplyToChat"))), Part())
    level, message = progress.note(blocked, quiet_unchanged=True)
    assert (level, progress.checks) == ("info", 1)
    assert progress.first is blocked.blocking  # the verdict's tuples, shared: dicts only for the record
    assert message.startswith(f"Case INV-1 ({CASE}), check 1: blocked by 1 open task(s)")
    assert progress.note(blocked, quiet_unchanged=True)[0] == "debug"
    assert progress.note(gate.unknown("HTTP 503"))[0] == "warning"
    assert progress.note(GateSpec.of(CASE).verdict(Part(), Part()))[0] == "info"
    record_ = progress.record()
    assert record_["checks"] == 4 and [t["type"] for t in record_["blocked_by_on_first_check"]] == ["ReplyToChat"]
    assert progress.solution_url == "https://app.debitura.com/ReplyToChat"
    assert json.loads(json.dumps(record_)) == record_ and record_["unblocked_at"].endswith("+00:00")


def test_progress_without_the_first_check_keeps_null():
    progress = GateProgress(CASE, checks=3, record_first=False)
    progress.note(GateSpec.of(CASE).verdict(Part(), Part()))
    assert progress.record()["blocked_by_on_first_check"] is None and progress.checks == 4


def test_backoff_follows_airflows_progression_and_max_wait():
    assert gate.next_interval(10, 5) == 10
    intervals = [gate.next_interval(10, n, exponential_backoff=True, seed="x") for n in range(1, 6)]
    for n, interval in enumerate(intervals, start=1):
        low = 10 * 2 ** (n - 2)
        assert low <= interval < 2 * low
    assert gate.next_interval(10, 9, exponential_backoff=True, max_wait=60, seed="x") == 60
    assert gate.next_interval(10, 3, exponential_backoff=True, seed="a") != gate.next_interval(
        10, 3, exponential_backoff=True, seed="b"
    )
