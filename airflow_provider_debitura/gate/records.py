"""Tasks as a gate keeps them, and the calls a gate sends.

Answers are parsed with the models' own record-by-record parser (:mod:`airflow_provider_debitura.models`:
a record that cannot be understood becomes a ``RejectedRecord`` and never fails the page), then every
open task is reduced at once to a :data:`PackedTask` (a plain tuple of strings) and the models are dropped.
What a verdict reads by name is a :class:`CompactTask`, the same fields as a named tuple, made from a packed
task where a verdict needs it (:func:`view`). Conversions happen at the edges only: :func:`compact` from a
parsed task, :func:`task_dict` to the camelCase JSON that XCom and logs show (:data:`COMPACT_FIELDS`).

Why two shapes: Python's cyclic garbage collector stops tracking a plain tuple of strings at its first
collection, but keeps tracking every named tuple (and every other object with attributes). A read of the whole
queue holds one record per open task; as named tuples, 50,000 of them aged into the oldest generation of the
triggerer's heap and brought on a full collection of it, a stall of the triggerer's event loop of 150-230 ms
(``bench/triggerer_scale.py``, docs/triggerer-scale.md). As plain tuples they cost the collector nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple, TypeAlias, TypeVar

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.models import (
    PageData,
    Records,
    RejectedRecord,
    Task,
    TaskPage,
    TaskStatus,
    TaskType,
    is_account_level_task,
    parse_records,
)

log = logging.getLogger(__name__)

ACCOUNT_LEVEL_TYPES: tuple[str, ...] = tuple(sorted(TaskType.account_level()))
"""The documented types raised on the whole account (``caseId`` null)."""

DOCUMENTED_TYPES: frozenset[str] = frozenset(t.value for t in TaskType)
"""Every task type Debitura documents; any other is a new type this provider does not know."""

NEW_TYPES: Final = "*"
"""In a gate's ``account_types``: caseless tasks of a type this provider does not know count too (they are
treated as account-level: doubt never opens a gate). See docs/gates-unknown-types.md."""

MAX_LEARNED_TYPES = 32
"""New type names remembered per process (beyond them, a new caseless type costs a scan of the queue)."""

_LEARNED: dict[str, None] = {}


PackedTask: TypeAlias = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None]
"""An open task as a read keeps it: :class:`CompactTask`'s fields, in its order, as a plain tuple (which the
garbage collector untracks; see the module's docstring). Read its fields with :data:`TASK_ID`,
:data:`TASK_TYPE`, :data:`CASE_ID`, :data:`SOLUTION_URL` and :data:`CASE_REFERENCE`, or as a :class:`CompactTask`
(:func:`view`)."""

TASK_ID: Final = 0
"""Where a :data:`PackedTask` holds the task's id."""
TASK_TYPE: Final = 1
"""Where a :data:`PackedTask` holds the task's type."""
CASE_ID: Final = 2
"""Where a :data:`PackedTask` holds the task's case id."""
SOLUTION_URL: Final = 4
"""Where a :data:`PackedTask` holds the task's solutionUrl."""
CASE_REFERENCE: Final = 5
"""Where a :data:`PackedTask` holds the task's case reference."""
_LEAD_ID: Final = 6


class CompactTask(NamedTuple):
    """An open task as a verdict reads it: strings only, read by name (``task.id``, ``task.case_id``, ...); a
    :data:`PackedTask` with names (:func:`view`).

    A named tuple stays tracked by the cyclic garbage collector (a plain tuple does not): only the tasks a
    verdict holds are kept in this shape, never a whole queue.

    :param id: the task's id.
    :param type: its type (None when the API sent none).
    :param case_id: its case (None: an account- or lead-level task).
    :param title: its title.
    :param solution_url: where a person solves it.
    :param case_reference: its case's reference.
    :param lead_id: its lead (None when not a lead task).
    """

    id: str
    type: str | None
    case_id: str | None
    title: str | None
    solution_url: str | None
    case_reference: str | None
    lead_id: str | None


