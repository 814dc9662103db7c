"""The case gate's verdict, in one place for the sensor, the trigger and the shared poller.

Pure functions over already-fetched tasks: no I/O, no Airflow. Keeping the rule here means the
synchronous poke, the per-gate async check and the coalesced account-wide snapshot cannot drift
apart: they differ only in how they fetch tasks, never in what "blocked" means.

The rule: a case is blocked while it has an open task of a blocking type (``blocking_types=None``
means every type, including types Debitura adds later), or, with ``include_account_tasks``, while
the account has an open account-level task (SignContract, AssignBankAccount). Account-level tasks
block regardless of ``blocking_types``: they stop every case, whatever the user filters on.
A listing that could not be read (transient error, drift between pages) gives ``UNKNOWN``, which
callers treat as blocked: the gate never opens on doubt.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.exceptions import (
    DebituraAuthError,
    DebituraConfigError,
    DebituraError,
    DebituraNotFoundError,
    DebituraValidationError,
)
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.models import Task, TaskPage, TaskStatus, TaskType

ACCOUNT_LEVEL_TYPES: tuple[str, ...] = tuple(sorted(TaskType.account_level()))
"""Types that block every case; the direct check asks for exactly these on ``GET /tasks``."""

COMPACT_FIELDS = ("id", "type", "title", "caseId", "solutionUrl")
"""The task fields kept in XCom records and trigger kwargs: enough to identify and click through."""


SUMMARY_TASKS_PER_TYPE = 5
"""Log lines stay short when an account has hundreds of open account-level tasks."""


class GateState(str, enum.Enum):
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class GateVerdict:
    state: GateState
    blocking: tuple[dict[str, Any], ...] = ()
    """Blocking tasks as compact camelCase dicts (see :data:`COMPACT_FIELDS`), case tasks first."""
    reason: str | None = None
    """Why the verdict is unknown, or a note on a blocked verdict without listed tasks."""

    @property
    def is_unblocked(self) -> bool:
        return self.state is GateState.UNBLOCKED

    @property
    def first_solution_url(self) -> str | None:
        return next((t.get("solutionUrl") for t in self.blocking if t.get("solutionUrl")), None)

    def summary(self) -> str:
        """Blockers grouped by type, each with its solutionUrl, so a log reader can click through."""
        if self.state is GateState.UNBLOCKED:
            return "no blocking tasks: the case is unblocked"
        if self.state is GateState.UNKNOWN:
            return f"could not tell whether the case is blocked ({self.reason}); treating it as blocked"
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for task in self.blocking:
            by_type[task.get("type") or "(no type)"].append(task)
        lines = [f"blocked by {len(self.blocking)} open task(s)" + (f" ({self.reason})" if self.reason else "")]
        for type_name, tasks in by_type.items():
            scope = " [account-level]" if type_name in ACCOUNT_LEVEL_TYPES else ""
            lines.append(f"  {type_name}{scope} x{len(tasks)}:")
            lines.extend(
                f"    - {t.get('title') or t.get('id')}: {t.get('solutionUrl') or '(no solutionUrl)'}"
                for t in tasks[:SUMMARY_TASKS_PER_TYPE]
            )
            if len(tasks) > SUMMARY_TASKS_PER_TYPE:
                lines.append(f"    - ... and {len(tasks) - SUMMARY_TASKS_PER_TYPE} more")
        return "\n".join(lines)


def compact(task: Task | Mapping[str, Any]) -> dict[str, Any]:
    data = task.to_api_dict() if isinstance(task, Task) else dict(task)
    return {key: data.get(key) for key in COMPACT_FIELDS}


def unknown(reason: str) -> GateVerdict:
    return GateVerdict(GateState.UNKNOWN, reason=reason)


def evaluate(
    case_tasks: Iterable[Task],
    account_tasks: Iterable[Task] = (),
    *,
    blocking_types: Sequence[str] | None = None,
    include_account_tasks: bool = True,
    account_total: int | None = None,
) -> GateVerdict:
    """Verdict for one case from its open tasks and the account's open account-level tasks.

    ``account_total`` is the ``totalResults`` of the type-filtered account listing: a positive
    total blocks even when the page came back without tasks (a page that disagrees with its own
    count is not evidence that nothing blocks).
    """
    wanted = None if blocking_types is None else frozenset(blocking_types)
    blocking: dict[str, dict[str, Any]] = {}
    for task in case_tasks:
        if task.is_open and (wanted is None or task.type in wanted):
            blocking.setdefault(task.id, compact(task))
    reason = None
    if include_account_tasks:
        account_blockers = [t for t in account_tasks if t.is_open and t.is_account_level]
        for task in account_blockers:
            blocking.setdefault(task.id, compact(task))
        if not account_blockers and account_total:
            reason = f"the account listing reports {account_total} open account-level task(s) but returned none"
            return GateVerdict(GateState.BLOCKED, tuple(blocking.values()), reason)
    if blocking:
        return GateVerdict(GateState.BLOCKED, tuple(blocking.values()), reason)
    return GateVerdict(GateState.UNBLOCKED)


@dataclass(frozen=True)
class AccountSnapshot:
    """One consistent read of the whole open queue, indexed once so each gate's verdict is a dict
    lookup: with 1,000 gates, anything done per gate per task (e.g. re-serialising the account-level
    tasks) would stall the triggerer's loop."""

    ok: bool
    taken_at: float
    by_case: Mapping[str, tuple[Task, ...]] = field(default_factory=dict)
    account_blockers: tuple[dict[str, Any], ...] = ()
    """Open account-level tasks, already compact: shared (not copied) by every gate's verdict."""
    total: int = 0
    error: str | None = None
    fatal: bool = False
    """The read failed in a way polling cannot fix (e.g. the key was revoked): a gate must check on its own
    at once, so that the error reaches the task instead of the gate waiting out its timeout."""
    tasks: tuple[Task, ...] = ()
    """Every open task of the read (shared references), for consumers that need more than the gate view,
    such as the new-task watcher (lead tasks and unknown types with no case are not in ``by_case``)."""
    direct: bool = False
    """The poller skipped the shared read this interval: each gate checks on its own (cheaper than
    reading every page for a few gates). Such a snapshot is also ``ok=False``, so a consumer that
    ignores the flag reads it as "unknown" and can never open a gate on it."""

    @classmethod
    def from_tasks(cls, tasks: Iterable[Task], taken_at: float) -> AccountSnapshot:
        by_case: dict[str, list[Task]] = defaultdict(list)
        account: list[dict[str, Any]] = []
        open_tasks: list[Task] = []
        total = 0
        for task in tasks:
            total += 1
            if not task.is_open:
                continue
            open_tasks.append(task)
            if task.is_account_level:
                account.append(compact(task))
            elif task.case_id:
                by_case[task.case_id.lower()].append(task)
        return cls(
            True, taken_at, {k: tuple(v) for k, v in by_case.items()}, tuple(account), total, tasks=tuple(open_tasks)
        )

    @classmethod
    def failed(cls, error: str, taken_at: float, *, fatal: bool = False) -> AccountSnapshot:
        return cls(False, taken_at, error=error, fatal=fatal)

    @classmethod
    def skipped(cls, taken_at: float, reason: str = "the shared read was skipped this interval") -> AccountSnapshot:
        return cls(False, taken_at, error=reason, direct=True)

    def verdict(
        self, case_id: str, *, blocking_types: Sequence[str] | None = None, include_account_tasks: bool = True
    ) -> GateVerdict:
        """Same rule as :func:`evaluate` (a unit test holds the two paths to the same answers)."""
        if not self.ok:
            return unknown(self.error or "the account snapshot failed")
        case_part = evaluate(
            self.by_case.get(case_id.lower(), ()), include_account_tasks=False, blocking_types=blocking_types
        )
        blocking = case_part.blocking
        if include_account_tasks and self.account_blockers:
            blocking = blocking + self.account_blockers
        return GateVerdict(GateState.BLOCKED, blocking) if blocking else GateVerdict(GateState.UNBLOCKED)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def success_record(
    case_id: str, checks: int, first_blockers: Sequence[Mapping[str, Any]] | None, unblocked_at: str | None = None
) -> dict[str, Any]:
    """The sensor's XCom, identical in every mode (poke, reschedule, deferred)."""
    return {
        "case_id": case_id,
        "unblocked_at": unblocked_at or utc_now_iso(),
        "checks": int(checks),
        # None (not []) when the first check's blockers could not be established.
        "blocked_by_on_first_check": None if first_blockers is None else [dict(t) for t in first_blockers],
    }


