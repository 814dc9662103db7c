"""Issue 24 item 5: the list operator refuses an XCom value over ``max_xcom_bytes`` before pushing anything, and
names the size, the cap and the shapes and filters that fit (docs/list-xcom-size.md).

The sizes are measured in memory on 50,000 task records shaped like the sandbox's ``large:N``; one test runs the
operator against the real sandbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from helpers.context import task_context
from helpers.sandbox import clear_counters, counters

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.links import recorded_solution_url
from airflow_provider_debitura.models import Task
from airflow_provider_debitura.operators import DebituraListTasksOperator
from airflow_provider_debitura.operators.list_output import (
    DEFAULT_MAX_XCOM_BYTES,
    SHAPES,
    max_xcom_bytes,
    shape_of,
    shape_size,
    xcom_size_error,
)
from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import generate_large

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
CHAT_ACTION = {"method": "POST", "path": "/cases/{caseId}/chats"}


def _template(kind: str) -> Task:
    return Task.model_validate(
        {"id": "x", "type": kind, "typeLabel": kind, "status": "Open", "dateCreated": "2026-12-01T00:00:00Z"}
        | ({"action": CHAT_ACTION} if kind in ("ReplyToChat", "ClientInputRequired", "MoreInfoNeeded") else {})
    )


def make_tasks(count: int) -> list[Task]:
    """``count`` open tasks as ``large:N`` makes them (the sandbox's own generator gives each one's type and case),
    built by copying one validated task per type: 50,000 in well under a second."""
    templates: dict[str, Task] = {}
    tasks = []
    for i, spec in enumerate(generate_large(count)["tasks"]):
        kind, ref = spec["type"], spec.get("caseCreditorReference")
        template = templates.get(kind) or templates.setdefault(kind, _template(kind))
        task_id = f"{i:08x}-7a5c-5b1e-8f00-{i * 7919 % 10**12:012d}"
        if ref is None:  # account-level
            update: dict[str, Any] = {"title": kind, "solution_url": "https://app.debitura.com/creditor/settings"}
        else:
            case_id = f"{int(ref.removeprefix('LRG-')) - 1:08x}-0c0a-5e1d-9a00-000000000000"
            update = {
                "title": f"{kind}: {ref}",
                "case_id": case_id,
                "case_reference": ref,
                "solution_url": f"https://app.debitura.com/creditor/cases/{case_id}?task={task_id}",
            }
        tasks.append(
            template.model_copy(update={"id": task_id, "date_created": START + timedelta(seconds=i), **update})
        )
    return tasks


@pytest.fixture(scope="module")
def queue_50k() -> list[Task]:
    return make_tasks(50_000)


def test_the_measured_size_is_the_json_size_of_each_shape() -> None:
    tasks = make_tasks(600)
    odd = tasks[5].model_copy(update={"title": "Réponse « urgente » ✓", "type": None, "case_id": None})
    lead = tasks[6].model_copy(update={"case_id": None, "lead_id": "0a0a0a0a-0000-4000-8000-00000000000a"})
    tasks[5:7] = [odd, lead]
    for shape in SHAPES:
        for per_batch in (1, 7, 100, 1_000) if shape == "batches" else (100,):
            exact = len(json.dumps(shape_of(tasks, shape, per_batch)))
            assert shape_size(tasks, shape, per_batch) == exact, (shape, per_batch)
            assert shape_size(tasks, shape, per_batch, limit=exact) == exact
            assert shape_size(tasks, shape, per_batch, limit=exact - 1) is None
    assert shape_size([], "records") == 2 and shape_size([], "by_case") == 2 and shape_size([], "batches") == 2


def test_at_50000_tasks_only_the_summary_fits_the_default_cap(queue_50k: list[Task]) -> None:
    fits = {shape: shape_size(queue_50k, shape, limit=DEFAULT_MAX_XCOM_BYTES) for shape in SHAPES}
    assert [shape for shape, size in fits.items() if size is not None] == ["summary"]
    assert fits["summary"] is not None and fits["summary"] < 10_000
    assert shape_size(queue_50k, "ids", limit=2_000_000) == 2 + 50_000 * 38 + 49_999 * 2  # 40 bytes a task


def test_the_refusal_names_the_size_the_cap_the_parameter_and_what_fits(queue_50k: list[Task]) -> None:
    error = xcom_size_error(queue_50k, "records", 100, DEFAULT_MAX_XCOM_BYTES)
    assert error is not None
    message = str(error)
    size = int(re.search(r"The listing is ([\d,]+) bytes", message)[1].replace(",", ""))  # type: ignore[index]
    assert 18_000_000 < size < 22_000_000 and "shape='records', 50,000 tasks" in message
    assert "over max_xcom_bytes = 1,000,000; nothing was pushed" in message
    assert f"raise max_xcom_bytes to at least {size:,}" in message
    summary_size = shape_size(queue_50k, "summary")
    assert f"shapes that fit: shape='summary' ({summary_size:,} bytes)" in message
    assert "shape='ids'" not in message and "shape='by_case'" not in message
    # The filters that fit, each with its true size: the two account-level types (500 tasks each).
    suggested = re.findall(r"task_types=\['(\w+)'\] \(([\d,]+) tasks, ([\d,]+) bytes\)", message)
    assert {kind for kind, _, _ in suggested} == {"AssignBankAccount", "SignContract"}
    for kind, count, nbytes in suggested:
        subset = [t for t in queue_50k if t.type == kind]
        assert int(count.replace(",", "")) == len(subset) == 500
        assert int(nbytes.replace(",", "")) == shape_size(subset, "records") <= DEFAULT_MAX_XCOM_BYTES
    assert "needs_human_only" not in message and "api_resolvable_only" not in message  # 21,000 / 29,000 tasks


def test_a_smaller_listing_gets_the_shapes_and_filters_that_fit() -> None:
    tasks = make_tasks(3_000)
    message = str(xcom_size_error(tasks, "by_case", 100, DEFAULT_MAX_XCOM_BYTES))
    assert f"shape='ids' ({shape_size(tasks, 'ids'):,} bytes)" in message
    human = shape_size([t for t in tasks if not t.is_api_resolvable], "by_case")
    assert f"needs_human_only=True (1,260 tasks, {human:,} bytes)" in message
    assert "filters that fit with shape='by_case'" in message and "more single task types" in message
    quiet = str(xcom_size_error(tasks, "by_case", 100, DEFAULT_MAX_XCOM_BYTES, by_kind=False))
    assert "needs_human_only" not in quiet and "api_resolvable_only" not in quiet
    assert xcom_size_error(tasks, "ids", 100, DEFAULT_MAX_XCOM_BYTES) is None
    assert "no other shape fits" in str(xcom_size_error(tasks, "summary", 100, 1_000))


@pytest.mark.parametrize("value", [0, "0", -5, 2.5, True, "1MB", ""])
def test_a_bad_max_xcom_bytes_names_the_parameter_the_value_and_the_fix(value: Any) -> None:
    if value == "":
        assert max_xcom_bytes(value) == DEFAULT_MAX_XCOM_BYTES
        return
    with pytest.raises(DebituraConfigError) as err:
        max_xcom_bytes(value)
    message = str(err.value)
    assert f"max_xcom_bytes={value!r}" in message and "whole number >= 1" in message and "1,000,000" in message


def test_max_xcom_bytes_takes_whole_numbers_in_any_spelling() -> None:
    assert max_xcom_bytes(None) == max_xcom_bytes("none") == DEFAULT_MAX_XCOM_BYTES == 1_000_000
    assert max_xcom_bytes("5_000_000") == max_xcom_bytes(5e6) == max_xcom_bytes(" 5000000 ") == 5_000_000


# -- through the real sandbox --

LARGE = 3_000  # records: about 1.24 MB, over the default cap; 30 pages


@pytest.fixture(scope="module")
def large() -> Iterator[SandboxServer]:
    with SandboxServer(scenario=f"large:{LARGE}", api_key="xcom-size-key-7e1f") as sb:
        mp = pytest.MonkeyPatch()
        mp.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sb.conn_json())
        yield sb
        mp.undo()


def run(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
    op = DebituraListTasksOperator(task_id="list", **kwargs)
    context = task_context(op)
    return op.execute(context), context


def test_the_default_shape_over_the_cap_fails_after_the_listing_and_pushes_nothing(large: SandboxServer) -> None:
    clear_counters(large)
    op = DebituraListTasksOperator(task_id="list")
    context = task_context(op)
    with pytest.raises(DebituraConfigError) as err:
        op.execute(context)
    refused = counters(large)
    # Nothing written: no XCom key, no "Resolve in Debitura" link.
    assert context["ti"].xcom == {} and recorded_solution_url(context) is None
    clear_counters(large)
    records, _ = run(max_xcom_bytes=10_000_000)  # the same listing under a raised cap
    assert refused == counters(large) and refused["GET /tasks"] >= LARGE // 100  # no request more or less
    message = str(err.value)
    assert f"The listing is {len(json.dumps(records)):,} bytes of XCom (shape='records', {LARGE:,} tasks)" in message
    assert "over max_xcom_bytes = 1,000,000; nothing was pushed" in message and "shape='ids'" in message


def test_what_the_refusal_suggests_goes_through(large: SandboxServer) -> None:
    ids, _ = run(shape="ids")
    assert len(ids) == LARGE and len(json.dumps(ids)) <= DEFAULT_MAX_XCOM_BYTES
    unpushed, _ = run(do_xcom_push=False)  # no XCom, no cap
    assert len(unpushed) == LARGE


def test_a_bad_cap_fails_before_any_request(large: SandboxServer) -> None:
    clear_counters(large)
    with pytest.raises(DebituraConfigError, match="max_xcom_bytes='lots' is not a size in bytes"):
        run(max_xcom_bytes="lots")
    assert counters(large).get("total", 0) == 0
