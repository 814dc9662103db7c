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
    "batch_size",
    "by_case_groups",
    "mapping_error",
    "record",
    "shape_of",
    "valid_shape",
]

RECORD_FIELDS = (
    "id",
    "type",
    "title",
    "caseId",
    "caseReference",
    "leadId",
    "dateCreated",
    "deadline",
    "solutionUrl",
)
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


def _group_of(task: Task) -> tuple[str, str | None]:
    """The ``by_case`` group of a task: its case; else the account (account-level tasks), its lead, or "other"
    (caseless, no lead, not account-level)."""
    if task.case_id is not None:
        return "case", task.case_id
    if task.is_account_level:
        return "account", None
    if task.lead_id:
        return "lead", task.lead_id
    return "other", None


def by_case_groups(tasks: Sequence[Task]) -> int:
    """How many items ``shape="by_case"`` makes of these tasks.

    :param tasks: the listed tasks.
    """
    return len({_group_of(t) for t in tasks})


def _by_case(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for task in tasks:
        scope, key = _group_of(task)
        group = groups.setdefault(
            (scope, key),
            {
                "scope": scope,
                "caseId": task.case_id,
                "caseReference": task.case_reference if scope == "case" else None,
                "leadId": key if scope == "lead" else None,
                "tasks": [],
            },
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


def batch_size(value: Any) -> int:
    """Validate the ``batch_size`` parameter: records per batch, a whole number >= 1 (None: the default).

    :param value: the parameter as given (or rendered).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return DEFAULT_BATCH_SIZE
    try:
        number = int(str(value).strip()) if isinstance(value, (str, float)) else int(value)
    except (TypeError, ValueError, OverflowError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        raise DebituraConfigError(
            f"batch_size={value!r} is not a number of records per batch: give a whole number >= 1 (e.g. "
            f"batch_size={DEFAULT_BATCH_SIZE}), or leave it out for the default {DEFAULT_BATCH_SIZE}."
        )
    return number


def mapping_error(
    shape: str, items: int, limit: int, tasks: int, cases: int | None = None
) -> DebituraConfigError | None:
    """The error to raise when a downstream task maps over more items than Airflow allows, else None. It
    suggests only what fits under the limit.

    :param shape: the output shape.
    :param items: how many items the value has.
    :param limit: ``[core] max_map_length``.
    :param tasks: how many tasks were listed.
    :param cases: how many ``by_case`` groups the listing makes (None: not known, not suggested).
    """
    if shape not in _MAPPABLE or items <= limit:
        return None
    min_batch = max(1, -(-tasks // limit))
    if shape == "batches":
        fixes = [f"a larger batch_size (>= {min_batch:,})"]
    else:
        fixes = [
            f"shape='batches' with batch_size >= {min_batch:,} (the default {DEFAULT_BATCH_SIZE} maps one task per "
            f"{DEFAULT_BATCH_SIZE})"
        ]
    if shape != "by_case" and cases is not None and cases <= limit:
        fixes.append(f"shape='by_case' ({cases:,} items: one per case)")
    fixes.append("shape='summary' (one digest)")
    return DebituraConfigError(
        f"The listing has {items:,} items (shape={shape!r}, {tasks:,} tasks) and a downstream task maps over it, "
        f"but Airflow maps at most [core] max_map_length = {limit:,}. Group it: {', '.join(fixes)}; "
        "or narrow it (task_types, a case scope); or raise max_map_length."
    )
