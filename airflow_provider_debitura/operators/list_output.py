"""The list operator's output shapes: what goes into XCom, sized for XCom and for task mapping.

Bytes per task for each shape are measured in docs/operators.md (``tests/operators/test_list_output.py``
asserts the bounds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.models import Task

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "RECORD_FIELDS",
    "SHAPES",
    "SUMMARY_OLDEST",
    "mapping_error",
    "record",
    "shape_of",
    "valid_shape",
]

RECORD_FIELDS = ("id", "type", "title", "caseId", "caseReference", "dateCreated", "deadline", "solutionUrl")
"""The fields of a compact record: what a DAG acts on (who, what, where to click, how urgent)."""

SHAPES = ("records", "full", "ids", "by_case", "batches", "summary")
DEFAULT_BATCH_SIZE = 100
SUMMARY_OLDEST = 20
_MAPPABLE = frozenset({"records", "full", "ids", "by_case", "batches"})


def valid_shape(value: Any) -> str:
    """Validate the ``shape`` parameter.

    :param value: the parameter as given (or rendered).
    """
    text = str(value).strip().lower() if value is not None else "records"
    if text not in SHAPES:
        raise DebituraConfigError(
            f"shape={value!r} is not an output shape; use one of {', '.join(SHAPES)} (default records)."
        )
    return text


def record(task: Task) -> dict[str, Any]:
    """A compact record of a task: :data:`RECORD_FIELDS` with the API's field names.

    :param task: the task.
    """
    full = task.to_api_dict()
    return {name: full.get(name) for name in RECORD_FIELDS}


def _by_case(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    groups: dict[str | None, dict[str, Any]] = {}
    for task in tasks:
        group = groups.setdefault(
            task.case_id, {"caseId": task.case_id, "caseReference": task.case_reference, "tasks": []}
        )
        entry = record(task)
        del entry["caseId"], entry["caseReference"]
        group["tasks"].append(entry)
    return list(groups.values())


def _summary(tasks: Sequence[Task]) -> dict[str, Any]:
    oldest = sorted(tasks, key=lambda t: (t.date_created, t.id))[:SUMMARY_OLDEST]
    return {
        "total": len(tasks),
        "by_type": dict(sorted(Counter(t.type or "(none)" for t in tasks).items())),
        "cases": len({t.case_id for t in tasks if t.case_id}),
        "api_resolvable": sum(1 for t in tasks if t.is_api_resolvable),
        "account_level": sum(1 for t in tasks if t.is_account_level),
        "oldest": [record(t) for t in oldest],
    }


def shape_of(tasks: Sequence[Task], shape: str, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """The XCom value for ``tasks`` in the given shape.

    :param tasks: the listed tasks, in API order.
    :param shape: one of :data:`SHAPES`.
    :param batch_size: tasks per batch for ``batches``.
    """
    if shape == "full":
        return [t.to_api_dict() for t in tasks]
    if shape == "ids":
        return [t.id for t in tasks]
    if shape == "by_case":
        return _by_case(tasks)
    if shape == "batches":
        records = [record(t) for t in tasks]
        return [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    if shape == "summary":
        return _summary(tasks)
    return [record(t) for t in tasks]


def mapping_error(shape: str, items: int, limit: int, tasks: int) -> DebituraConfigError | None:
    """The error to raise when a downstream task maps over more items than Airflow allows, else None.

    :param shape: the output shape.
    :param items: how many items the value has.
    :param limit: ``[core] max_map_length``.
    :param tasks: how many tasks were listed.
    """
    if shape not in _MAPPABLE or items <= limit:
        return None
    min_batch = max(1, -(-tasks // limit))
    return DebituraConfigError(
        f"The listing has {items:,} items (shape={shape!r}, {tasks:,} tasks) and a downstream task maps over it, "
        f"but Airflow maps at most [core] max_map_length = {limit:,}. Group it: shape='batches' with "
        f"batch_size >= {min_batch:,} (the default {DEFAULT_BATCH_SIZE} maps one task per {DEFAULT_BATCH_SIZE}), "
        "shape='by_case' (one per case), "
        "or shape='summary' (one digest); or narrow it (task_types, a case scope); or raise max_map_length."
    )
