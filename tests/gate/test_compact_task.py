"""The compact task: a plain tuple of strings as a read keeps it (PackedTask, which the garbage collector untracks),
a named tuple as a verdict reads it (CompactTask), its camelCase XCom form (COMPACT_FIELDS), and its size."""

from __future__ import annotations

import gc
import json
import pickle
import re
import sys

from airflow_provider_debitura.gate import (
    CASE_ID,
    COMPACT_FIELDS,
    TASK_ID,
    TASK_TYPE,
    CompactTask,
    GateSpec,
    GateState,
    Part,
    compact,
    compact_page_call,
    read_records,
    task_dict,
    view,
)
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.models import Task

CASE = "5f0c2b8e-4d1a-4c3e-9a7b-2e6f8d9c0a11"
RECORD = {  # every field distinct, so a field read under the wrong name cannot pass
    "id": "task-id-1",
    "type": "ReplyToChat",
    "title": "the title",
    "status": "Open",
    "caseId": CASE,
    "caseReference": "INV-1001",
    "leadId": "lead-7",
    "solutionUrl": "https://app.debitura.test/tasks/task-id-1",
    "dateCreated": "2026-12-01T10:00:00Z",
}


def camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


def test_compact_fields_and_the_named_tuple_agree():
    """Each CompactTask field holds the API field of its camelCase name; COMPACT_FIELDS are some of those
    names, in the named tuple's order; and the XCom dict carries exactly them, with the API's values."""
    task = Task.model_validate(RECORD)
    kept = compact(task)
    api = task.to_api_dict()
    for name, value in zip(CompactTask._fields, kept, strict=True):
        assert value == getattr(task, name) == api[camel(name)], name
    names = [camel(name) for name in CompactTask._fields]
    assert set(COMPACT_FIELDS) <= set(names)
    assert list(COMPACT_FIELDS) == [n for n in names if n in COMPACT_FIELDS]  # the same order
    shown = task_dict(kept)
    assert tuple(shown) == COMPACT_FIELDS
    assert shown == {key: api[key] for key in COMPACT_FIELDS}
    assert {"id", "type", "caseId", "title", "solutionUrl"} == set(COMPACT_FIELDS)  # what XCom promises


def test_a_compact_task_is_a_tuple_of_the_same_size_built_positionally():
    values = ("t", "ReplyToChat", CASE, "title", "url", "INV-1", None)
    named = CompactTask(*values)
    assert named == values and tuple(named) == values and named[0] == named.id == "t"
    assert sys.getsizeof(named) == sys.getsizeof(values)  # no per-instance dict: the memory of a plain tuple
    assert not hasattr(named, "__dict__")


def test_a_read_keeps_plain_tuples_that_the_collector_untracks_and_views_name_them():
    """The point of the packed shape (docs/triggerer-scale.md): after one collection not one task of a read is
    tracked, where every named tuple stays tracked; the indexes and the views read the same fields."""
    batch = read_records([RECORD | {"id": f"t-{i}"} for i in range(100)])
    assert all(type(t) is tuple for t in batch.open) and len(batch.open) == 100
    gc.collect()
    assert not any(gc.is_tracked(t) for t in batch.open) and not any(gc.is_tracked(p) for p in batch.listed)
    named = [view(t) for t in batch.open]
    assert all(gc.is_tracked(t) for t in named)  # why no queue, no part and no verdict holds views
    first = named[0]
    assert type(first) is CompactTask and view(first) is first and first == batch.open[0]
    assert (first.id, first.type, first.case_id) == (
        batch.open[0][TASK_ID],
        batch.open[0][TASK_TYPE],
        batch.open[0][CASE_ID],
    )
    assert CompactTask._fields.index("id") == TASK_ID and CompactTask._fields.index("type") == TASK_TYPE
    assert CompactTask._fields.index("case_id") == CASE_ID
    assert task_dict(batch.open[0]) == task_dict(first)


def test_records_pickle_and_reach_xcom_as_plain_json():
    batch = read_records([RECORD, RECORD | {"id": "account", "type": "SignContract", "caseId": None}])
    assert pickle.loads(pickle.dumps(batch)) == batch
    verdict = GateSpec.of(CASE).verdict(Part(batch.open[:1]), Part(batch.open[1:]))
    assert verdict.state is GateState.BLOCKED and verdict.ids == ("task-id-1", "account")
    blockers = verdict.blockers()
    assert json.loads(json.dumps(blockers)) == blockers  # a named tuple would come back as a list
    assert all(type(b) is dict for b in blockers)
    assert verdict.first_solution_url == RECORD["solutionUrl"] and verdict.case_reference == "INV-1001"


def test_a_read_reuses_an_earlier_reads_task_when_it_did_not_change():
    """A reader of the whole queue passes its previous read's tasks: an unchanged task stays the same object (no
    new object for the collector to age), a changed or new one is built anew, and the values are as without."""
    other, new = RECORD | {"id": "task-id-2"}, RECORD | {"id": "task-id-3"}
    changed = RECORD | {"title": "a new title"}
    first = read_records([RECORD, other])
    known = {t[TASK_ID]: t for t in first.open}
    body = {"page": {"totalResults": 3, "pageSize": 100, "currentPage": 1}, "tasks": [changed, other, new]}
    again = compact_page_call(endpoints.get_tasks_page(status="Open"), known=known).parse(body).batch.open
    assert again == read_records([changed, other, new]).open  # the same values as a read without them
    assert again[1] is first.open[1]
    assert again[0] is not first.open[0] and view(again[0]).title == "a new title" and again[2][TASK_ID] == "task-id-3"
