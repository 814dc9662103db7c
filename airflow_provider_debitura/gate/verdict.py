"""The verdict: the one fatal/transient policy, the parts of an answer, and what they mean for a gate."""

from __future__ import annotations

import enum
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_debitura.exceptions import (
    DebituraAuthError,
    DebituraBudgetError,
    DebituraConfigError,
    DebituraError,
    DebituraNotFoundError,
    DebituraValidationError,
)
from airflow_provider_debitura.gate.records import (
    ACCOUNT_LEVEL_TYPES,
    CASE_REFERENCE,
    DOCUMENTED_TYPES,
    NEW_TYPES,
    SOLUTION_URL,
    TASK_ID,
    TASK_TYPE,
    CompactTask,
    PackedTask,
    RecordBatch,
    is_account_level,
    is_new_type,
    task_dict,
    view,
)

SUMMARY_TASKS_PER_TYPE = 5
"""Log lines stay short when an account has hundreds of open account-level tasks."""


def is_fatal(exc: BaseException) -> bool:
    """Errors that checking again cannot fix (unknown case, bad key, bad parameter): fail at once."""
    return isinstance(exc, (DebituraNotFoundError, DebituraAuthError, DebituraConfigError, DebituraValidationError))


def is_transient(exc: BaseException) -> bool:
    """Errors after which the honest answer is "don't know yet": check again next interval. A read the request
    budget refused (:class:`DebituraBudgetError`, never retried by the hook) is one: it says nothing about the
    case, and the budget has room again later (before, it ended the shared poll's round with a traceback)."""
    return isinstance(exc, DebituraError) and (exc.transient or isinstance(exc, DebituraBudgetError))


@dataclass(frozen=True)
class Part:
    """One part of a gate's answer: the case's open tasks, or the account's open account-level tasks (packed,
    as the read keeps them: a verdict adds no object per task for the garbage collector to track)."""

    tasks: tuple[PackedTask, ...] = ()
    known: bool = True
    complete: bool = True
    """False when the read may have missed a task (an unverified listing, a partial page run)."""
    reason: str | None = None
    error: DebituraError | None = None
    """Set when checking again cannot help (the case does not exist, the key is rejected)."""

    @classmethod
    def unknown(cls, reason: str) -> Part:
        return cls(known=False, complete=False, reason=reason)

    @property
    def settled(self) -> bool:
        return self.known and self.complete and self.error is None


def part_from_error(exc: BaseException) -> Part:
    """The one policy: a fatal error fails the gate, a transient one means "still blocked, check again".
    Anything else is a bug and propagates."""
    if is_fatal(exc):
        assert isinstance(exc, DebituraError)
        return Part(known=False, complete=False, reason=str(exc), error=exc)
    if is_transient(exc):
        return Part.unknown(f"{type(exc).__name__}: {exc}")
    raise exc


def part_from(batch: RecordBatch, *, complete: bool = True) -> Part:
    """A read case's part: unknown when one of its records could not be read.

    :param batch: the case's records.
    :param complete: whether the read can have missed a task.
    """
    if batch.rejected:
        return Part.unknown(f"{len(batch.rejected)} task record(s) of the case could not be read")
    return Part(batch.open, complete=complete)


class GateState(str, enum.Enum):
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    UNKNOWN = "unknown"
    FAILED = "failed"


@dataclass(frozen=True)
class GateVerdict:
    state: GateState
    blocking: tuple[PackedTask, ...] = ()
    """Blocking tasks, case tasks first (packed; :func:`~airflow_provider_debitura.gate.records.view` names
    them)."""
    reason: str | None = None
    """Why the verdict is unknown or failed."""
    error: DebituraError | None = None
    case_reference: str | None = None
    """The case's reference as its tasks carry it (``caseReference``), when a task showed it."""

    @property
    def is_unblocked(self) -> bool:
        return self.state is GateState.UNBLOCKED

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t[TASK_ID] for t in self.blocking)

    @property
    def first_solution_url(self) -> str | None:
        return next((t[SOLUTION_URL] for t in self.blocking if t[SOLUTION_URL]), None)

    def blockers(self) -> list[dict[str, Any]]:
        return [task_dict(t) for t in self.blocking]

    def summary(self) -> str:
        """Blockers grouped by type, each with its solutionUrl, so a log reader can click through."""
        if self.state is GateState.UNBLOCKED:
            return "no blocking tasks: the case is unblocked"
        if self.state is GateState.UNKNOWN:
            return f"could not tell whether the case is blocked ({self.reason}); treating it as blocked"
        if self.state is GateState.FAILED:
            return f"the gate cannot work: {self.reason}"
        by_type: dict[str, list[CompactTask]] = defaultdict(list)
        for task in map(view, self.blocking):
            by_type[task.type or "(no type)"].append(task)
        lines = [f"blocked by {len(self.blocking)} open task(s)"]
        for type_name, tasks in by_type.items():
            scope = " [account-level]" if is_account_level(tasks[0]) else ""
            lines.append(f"  {type_name}{scope} x{len(tasks)}:")
            lines.extend(
                f"    - {t.title or t.id}: {t.solution_url or '(no solutionUrl)'}"
                for t in tasks[:SUMMARY_TASKS_PER_TYPE]
            )
            if len(tasks) > SUMMARY_TASKS_PER_TYPE:
                lines.append(f"    - ... and {len(tasks) - SUMMARY_TASKS_PER_TYPE} more")
        new = sorted({t[TASK_TYPE] or "(no type)" for t in self.blocking if is_new_type(t)})
        if new:
            lines.append(new_type_advice(new))
        return "\n".join(lines)


