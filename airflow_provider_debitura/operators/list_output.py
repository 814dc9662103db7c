"""The list operator's output shapes: what goes into XCom, sized for XCom and for task mapping.

Bytes per task for each shape are measured in docs/operators.md (``tests/operators/test_list_output.py``
asserts the bounds); the XCom size cap and the sizes at 5,000 to 50,000 tasks are in docs/list-xcom-size.md.
``shape="counts"`` on the account scope is built from the API's totals instead (``operators.list_counts``), through
the same :func:`digest` as ``summary``.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.models import Task

__all__ = [
    "COUNTS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_XCOM_BYTES",
    "RECORD_FIELDS",
    "SHAPES",
    "SHAPE_NAMES",
    "SUMMARY_OLDEST",
    "batch_size",
    "by_case_groups",
    "digest",
    "digest_size_error",
    "json_size",
    "mapping_error",
    "max_xcom_bytes",
    "record",
    "shape_of",
    "shape_size",
    "valid_shape",
    "xcom_size_error",
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
"""The shapes made from a listing (every page read)."""
COUNTS = "counts"
"""The digest of ``summary`` counted from the API's totals on the account scope (``operators.list_counts``: a few
requests at any queue size); with a case scope, built from the case's tasks like ``summary``."""
SHAPE_NAMES = (*SHAPES, COUNTS)
"""Every ``shape`` the list operator takes."""
DEFAULT_BATCH_SIZE = 100
SUMMARY_OLDEST = 20
DEFAULT_MAX_XCOM_BYTES = 1_000_000
"""The largest XCom value the list operator pushes unless ``max_xcom_bytes`` says otherwise (JSON bytes):
about 2,400 compact records, 25,000 ids, or a summary at any queue size (docs/list-xcom-size.md)."""
_MAPPABLE = frozenset({"records", "full", "ids", "by_case", "batches"})


