"""The list operator's XCom shapes on 5,000 open tasks: size per task, and what each holds.

Sizes are JSON bytes (what Airflow stores). Run with ``-s`` to print the table of docs/operators.md:

    .venv/bin/python -m pytest tests/operators/test_list_output.py -s -q
"""

from __future__ import annotations

import json

import pytest
from helpers.context import task_context

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.operators import DebituraListTasksOperator
from airflow_provider_debitura.operators.list_output import RECORD_FIELDS, SHAPES, mapping_error

# Upper bounds in bytes per task on large:5000 (measured values in docs/operators.md, with headroom).
BOUNDS = {"full": 600, "records": 440, "ids": 45, "by_case": 380, "batches": 440, "summary": 2}


@pytest.fixture(scope="module")
def large(request: pytest.FixtureRequest):
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="large:5000", api_key="shapes-key-0c1d") as sb:
        mp = pytest.MonkeyPatch()
        mp.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sb.conn_json())
        yield sb
        mp.undo()


def listed(**kwargs):
    # 5,000 records are about 2 MB, over the default max_xcom_bytes (docs/list-xcom-size.md): these tests
    # measure the shapes themselves.
    op = DebituraListTasksOperator(task_id="list", max_xcom_bytes=50_000_000, **kwargs)
    return op.execute(task_context(op))


def test_bytes_per_task_by_shape(large) -> None:
    open_tasks = large.state.list_tasks("Open")
    sizes = {}
    for shape in SHAPES:
        value = listed(shape=shape)
        sizes[shape] = len(json.dumps(value)) / len(open_tasks)
    print("\n| shape | bytes per task | 5,000 tasks |")
    print("|---|---:|---:|")
    for shape, per_task in sizes.items():
        print(f"| `{shape}` | {per_task:,.1f} | {per_task * len(open_tasks) / 1e6:.2f} MB |")
    for shape, bound in BOUNDS.items():
        assert sizes[shape] < bound, (shape, sizes)
    assert sizes["records"] < 0.8 * sizes["full"] and sizes["ids"] < 0.1 * sizes["full"]


def test_each_shape_holds_every_task(large) -> None:
    ids = {t["id"] for t in large.state.list_tasks("Open")}
    records = listed()
    assert {r["id"] for r in records} == ids and all(set(r) == set(RECORD_FIELDS) for r in records)
    assert set(listed(shape="ids")) == ids
    by_case = listed(shape="by_case")
    assert {t["id"] for g in by_case for t in g["tasks"]} == ids
    assert len({g["caseId"] for g in by_case}) == len(by_case)
    account = next(g for g in by_case if g["caseId"] is None)
    assert account["tasks"][0]["type"] in ("AssignBankAccount", "SignContract")
    batches = listed(shape="batches", batch_size="250")
    assert [len(b) for b in batches] == [250] * 20 and {r["id"] for b in batches for r in b} == ids
    summary = listed(shape="summary", needs_human_only=True)
    human = [
        t
        for t in large.state.list_tasks("Open")
        if t["type"] not in ("ReplyToChat", "ClientInputRequired", "MoreInfoNeeded")
    ]
    assert summary["total"] == len(human) and sum(summary["by_type"].values()) == len(human)
    assert summary["api_resolvable"] == 0 and len(summary["oldest"]) == 20


def test_bad_shape_and_contradicting_filters_fail_before_any_request(large) -> None:
    large.control("DELETE", "/requests")
    with pytest.raises(DebituraConfigError, match="shape='rows' is not an output shape"):
        listed(shape="rows")
    with pytest.raises(DebituraConfigError, match="exclude each other"):
        listed(api_resolvable_only=True, needs_human_only=True)
    with pytest.raises(DebituraConfigError, match="can never match"):
        listed(needs_human_only=True, task_types=["ReplyToChat"])
    assert large.control("GET", "/counters").json().get("total", 0) == 0


def test_mapping_error_names_the_limit_and_the_fix() -> None:
    assert mapping_error("records", 1024, 1024, 1024) is None
    assert mapping_error("summary", 1, 1, 5000) is None
    error = mapping_error("records", 5000, 1024, 5000)
    assert error is not None
    assert (
        "max_map_length = 1,024" in str(error) and "batch_size >= 5" in str(error) and "shape='summary'" in str(error)
    )