def new_type_advice(names: Sequence[str]) -> str:
    """The log line for blockers of a type this provider does not know: what they are taken for, how to exclude.

    :param names: the new types' names.
    """
    keep = sorted(DOCUMENTED_TYPES)
    return (
        f"  {', '.join(names)}: a type this provider does not know, raised with no case and no lead; counted as "
        "account-level, so the gate does not open on doubt. To let it pass, name the types that block: "
        f"blocking_task_types={keep!r} (or a subset), or set include_account_tasks=False."
    )


def unknown(reason: str) -> GateVerdict:
    return GateVerdict(GateState.UNKNOWN, reason=reason)


def failure_message(name: str, verdict: GateVerdict) -> str:
    """The one short line for a gate that cannot work (no retry frames: the cause is in the text)."""
    if isinstance(verdict.error, DebituraNotFoundError):
        return f"Cannot find Debitura case {name}: {verdict.error}"
    return f"Case gate for Debitura case {name} cannot work: {verdict.reason}"


def lookup_failure_message(name: str, exc: BaseException) -> str:
    """The line for a reference lookup that failed for good ("Cannot find" only for a 404)."""
    what = "Cannot find" if isinstance(exc, DebituraNotFoundError) else "Could not look up"
    return f"{what} Debitura case {name}: {exc}"


def check_gate_config(blocking_types: Sequence[str] | None, include_account_tasks: bool) -> None:
    """Refuse a configuration that can never block (see docs/gates.md for how the two interact)."""
    if blocking_types is None:
        return
    if not blocking_types:
        raise DebituraConfigError(
            "blocking_task_types=[] names no type, so nothing could ever block this gate; "
            "give the types that block, or None for every type."
        )
    if not include_account_tasks and set(blocking_types) <= set(ACCOUNT_LEVEL_TYPES):
        raise DebituraConfigError(
            f"blocking_task_types={list(blocking_types)!r} names only account-level types, which Debitura raises on "
            "the account, never on a case; with include_account_tasks=False nothing could ever block this gate. "
            "Set include_account_tasks=True, or name the case task types that should block."
        )


@dataclass(frozen=True)
class GateSpec:
    """What one gate waits for: its case, the types that block, and whether account-level tasks count.

    :param case_id: the case GUID.
    :param blocking_types: only tasks of these types block (None: every type); applies to the case's
        own tasks and to account-level tasks alike.
    :param include_account_tasks: whether open account-level tasks (SignContract, AssignBankAccount with
        no case; and, with every type blocking, caseless tasks of a type this provider does not know that have
        no lead) block this case.
    """

    case_id: str
    blocking_types: frozenset[str] | None = None
    include_account_tasks: bool = True

    @classmethod
    def of(
        cls, case_id: str, blocking_types: Iterable[str] | None = None, include_account_tasks: bool = True
    ) -> GateSpec:
        """A validated spec (a contradictory configuration raises :class:`DebituraConfigError`).

        :param case_id: the case GUID.
        :param blocking_types: the blocking types, None for every type.
        :param include_account_tasks: whether account-level tasks count.
        """
        types = None if blocking_types is None else list(blocking_types)
        check_gate_config(types, bool(include_account_tasks))
        return cls(str(case_id).lower(), None if types is None else frozenset(types), bool(include_account_tasks))

    @property
    def needs_account(self) -> bool:
        """Whether account-level tasks can block this gate (else the account-level read is not needed)."""
        return bool(self.account_types)

    @functools.cached_property
    def account_types(self) -> frozenset[str]:
        """The account-level types that can block this gate (empty: the account-level read is not needed):
        the documented ones it counts, the unknown names it lists, and :data:`NEW_TYPES` when every type blocks
        (a caseless task of a type nobody knows yet then blocks it too)."""
        if not self.include_account_tasks:
            return frozenset()
        if self.blocking_types is None:
            return frozenset(ACCOUNT_LEVEL_TYPES) | {NEW_TYPES}
        return frozenset(t for t in self.blocking_types if t in ACCOUNT_LEVEL_TYPES or t not in DOCUMENTED_TYPES)

    def blocks(self, task: PackedTask) -> bool:
        return self.blocking_types is None or task[TASK_TYPE] in self.blocking_types

    def verdict(self, case: Part, account: Part | None) -> GateVerdict:
        """What the parts mean: a fatal error fails, a blocker blocks, doubt is unknown, else unblocked.

        :param case: the case's open tasks.
        :param account: the open account-level tasks (ignored unless :attr:`needs_account`).
        """
        parts = [case, account] if self.needs_account and account is not None else [case]
        if self.needs_account and account is None:
            parts.append(Part.unknown("the account-level tasks were not read"))
        reference = next((t[CASE_REFERENCE] for t in case.tasks if t[CASE_REFERENCE]), None)
        failed = next((p for p in parts if p.error is not None), None)
        if failed is not None:
            return GateVerdict(GateState.FAILED, reason=failed.reason, error=failed.error, case_reference=reference)
        blocking = tuple(t for p in parts for t in p.tasks if self.blocks(t))
        if blocking:
            return GateVerdict(GateState.BLOCKED, blocking, case_reference=reference)
        doubt = next((p for p in parts if not p.settled), None)
        if doubt is not None:
            return GateVerdict(GateState.UNKNOWN, reason=doubt.reason or "a read may have missed a task")
        return GateVerdict(GateState.UNBLOCKED, case_reference=reference)