_NOT_SHOWN: Final = frozenset({"case_reference", "lead_id"})
"""The :class:`CompactTask` fields a gate reads but XCom and logs leave out."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_SHOWN: Final = tuple(name for name in CompactTask._fields if name not in _NOT_SHOWN)

COMPACT_FIELDS: Final[tuple[str, ...]] = tuple(_camel(name) for name in _SHOWN)
"""The task fields kept in XCom records and logs, as the API names them (camelCase), in :class:`CompactTask`'s
order: enough to identify a task and click through. Derived from the named tuple, so the two cannot drift."""


def compact(task: Task, known: Mapping[str, PackedTask] | None = None) -> PackedTask:
    """A task as a read keeps it.

    :param task: the parsed task.
    :param known: the packed tasks of an earlier read, by id: a task that did not change is returned as the
        same object, so that a read of the whole queue holds its strings once, not once per read.
    """
    if task.type not in DOCUMENTED_TYPES and task.type is not None:
        learn_type(task.type)
    fields = (task.id, task.type, task.case_id, task.title, task.solution_url, task.case_reference, task.lead_id)
    kept = known.get(task.id) if known is not None else None
    return kept if kept is not None and kept == fields else fields


def view(task: PackedTask) -> CompactTask:
    """The task with its fields named (a task that is already a :class:`CompactTask` is returned as it is).

    :param task: a packed task.
    """
    return task if isinstance(task, CompactTask) else CompactTask._make(task)


def learn_type(name: str) -> None:
    """Remember a task type this provider does not know (the account-level read then asks for it by name, so
    its caseless tasks are seen without a scan of the queue); at most :data:`MAX_LEARNED_TYPES` per process.

    :param name: the type's name as the API sent it.
    """
    if name not in _LEARNED and len(_LEARNED) < MAX_LEARNED_TYPES:
        _LEARNED[name] = None
        log.warning(
            "Debitura sent a task of type %r, which this provider does not know. Case gates that count every type "
            "treat such a task as account-level when it has no case and no lead (it blocks them all); to let it "
            "pass, give the gates blocking_task_types (the types that should block) or include_account_tasks=False.",
            name,
        )


def learned_types() -> tuple[str, ...]:
    """The new type names seen in this process, in the order first seen."""
    return tuple(_LEARNED)


def forget_learned_types() -> None:
    """Forget the new type names seen (tests)."""
    _LEARNED.clear()


_SHOWN_AT: Final = tuple(CompactTask._fields.index(name) for name in _SHOWN)


def task_dict(task: PackedTask) -> dict[str, Any]:
    """The compact camelCase dict of a task (:data:`COMPACT_FIELDS`), as XCom and logs show it.

    :param task: a packed or compact task.
    """
    return {key: task[at] for key, at in zip(COMPACT_FIELDS, _SHOWN_AT, strict=True)}


def is_account_level(task: PackedTask) -> bool:
    """The gate's account-level rule: a task with no case that is of a documented account-level type
    (:func:`airflow_provider_debitura.models.is_account_level_task`), or of a type this provider does not know
    (or no type) and with no lead. Doubt never opens a gate: a new caseless type may well be a new account-level
    one, so it blocks every gate that counts account-level tasks of every type (docs/gates-unknown-types.md).

    :param task: a packed or compact task.
    """
    if task[CASE_ID] is not None:
        return False
    return is_account_level_task(task[TASK_TYPE], None) or is_new_type(task)


def is_new_type(task: PackedTask) -> bool:
    """A caseless task of a type this provider does not know (or with no type) and with no lead.

    :param task: a packed or compact task.
    """
    return task[CASE_ID] is None and task[TASK_TYPE] not in DOCUMENTED_TYPES and task[_LEAD_ID] is None


def rejected_scope(record: RejectedRecord) -> str:
    """Which gates a record that could not be read concerns (``RejectedRecord.scope``), with the gate's rule
    for new types: a caseless record of a type this provider does not know concerns the account-level part.

    :param record: the record that could not be read.
    """
    scope = record.scope
    return "account" if scope == "none" and record.type not in DOCUMENTED_TYPES else scope


@dataclass(frozen=True)
class RecordBatch:
    """The records of one answer: the open tasks (compact), every readable task's listing entry, and the
    records that could not be read.

    :param open: the open tasks (packed).
    :param rejected: the unreadable records.
    :param listed: (id, dateCreated) of every readable task, open or not (plain tuples, like the tasks).
    """

    open: tuple[PackedTask, ...] = ()
    rejected: tuple[RejectedRecord, ...] = ()
    listed: tuple[tuple[str, datetime], ...] = ()


def record_batch(tasks: Records[Task] | Iterable[Task]) -> RecordBatch:
    """Reduce parsed tasks to a batch (the models can be dropped afterwards).

    :param tasks: parsed tasks; a :class:`~airflow_provider_debitura.models.Records` also carries its rejects.
    """
    tasks = list(tasks) if not isinstance(tasks, list) else tasks
    return RecordBatch(
        tuple(compact(t) for t in tasks if t.is_open),
        tuple(getattr(tasks, "rejected", ())),
        tuple((t.id, t.date_created) for t in tasks),
    )


def read_records(items: object, known: Mapping[str, PackedTask] | None = None) -> RecordBatch:
    """Parse a JSON array of TaskDto records with the models' rules, one record at a time, each reduced at
    once: a record that cannot be read is set aside (``RejectedRecord``), and no more than one model is alive
    at any moment (a page of models alive together would be aged by the garbage collector, docs/gates.md).

    :param items: the decoded JSON array (``null`` is empty; anything but an array raises ``ValueError``).
    :param known: the packed tasks of an earlier read, by id, to reuse when unchanged (see :func:`compact`).
    """
    if items is None:
        return RecordBatch()
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON array of tasks, got {type(items).__name__}")
    open_tasks: list[PackedTask] = []
    rejected: list[RejectedRecord] = []
    listed: list[tuple[str, datetime]] = []
    for item in items:
        one = parse_records(Task, [item], "task")
        rejected.extend(one.rejected)
        for task in one:
            listed.append((task.id, task.date_created))
            if task.is_open:
                open_tasks.append(compact(task, known))
    return RecordBatch(tuple(open_tasks), tuple(rejected), tuple(listed))


@dataclass(frozen=True)
class TaskPageBatch:
    """One ``GET /tasks`` page reduced for a gate: its paging data, its records, and (only when a
    subscriber asked for full records) its task records as JSON text."""

    page: PageData
    batch: RecordBatch
    raw_count: int
    text: str | None = None


def page_batch(page: TaskPage, *, text: str | None = None) -> TaskPageBatch:
    """Reduce a parsed page.

    :param page: the parsed page.
    :param text: the page's task records as JSON, to keep.
    """
    return TaskPageBatch(page.page, record_batch(Records(page.tasks, page.rejected)), page.raw_count, text)


def read_task_page(
    body: object, *, keep_text: bool = False, known: Mapping[str, PackedTask] | None = None
) -> TaskPageBatch:
    """Parse a ``GET /tasks`` body (a broken envelope raises ``ValueError``; a broken record is set aside).

    :param body: the decoded JSON body.
    :param keep_text: keep the task records as JSON text.
    :param known: the packed tasks of an earlier read, by id, to reuse when unchanged (see :func:`compact`).
    """
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    items = body.get("tasks")
    envelope = TaskPage.from_api({key: value for key, value in body.items() if key != "tasks"})
    batch = read_records(items, known)
    text = json.dumps(items) if keep_text else None
    return TaskPageBatch(envelope.page, batch, len(batch.listed) + len(batch.rejected), text)


T = TypeVar("T")
U = TypeVar("U")


def _reduced(call: ApiCall[T], reduce: Callable[[T], U]) -> ApiCall[U]:
    """The same request, its answer reduced as soon as it is parsed."""
    parse = call.parse
    return ApiCall(
        call.method,
        call.path,
        lambda body: reduce(parse(body)),
        params=call.params,
        json_body=call.json_body,
        idempotent=call.idempotent,
    )


def case_tasks_call(case_id: str) -> ApiCall[RecordBatch]:
    """Every open task of one case (one request; the type filter is applied here, so gates on one case with
    different filters share the read).

    :param case_id: the case GUID.
    """
    return _reduced(endpoints.get_case_tasks(case_id, status=TaskStatus.OPEN.value), record_batch)


def account_tasks_call(page: int = 1, types: Iterable[str] | None = ACCOUNT_LEVEL_TYPES) -> ApiCall[TaskPageBatch]:
    """One page of the account's open tasks of the given types (the account-level read; the same call for every
    gate), or of every type (``types=None``: a scan of the queue for caseless tasks of an unknown type).

    :param page: the page number.
    :param types: the types to ask for (:data:`NEW_TYPES` is left out), None for every type.
    """
    wanted = None if types is None else sorted({t for t in types if t != NEW_TYPES})
    call = endpoints.get_tasks_page(
        status=TaskStatus.OPEN.value, types=wanted, page=page, page_size=endpoints.MAX_PAGE_SIZE
    )
    return _reduced(call, page_batch)


def count_call(types: Iterable[str] | None) -> ApiCall[TaskPageBatch]:
    """How many open tasks of these types (None: of every type) the account has: one record, for its total.

    :param types: the types to count, None for every type.
    """
    wanted = None if types is None else sorted(set(types))
    return _reduced(endpoints.get_tasks_page(status=TaskStatus.OPEN.value, types=wanted, page_size=1), page_batch)


def compact_page_call(
    call: ApiCall[TaskPage], *, keep_text: bool = False, known: Mapping[str, PackedTask] | None = None
) -> ApiCall[TaskPageBatch]:
    """A listing's page call, parsed record by record and reduced to a :class:`TaskPageBatch` at once.

    :param call: the listing's call.
    :param keep_text: keep the task records as JSON text.
    :param known: the packed tasks of an earlier read, by id, to reuse when unchanged (see :func:`compact`):
        a reader of the whole queue passes its previous read's, so that only new or changed tasks are new objects.
    """
    return ApiCall(
        call.method,
        call.path,
        lambda body: read_task_page(body, keep_text=keep_text, known=known),
        params=call.params,
        idempotent=call.idempotent,
    )


def rejected_scope_reason(record: RejectedRecord) -> str:
    """Why a gate cannot tell, because of this record (for logs and verdicts).

    :param record: the record that could not be read.
    """
    return f"a task record the provider cannot read ({record.describe()})"
