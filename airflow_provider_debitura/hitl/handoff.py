"""Handing Debitura tasks to a person: which tasks (the operator's input), and whether they are still open.

Pure logic, no Airflow: the operator (worker, sync hook) and its trigger (triggerer, async hook) both
use it, so "still open" means the same in both places. The check is written once, as a generator of
requests (:func:`check_steps`), and driven by :func:`run_check` or :func:`arun_check`.

Cost of one check, in requests: one ``GET /cases/{id}/tasks`` per distinct case, plus, for tasks with
no case (account-level, lead or unknown tasks), ``ceil(n / 100)`` for one ``GET /tasks`` listing filtered
by their types (``n`` = open tasks of those types). When such a task looks gone and the listing had more than
one page, it is read again until two passes agree (``2 * ceil(n / 100)`` more): paging over a live queue can
miss a task, and closing a person's request on a miss is the one wrong answer that matters. One page is one
snapshot and needs no second read.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraNotFoundError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.paging import Listing, TaskListing
from airflow_provider_debitura.models import Task, TaskType

if TYPE_CHECKING:
    from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook, DebituraHook

HANDOFF_FIELDS = (
    "id",
    "type",
    "typeLabel",
    "title",
    "description",
    "deadline",
    "caseId",
    "caseReference",
    "leadId",
    "solutionUrl",
)
"""The task fields a handoff keeps (in the request, the trigger's kwargs and the XCom report)."""

_ALIASES = {"task_id": "id", "solution_url": "solutionUrl", "case_id": "caseId", "type_label": "typeLabel"}
"""snake_case names accepted on input, e.g. the reply operator's ``needs_human`` entries."""


# ----------------------------------------------------------------------------------------- input


def handoff_tasks(name: str, value: Any) -> list[dict[str, Any]]:
    """The tasks to hand over, from one task dict, a list of them, or their JSON/Python-literal text
    (a template field rendered without ``render_template_as_native_obj``).

    :param name: the parameter name, for errors.
    :param value: what the DAG passed (e.g. an element of ``DebituraListTasksOperator``'s output).
    """
    if isinstance(value, str):
        value = _parse_text(name, value)
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise DebituraConfigError(
            f"{name}={value!r} must be a Debitura task (a dict with at least 'id', as DebituraListTasksOperator "
            "returns them) or a non-empty list of such dicts."
        )
    tasks: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        task = _one_task(f"{name}[{index}]", item)
        tasks.setdefault(task["id"].lower(), task)
    return list(tasks.values())


def _parse_text(name: str, text: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    raise DebituraConfigError(
        f"{name}={text[:200]!r} is text, not a task: pass the task dict itself (e.g. .expand({name}=list_op.output)) "
        "or set render_template_as_native_obj=True on the DAG."
    )


def _one_task(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise DebituraConfigError(f"{where}={item!r} is not a task dict (need at least 'id').")
    data = {_ALIASES.get(key, key): value for key, value in item.items()}
    task_id = data.get("id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise DebituraConfigError(f"{where} has no task 'id' (got keys {sorted(item)}); pass Debitura task dicts.")
    task = {key: data.get(key) for key in HANDOFF_FIELDS}
    task["id"] = task_id.strip()
    return task


# -------------------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class HandoffCheck:
    """What Debitura says about the handed-over tasks right now.

    :param still_open: tasks Debitura still lists open.
    :param gone: tasks Debitura no longer lists open (solved).
    :param notes: remarks for the log (e.g. a listing that could not verify itself).
    :param missing: tasks on a case that is gone (404): not solved, not open; the handoff fails.
    :param missing_cases: the ids of those cases.
    """

    still_open: tuple[dict[str, Any], ...]
    gone: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    missing: tuple[dict[str, Any], ...] = ()
    missing_cases: tuple[str, ...] = ()

    @property
    def cleared(self) -> bool:
        """Every task is solved (a task whose case is gone is not)."""
        return not self.still_open and not self.missing

    def describe(self) -> str:
        """One log line: counts, then each open task with its link, then notes."""
        parts = [f"{len(self.still_open)} still open, {len(self.gone)} solved"]
        if self.missing:
            parts[0] += f", {len(self.missing)} on a case that is gone ({', '.join(self.missing_cases)})"
        parts += [f"{t.get('type')} {t['id']}: {t.get('solutionUrl') or '(no solutionUrl)'}" for t in self.still_open]
        return "; ".join(parts + list(self.notes))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (a trigger event carries it)."""
        return {
            "still_open": list(self.still_open),
            "gone": list(self.gone),
            "notes": list(self.notes),
            "missing": list(self.missing),
            "missing_cases": list(self.missing_cases),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoffCheck:
        """The check :meth:`to_dict` wrote.

        :param data: the dict.
        """
        return cls(
            tuple(data.get("still_open") or ()),
            tuple(data.get("gone") or ()),
            tuple(data.get("notes") or ()),
            tuple(data.get("missing") or ()),
            tuple(data.get("missing_cases") or ()),
        )


CheckRequest = ApiCall[Any] | TaskListing
"""One request of a handoff check: a single API call, or a whole task listing (``hooks.paging``)."""


def check_steps(tasks: Sequence[Mapping[str, Any]]) -> Generator[CheckRequest, Any, HandoffCheck]:
    """The requests of one check, as a generator: send each step's result (or throw its error) back in.

    Case tasks: the case's open tasks (one request, no paging, so no drift); a 404 means the case is gone:
    its tasks are reported as ``missing`` (never as solved). Tasks without a case: one type-filtered account
    listing, which returns every task open for the whole listing (``hooks.paging``): a task missing from it was
    solved. A listing that could not verify itself proves nothing gone, so its missing tasks count as still open.

    :param tasks: the handed-over tasks (handoff dicts).
    """
    open_ids: set[str] = set()
    notes: list[str] = []
    missing_cases: list[str] = []
    for case_id in sorted({str(t["caseId"]).lower() for t in tasks if t.get("caseId")}):
        try:
            listed: list[Task] = yield endpoints.get_case_tasks(case_id, status="Open")
        except DebituraNotFoundError:
            notes.append(f"case {case_id} no longer exists (404): its tasks were not solved, the case is gone")
            missing_cases.append(case_id)
            continue
        open_ids.update(t.id.lower() for t in listed if t.is_open)
    caseless = [t for t in tasks if not t.get("caseId")]
    if caseless:
        types = _listing_types(caseless)
        wanted = {str(t["id"]).lower() for t in caseless}
        found: Listing = yield TaskListing(status="Open", types=types)
        seen = {t.id.lower() for t in found if t.is_open}
        seen |= {str(r.id).lower() for r in found.rejected if r.id}  # unreadable, so not proven gone
        if not found.verified:
            notes.append(
                f"the account listing could not be verified ({found.unverified_reason}): nothing counts as gone"
            )
            seen |= wanted
        open_ids.update(seen & wanted)
    missing = tuple(dict(t) for t in tasks if t.get("caseId") and str(t["caseId"]).lower() in missing_cases)
    still = tuple(dict(t) for t in tasks if str(t["id"]).lower() in open_ids)
    gone = tuple(dict(t) for t in tasks if str(t["id"]).lower() not in open_ids and dict(t) not in missing)
    return HandoffCheck(still, gone, tuple(notes), missing, tuple(missing_cases))


def _listing_types(tasks: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """Filter the account listing by the tasks' types; None (no filter) when one has no usable type."""
    types = {t.get("type") for t in tasks}
    if any(not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) for name in types):
        return None
    return sorted(types, key=lambda name: (name not in TaskType.known(), name))  # type: ignore[arg-type]


def run_check(hook: DebituraHook, tasks: Sequence[Mapping[str, Any]]) -> HandoffCheck:
    """Drive :func:`check_steps` with a :class:`~airflow_provider_debitura.hooks.debitura.DebituraHook`.

    :param hook: the sync hook (in a worker).
    :param tasks: the handed-over tasks.
    """
    steps = check_steps(tasks)
    value: Any = None
    error: DebituraNotFoundError | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: HandoffCheck = stop.value
            return result
        value, error = None, None
        try:
            value = hook.run_listing(step) if isinstance(step, TaskListing) else hook.run(step)
        except DebituraNotFoundError as exc:
            error = exc


async def arun_check(hook: DebituraAsyncHook, tasks: Sequence[Mapping[str, Any]]) -> HandoffCheck:
    """Drive :func:`check_steps` with a :class:`~airflow_provider_debitura.hooks.debitura.DebituraAsyncHook`.

    :param hook: the async hook (in the triggerer).
    :param tasks: the handed-over tasks.
    """
    steps = check_steps(tasks)
    value: Any = None
    error: DebituraNotFoundError | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: HandoffCheck = stop.value
            return result
        value, error = None, None
        try:
            value = await (hook.run_listing(step) if isinstance(step, TaskListing) else hook.run(step))
        except DebituraNotFoundError as exc:
            error = exc