def is_fatal(exc: BaseException) -> bool:
    """Errors that polling cannot fix (unknown case, bad key, bad parameter): fail at once."""
    return isinstance(exc, (DebituraNotFoundError, DebituraAuthError, DebituraConfigError, DebituraValidationError))


def is_transient(exc: BaseException) -> bool:
    """Errors after which the honest answer is "don't know yet": check again next interval."""
    return isinstance(exc, DebituraError) and exc.transient


def direct_check_calls(
    case_id: str, *, blocking_types: Sequence[str] | None = None, include_account_tasks: bool = True
) -> tuple[ApiCall[list[Task]], ApiCall[TaskPage] | None]:
    """The (at most) two requests of one check, whatever the size of the queue: the case's own open
    tasks, and one type-filtered page of account-level tasks (one task or a positive total blocks,
    so page 1 is all the verdict needs)."""
    case_call = endpoints.get_case_tasks(case_id, status=TaskStatus.OPEN.value, types=blocking_types)
    account_call = (
        endpoints.get_tasks_page(
            status=TaskStatus.OPEN.value, types=ACCOUNT_LEVEL_TYPES, page=1, page_size=endpoints.MAX_PAGE_SIZE
        )
        if include_account_tasks
        else None
    )
    return case_call, account_call


def verdict_from_direct(
    case_tasks: Iterable[Task],
    account_page: TaskPage | None,
    *,
    blocking_types: Sequence[str] | None = None,
    include_account_tasks: bool = True,
) -> GateVerdict:
    return evaluate(
        case_tasks,
        account_page.tasks if account_page is not None else (),
        blocking_types=blocking_types,
        include_account_tasks=include_account_tasks and account_page is not None,
        account_total=account_page.page.total_results if account_page is not None else None,
    )