def valid_shape(value: Any) -> str:
    """Validate the ``shape`` parameter.

    :param value: the parameter as given (or rendered).
    """
    text = str(value).strip().lower() if value is not None else "records"
    if text not in SHAPE_NAMES:
        raise DebituraConfigError(
            f"shape={value!r} is not an output shape; use one of {', '.join(SHAPE_NAMES)} (default records)."
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


def _group_head(task: Task, scope: str, key: str | None) -> dict[str, Any]:
    """A ``by_case`` item without its tasks (``"tasks": []``), from the group's first task."""
    return {
        "scope": scope,
        "caseId": task.case_id,
        "caseReference": task.case_reference if scope == "case" else None,
        "leadId": key if scope == "lead" else None,
        "tasks": [],
    }


def _group_entry(task: Task) -> dict[str, Any]:
    """A task's record inside its ``by_case`` item (the case fields are the item's own)."""
    entry = record(task)
    del entry["caseId"], entry["caseReference"]
    return entry


def _by_case(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for task in tasks:
        scope, key = _group_of(task)
        if (scope, key) not in groups:
            groups[scope, key] = _group_head(task, scope, key)
        groups[scope, key]["tasks"].append(_group_entry(task))
    return list(groups.values())


def digest(
    by_type: Mapping[str, int],
    *,
    cases: int | None,
    api_resolvable: int,
    account_level: int,
    oldest: Iterable[Task],
    counted_from: str | None = None,
) -> dict[str, Any]:
    """The digest of ``shape="summary"`` and ``shape="counts"``: ``total`` (the sum of ``by_type``), ``by_type``
    (types with a count, sorted), ``cases``, ``api_resolvable``, ``account_level``, the :data:`SUMMARY_OLDEST`
    oldest records (``dateCreated``, then id) and, for ``counts``, ``counted_from``.

    :param by_type: tasks per type name.
    :param cases: distinct cases (None: not known).
    :param api_resolvable: tasks of the chat-driven types.
    :param account_level: account-level tasks.
    :param oldest: candidates for the oldest records (any order; the oldest are picked).
    :param counted_from: ``"totals"`` (the API's totals) or ``"tasks"`` (the tasks read); None: no such key.
    """
    counts = {name: n for name, n in sorted(by_type.items()) if n > 0}
    picked = heapq.nsmallest(SUMMARY_OLDEST, oldest, key=lambda t: (t.date_created, t.id))
    value: dict[str, Any] = {
        "total": sum(counts.values()),
        "by_type": counts,
        "cases": cases,
        "api_resolvable": api_resolvable,
        "account_level": account_level,
        "oldest": [record(t) for t in picked],
    }
    if counted_from is not None:
        value["counted_from"] = counted_from
    return value


def _summary(tasks: Sequence[Task], counted_from: str | None = None) -> dict[str, Any]:
    return digest(
        Counter(t.type or "(none)" for t in tasks),
        cases=len({t.case_id for t in tasks if t.case_id}),
        api_resolvable=sum(1 for t in tasks if t.is_api_resolvable),
        account_level=sum(1 for t in tasks if t.is_account_level),
        oldest=tasks,
        counted_from=counted_from,
    )


def shape_of(tasks: Sequence[Task], shape: str, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """The XCom value for ``tasks`` in the given shape.

    :param tasks: the listed tasks, in API order.
    :param shape: one of :data:`SHAPE_NAMES` (``counts``: the digest of these tasks, ``counted_from="tasks"``).
    :param batch_size: tasks per batch for ``batches``.
    """
    if shape == COUNTS:
        return _summary(tasks, counted_from="tasks")
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


def _whole_number(value: Any, default: int) -> int | None:
    """``value`` as a whole number >= 1 (``default`` for None, "" or "none"); None when it is not one."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return default
    try:
        number = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        return None
    return number


def batch_size(value: Any) -> int:
    """Validate the ``batch_size`` parameter: records per batch, a whole number >= 1 (None: the default).

    :param value: the parameter as given (or rendered).
    """
    number = _whole_number(value, DEFAULT_BATCH_SIZE)
    if number is None:
        raise DebituraConfigError(
            f"batch_size={value!r} is not a number of records per batch: give a whole number >= 1 (e.g. "
            f"batch_size={DEFAULT_BATCH_SIZE}), or leave it out for the default {DEFAULT_BATCH_SIZE}."
        )
    return number


def max_xcom_bytes(value: Any) -> int:
    """Validate the ``max_xcom_bytes`` parameter: the largest XCom value to push, in JSON bytes, a whole
    number >= 1 (None: :data:`DEFAULT_MAX_XCOM_BYTES`).

    :param value: the parameter as given (or rendered).
    """
    number = _whole_number(value, DEFAULT_MAX_XCOM_BYTES)
    if number is None:
        raise DebituraConfigError(
            f"max_xcom_bytes={value!r} is not a size in bytes: give a whole number >= 1 (e.g. "
            f"max_xcom_bytes=5_000_000 for 5 MB, if your XCom backend stores values that large), or leave it out "
            f"for the default {DEFAULT_MAX_XCOM_BYTES:,}."
        )
    return number


def json_size(value: Any) -> int:
    """The bytes of ``value`` as JSON text, as :func:`json.dumps` writes it (ASCII only, so characters are
    bytes): the size of the XCom value Airflow stores.

    :param value: a JSON-able value.
    """
    return len(json.dumps(value))


def _list_increments(tasks: Sequence[Task], item_size: Callable[[Task], int]) -> Iterator[int]:
    """The bytes a JSON list of one item per task adds, task by task: ``[]``, then each item and its ``, ``."""
    yield 2
    for index, task in enumerate(tasks):
        yield item_size(task) + (2 if index else 0)


def _batch_increments(tasks: Sequence[Task], item_size: Callable[[Task], int], per_batch: int) -> Iterator[int]:
    """The bytes ``shape="batches"`` adds task by task (a list of lists of records)."""
    yield 2
    for index, task in enumerate(tasks):
        if index % per_batch == 0:
            yield 2 + (2 if index else 0)  # the new batch's brackets, and the ", " before it
        else:
            yield 2  # the ", " before this record in its batch
        yield item_size(task)


def _by_case_increments(tasks: Sequence[Task], item_size: Callable[[Task], int]) -> Iterator[int]:
    """The bytes ``shape="by_case"`` adds task by task: a group's head when its first task comes, then entries."""
    yield 2
    counts: dict[tuple[str, str | None], int] = {}
    for task in tasks:
        scope, key = _group_of(task)
        seen = counts.get((scope, key), 0)
        if seen == 0:
            yield json_size(_group_head(task, scope, key)) + (2 if counts else 0)
        counts[scope, key] = seen + 1
        yield item_size(task) + (2 if seen else 0)


_ITEM_OF: dict[str, Callable[[Task], Any]] = {
    "records": record,
    "full": Task.to_api_dict,
    "ids": lambda task: task.id,
    "batches": record,
    "by_case": _group_entry,
}


class _Sizer:
    """The JSON size of one shape over a listing or a part of it, each task's item measured once.

    :param shape: one of :data:`SHAPE_NAMES`.
    :param per_batch: tasks per batch for ``batches``.
    """

    def __init__(self, shape: str, per_batch: int) -> None:
        self.shape = shape
        self.per_batch = per_batch
        self._item: Callable[[Task], Any] = _ITEM_OF.get(shape, record)  # (summary: sized whole)
        self._sizes: dict[int, int] = {}

    def _item_size(self, task: Task) -> int:
        size = self._sizes.get(id(task))
        if size is None:
            size = self._sizes[id(task)] = json_size(self._item(task))
        return size

    def _increments(self, tasks: Sequence[Task]) -> Iterator[int]:
        if self.shape in ("summary", COUNTS):
            return iter([json_size(shape_of(tasks, self.shape))])
        if self.shape == "by_case":
            return _by_case_increments(tasks, self._item_size)
        if self.shape == "batches":
            return _batch_increments(tasks, self._item_size, self.per_batch)
        return _list_increments(tasks, self._item_size)

    def size(self, tasks: Sequence[Task], limit: int | None = None) -> int | None:
        """The bytes of ``shape_of(tasks, ...)``, or None as soon as they pass ``limit``.

        :param tasks: the tasks (any part of the listing this sizer measured before).
        :param limit: stop above this; None: measure it all.
        """
        total = 0
        for increment in self._increments(tasks):
            total += increment
            if limit is not None and total > limit:
                return None
        return total


def shape_size(
    tasks: Sequence[Task], shape: str, batch_size: int = DEFAULT_BATCH_SIZE, limit: int | None = None
) -> int | None:
    """The JSON bytes of ``shape_of(tasks, shape, batch_size)`` (see :func:`json_size`), without building it.

    :param tasks: the listed tasks, in API order.
    :param shape: one of :data:`SHAPE_NAMES`.
    :param batch_size: tasks per batch for ``batches``.
    :param limit: stop as soon as the size passes this and return None (the work stays about ``limit`` bytes
        of JSON however large the listing); None: measure it all.
    """
    return _Sizer(shape, batch_size).size(tasks, limit)


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


def digest_size_error(value: dict[str, Any], limit: int) -> DebituraConfigError | None:
    """The error to raise when a ``shape="counts"`` digest is over ``max_xcom_bytes``, else None (it is a few kB at
    any queue size: only a very low cap refuses it).

    :param value: the digest.
    :param limit: ``max_xcom_bytes``.
    """
    size = json_size(value)
    if size <= limit:
        return None
    return DebituraConfigError(
        f"The digest is {size:,} bytes of XCom (shape='counts', {value['total']:,} tasks counted), over "
        f"max_xcom_bytes = {limit:,}; nothing was pushed. It holds the counts and the {SUMMARY_OLDEST} oldest "
        f"records at any queue size: raise max_xcom_bytes to at least {size:,}."
    )


_FILTERS_SHOWN = 5


def _fitting_shapes(tasks: Sequence[Task], shape: str, per_batch: int, limit: int) -> list[str]:
    fits = []
    for other in SHAPES:
        size = shape_size(tasks, other, per_batch, limit) if other != shape else None
        if size is not None:
            fits.append(f"shape={other!r} ({size:,} bytes)")
    return fits


def _fitting_filters(tasks: Sequence[Task], sizer: _Sizer, limit: int, by_kind: bool) -> list[str]:
    """The filters that narrow this listing to a value that fits, in the sizer's shape, largest first."""
    subsets: dict[str, list[Task]] = {}
    if by_kind:
        subsets["needs_human_only=True"] = [t for t in tasks if not t.is_api_resolvable]
        subsets["api_resolvable_only=True"] = [t for t in tasks if t.is_api_resolvable]
    for task in tasks:
        subsets.setdefault(f"task_types=[{task.type or '(none)'!r}]", []).append(task)
    fits = []
    for name, subset in subsets.items():
        size = sizer.size(subset, limit) if 0 < len(subset) < len(tasks) else None
        if size is not None:
            fits.append((size, f"{name} ({len(subset):,} tasks, {size:,} bytes)"))
    fits.sort(reverse=True)
    shown = [text for _, text in fits[:_FILTERS_SHOWN]]
    if len(fits) > _FILTERS_SHOWN:
        shown.append(f"{len(fits) - _FILTERS_SHOWN} more single task types")
    return shown


def xcom_size_error(
    tasks: Sequence[Task], shape: str, per_batch: int, limit: int, *, by_kind: bool = True
) -> DebituraConfigError | None:
    """The error to raise when the XCom value of ``tasks`` in ``shape`` is over ``limit`` bytes, else None.

    It names the size, the limit and the parameter, and suggests only what fits: the other shapes and the
    filters (one task type; needs-human / API-resolvable) that bring this listing under the limit, with their
    sizes. The value is measured item by item without being built; each suggestion stops measuring at the
    limit, so a refusal costs one pass over the listing plus about ``limit`` bytes per suggestion.

    :param tasks: the listed tasks, in API order, after the operator's own filters.
    :param shape: the output shape asked for.
    :param per_batch: tasks per batch for ``batches``.
    :param limit: ``max_xcom_bytes``.
    :param by_kind: suggest ``needs_human_only`` / ``api_resolvable_only`` (False when one is already set).
    """
    sizer = _Sizer(shape, per_batch)
    size = sizer.size(tasks) or 0
    if size <= limit:
        return None
    shapes = _fitting_shapes(tasks, shape, per_batch, limit)
    filters = _fitting_filters(tasks, sizer, limit, by_kind)
    advice = [
        f"shapes that fit: {', '.join(shapes)}" if shapes else "no other shape fits",
        f"filters that fit with shape={shape!r}: {', '.join(filters)}" if filters else "",
        "a case scope (case_id, creditor_reference or case_reference) for one case's tasks",
        f"or raise max_xcom_bytes to at least {size:,} if your XCom backend stores values that large",
    ]
    return DebituraConfigError(
        f"The listing is {size:,} bytes of XCom (shape={shape!r}, {len(tasks):,} tasks), over max_xcom_bytes = "
        f"{limit:,}; nothing was pushed. Make it smaller: {'; '.join(a for a in advice if a)}."
    )
