"""Handing Debitura tasks to a person: which tasks (the operator's input), and whether they are still open.

Pure logic, no Airflow: the operator (worker, sync hook) and its trigger (triggerer, async hook) both
use it, so "still open" means the same in both places. The check is written once, as an exchange of requests
(:class:`HandoffReads`, ``hooks.exchange``), and driven by ``hook.exchange(HandoffReads(tasks))``.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraNotFoundError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import Exchange, Upcoming, unwrap
from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.models import Records, Task, TaskType

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


class HandoffReads(Exchange[HandoffCheck]):
    """The requests of one check, as an exchange (``hooks.exchange``): ``hook.exchange(HandoffReads(tasks))``.

    Case tasks: the case's open tasks (one request per case, no paging, so no drift; the cases are one batch);
    a 404 means the case is gone: its tasks are reported as ``missing`` (never as solved). Tasks without a case,
    after the cases: one type-filtered account listing (a :class:`~airflow_provider_debitura.hooks.paging.TaskListing`
    inside), which returns every task open for the whole listing: a task missing from it was solved. A listing
    that could not verify itself proves nothing gone, so its missing tasks count as still open. Any other error
    ends the check with that error.

    :param tasks: the handed-over tasks (handoff dicts).
    """

    def __init__(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        self.tasks = tasks
        self._to_read = sorted({str(t["caseId"]).lower() for t in tasks if t.get("caseId")})
        self._asked: dict[str, str] = {}
        self._case_tasks: dict[str, list[Task] | None] = {}
        """Each case's open tasks; None: the case is gone (404)."""
        caseless = [t for t in tasks if not t.get("caseId")]
        self._listing = TaskListing(status="Open", types=_listing_types(caseless)) if caseless else None

    def next_calls(self) -> Sequence[ApiCall[Any]]:
        """Every case's open tasks (one batch), then the account listing's pages, one at a time."""
        if self._to_read:
            calls = [endpoints.get_case_tasks(case_id, status="Open") for case_id in self._to_read]
            self._asked = {call.path: case_id for call, case_id in zip(calls, self._to_read, strict=True)}
            self._to_read = []
            return calls
        return self._listing.next_calls() if self._listing is not None else []

    def feed(self, call: ApiCall[Any], answer: object) -> None:
        """Take a case's tasks (a 404: the case is gone) or a page of the listing.

        :param call: the call.
        :param answer: the parsed answer, or the error the call ended with.
        """
        case_id = self._asked.pop(call.path, None)
        if case_id is None:
            assert self._listing is not None
            self._listing.feed(call, answer)
        elif isinstance(answer, DebituraNotFoundError):
            self._case_tasks[case_id] = None
        else:
            listed: Records[Task] = unwrap(answer)
            self._case_tasks[case_id] = list(listed)

    def upcoming(self) -> Upcoming | None:
        """What the account listing says is still to come (checked against the budget in a worker)."""
        return self._listing.upcoming() if self._listing is not None and not self._asked else None

    def result(self) -> HandoffCheck:
        """What Debitura says about the tasks, once every request is answered."""
        open_ids: set[str] = set()
        notes: list[str] = []
        missing_cases = [case_id for case_id, listed in sorted(self._case_tasks.items()) if listed is None]
        notes += [
            f"case {c} no longer exists (404): its tasks were not solved, the case is gone" for c in missing_cases
        ]
        for listed in self._case_tasks.values():
            open_ids.update(t.id.lower() for t in listed or () if t.is_open)
        if self._listing is not None:
            found = self._listing.result()
            wanted = {str(t["id"]).lower() for t in self.tasks if not t.get("caseId")}
            seen = {t.id.lower() for t in found if t.is_open}
            seen |= {str(r.id).lower() for r in found.rejected if r.id}  # unreadable, so not proven gone
            if not found.verified:
                notes.append(
                    f"the account listing could not be verified ({found.unverified_reason}): nothing counts as gone"
                )
                seen |= wanted
            open_ids.update(seen & wanted)
        tasks = self.tasks
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
