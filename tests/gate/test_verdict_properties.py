"""Properties of the gate's verdict over any spec-valid queue (issue 11, "Systematic").

Records are generated from the official spec's ``TaskDto`` (hypothesis-jsonschema, every nullable field
null or absent, unknown types, odd actions), then placed on a few cases (or none) with a few statuses, so
that the generated queues overlap the gate's case. For every queue and gate:

- **locality**: the verdict for case X depends only on X's own tasks and the account-level ones (a caseless
  task of a documented account-level type, or of a type the provider does not know, or none, with no lead):
  whatever happens to other cases' tasks (and to caseless tasks that are not account-level, such as a lead's
  SelectQuoteWinner or a lead's task of a new type) leaves X's verdict unchanged;
- **one rule, two paths**: the shared snapshot (one read of the whole queue) and the direct check (the
  case's own listing plus the account-level reads, type-filtered and, when the gate could open, the proof
  that no caseless task of another type is open) give the same verdict.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from helpers.openapi import SCHEMA_PREFIX, load_spec, schema_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from airflow_provider_debitura.gate import (
    ACCOUNT_LEVEL_TYPES,
    AccountSnapshot,
    DirectReads,
    GateSpec,
    record_batch,
)
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import drive
from airflow_provider_debitura.models import Records, Task, TaskType, parse_records

PROFILE = settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CASE_X, CASE_Y, CASE_Z = (str(uuid.uuid5(uuid.NAMESPACE_URL, f"gate-property/{n}")) for n in "XYZ")
TYPES = [*TaskType.known(), "FutureTaskType", None]


@pytest.fixture(scope="module")
def task_schema() -> dict[str, Any]:
    return schema_for(load_spec(), SCHEMA_PREFIX + "Tasks.TaskDto")


def placed(task_schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A spec-valid TaskDto put on case X, Y, Z or none, with an id, a date and a status of our choosing."""
    return st.builds(
        lambda record, n, case, kind, status, lead: {
            **record,
            "id": str(uuid.UUID(int=n)),
            "dateCreated": "2026-11-01T00:00:00Z",
            "caseId": case,
            "type": kind,
            "status": status,
            "leadId": lead,
        },
        from_schema(task_schema),
        st.integers(min_value=1, max_value=2**64),
        st.sampled_from([CASE_X, CASE_Y, CASE_Z, None]),
        st.sampled_from(TYPES),
        st.sampled_from(["Open", None, "Solved"]),
        st.sampled_from([None, str(uuid.uuid4())]),
    )


def specs() -> st.SearchStrategy[GateSpec]:
    types = st.none() | st.lists(st.sampled_from([t for t in TYPES if t]), min_size=1, max_size=4, unique=True)
    return st.builds(lambda t, a: GateSpec(CASE_X, None if t is None else frozenset(t), a), types, st.booleans())


def unique_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({r["id"]: r for r in records}.values())


def snapshot_verdict(records: list[dict[str, Any]], spec: GateSpec) -> tuple[str, tuple[str, ...]]:
    """The verdict from one read of the whole open queue (the server filters ``status=Open``)."""
    served = [r for r in records if r["status"] in ("Open", None)]
    verdict = AccountSnapshot.from_tasks(parse_records(Task, served, "task"), 0.0).verdict_for(spec)
    return verdict.state.value, tuple(sorted(verdict.ids))


def serve(call: ApiCall[Any], open_records: list[dict[str, Any]]) -> Any:
    """``GET /tasks`` as the server answers it: the type filter (a task with no type matches none), paging."""
    params = dict(call.params)
    types = {value for key, value in call.params if key == "type"}
    selected = [r for r in open_records if not types or r["type"] in types]
    page, size = int(params.get("Page", 1)), int(params.get("PageSize", 10))
    chunk = selected[(page - 1) * size : page * size]
    body = {"page": {"totalResults": len(selected), "pageSize": size, "currentPage": page}, "tasks": chunk}
    return call.parse(body)


def direct_verdict(records: list[dict[str, Any]], spec: GateSpec) -> tuple[str, tuple[str, ...]]:
    """The verdict from the case's own listing and the account-level reads (type-filtered, and the whole queue's
    first page or count when a gate that counts every type could open)."""
    open_records = [r for r in records if r["status"] in ("Open", None)]
    reads = DirectReads([spec.case_id], spec.account_types, prove_new_types=True)  # no shared read to lean on
    own: Records[Task] = parse_records(Task, [r for r in open_records if r["caseId"] == CASE_X], "task")
    drive(reads, lambda call: record_batch(own) if call.path.startswith("/cases/") else serve(call, open_records))
    verdict = reads.snapshot(0.0).verdict_for(spec)
    return verdict.state.value, tuple(sorted(verdict.ids))


def account_level(record: dict[str, Any]) -> bool:
    """The gate's rule, written out: no case, and a documented account-level type, or a type the provider does
    not know (or none) and no lead."""
    if record["caseId"] is not None:
        return False
    known = record["type"] in TaskType.known()
    return record["type"] in ACCOUNT_LEVEL_TYPES or (not known and record["leadId"] is None)


def elsewhere(record: dict[str, Any]) -> bool:
    """A task that is neither case X's nor account-level: it must not change X's verdict."""
    return record["caseId"] != CASE_X and not account_level(record)


def test_a_verdict_depends_only_on_the_cases_own_tasks_and_the_account_level_ones(task_schema):
    @PROFILE
    @given(st.lists(placed(task_schema), max_size=10), st.lists(placed(task_schema), max_size=6), specs())
    def check(queue: list[dict[str, Any]], noise: list[dict[str, Any]], spec: GateSpec) -> None:
        queue = unique_ids(queue)
        kept = [r for r in queue if not elsewhere(r)]
        other = [copy.deepcopy(r) for r in noise if elsewhere(r) and r["id"] not in {q["id"] for q in queue}]
        expected = snapshot_verdict(kept, spec)
        assert snapshot_verdict(queue, spec) == expected  # other cases' tasks removed
        assert snapshot_verdict(kept + other, spec) == expected  # other tasks added

    check()


def test_the_shared_snapshot_and_the_direct_check_agree(task_schema):
    @PROFILE
    @given(st.lists(placed(task_schema), max_size=10), specs())
    def check(queue: list[dict[str, Any]], spec: GateSpec) -> None:
        queue = unique_ids(queue)
        assert snapshot_verdict(queue, spec) == direct_verdict(queue, spec)

    check()
