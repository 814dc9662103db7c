"""The case gate without I/O: what a check reads, what the answers mean, and what a gate remembers.

Every way of running a gate (poke, reschedule, the trigger's own check, the shared poll) reads with
the calls built here, turns each answer (or error) into a :class:`Part` with :func:`part_from` /
:func:`part_from_error` (the one fatal/transient policy), and asks :meth:`GateSpec.verdict` what the
parts mean. The drivers only send. Design notes: ``docs/gates.md``.

The rule: a case is blocked while one of its own open tasks, or (with ``include_account_tasks``) an
open account-level task, has a type in ``blocking_types`` (None: every type, future ones included).
A part that could not be read, or may have missed a task, never opens the gate.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from airflow_provider_debitura.models import TaskStatus, TaskType, is_account_level_task, is_open_status

ACCOUNT_LEVEL_TYPES: tuple[str, ...] = tuple(sorted(TaskType.account_level()))
"""Types raised on the whole account (``caseId`` null); the account-level read asks for exactly these."""

COMPACT_FIELDS = ("id", "type", "title", "caseId", "solutionUrl")
"""The task fields kept in XCom records and trigger kwargs: enough to identify and click through."""

SUMMARY_TASKS_PER_TYPE = 5
"""Log lines stay short when an account has hundreds of open account-level tasks."""

FAILED_READS_PER_ROUND = 3
"""After this many transient failures in one round of direct reads the rest are skipped (still blocked):
a server that is down is not asked N more times."""

# ----------------------------------------------------------------------------------- compact tasks

CompactTask = tuple[str, str | None, str | None, str | None, str | None, str | None]
"""An open task as a plain tuple of strings: (id, type, caseId, title, solutionUrl, caseReference).
Plain tuples of strings are not tracked by Python's cyclic GC, so a snapshot of thousands of tasks
costs the triggerer no garbage-collection time (see docs/gates.md)."""

_RECORD_FIELDS = ("id", "type", "caseId", "title", "solutionUrl", "caseReference")
ID, TYPE, CASE_ID, TITLE, SOLUTION_URL, CASE_REFERENCE = range(6)
ANY_CASE = "*"
"""``Rejected.case_id`` of a record whose caseId is present but unreadable: it may belong to any case."""


@dataclass(frozen=True)
class Rejected:
    """A task record the gate cannot classify (not a spec-valid TaskDto as far as the gate reads it)."""

    case_id: str | None
    """Lower-case case id it carries, :data:`ANY_CASE` when unreadable, None when caseless."""
    type: str | None
    reason: str

    @property
    def affects_account(self) -> bool:
        """A caseless record of an account-level type (or one that may belong to any case) holds every gate."""
        return self.case_id == ANY_CASE or is_account_level_task(self.type, self.case_id)


@dataclass(frozen=True)
class RecordBatch:
    """The task records of one answer: every record's id (rejected ones get a placeholder, so paging
    counts stay right), the open tasks, and the rejected records."""

    ids: tuple[str, ...]
    open: tuple[CompactTask, ...]
    rejected: tuple[Rejected, ...] = ()


def _rejected(record: object, reason: str) -> Rejected:
    if not isinstance(record, dict):
        return Rejected(ANY_CASE, None, reason)
    case_id = record.get("caseId")
    kind = record.get("type")
    case = None if case_id is None else (case_id.lower() if isinstance(case_id, str) else ANY_CASE)
    return Rejected(case, kind if isinstance(kind, str) else None, reason)


def read_records(records: object, *, where: str = "") -> RecordBatch:
    """Classify a list of TaskDto records; one record the gate cannot read is isolated, never fatal.

    :param records: the decoded JSON list.
    :param where: names the page in placeholder ids of rejected records (unique across pages).
    """
    if records is None:
        return RecordBatch((), ())
    if not isinstance(records, list):
        raise ValueError(f"expected a list of tasks, got {type(records).__name__}")
    ids: list[str] = []
    open_tasks: list[CompactTask] = []
    rejected: list[Rejected] = []
    for index, record in enumerate(records):
        values = tuple(record.get(name) for name in _RECORD_FIELDS) if isinstance(record, dict) else None
        status = record.get("status") if isinstance(record, dict) else None
        if (
            values is None
            or not isinstance(values[ID], str)
            or not values[ID]
            or not all(v is None or type(v) is str for v in values[1:])
            or not (status is None or type(status) is str)
        ):
            rejected.append(_rejected(record, f"record {index} is not a readable task"))
            ids.append(f"\x00rejected-{where}{index}")
            continue
        ids.append(values[ID])
        if is_open_status(status):
            open_tasks.append(values)  # type: ignore[arg-type]
    return RecordBatch(tuple(ids), tuple(open_tasks), tuple(rejected))


@dataclass(frozen=True)
class PageInfo:
    """``PageData`` of a ``GET /tasks`` answer (the attribute names the listing state machine reads)."""

    total_results: int
    page_size: int
    current_page: int
    total_pages: int


@dataclass(frozen=True)
class TaskPageBatch:
    """One ``GET /tasks`` page read for a gate: its paging data and its records."""

    page: PageInfo
    batch: RecordBatch
    text: str | None = None
    """The page's task records as JSON, kept only for subscribers that need the full records."""


def _page_info(envelope: object) -> PageInfo:
    if not isinstance(envelope, dict):
        raise ValueError("the answer is not a TaskListDto object")
    data = envelope.get("page", envelope.get("pageData"))
    if not isinstance(data, dict):
        raise ValueError("the answer has no page data")
    numbers = [data.get(k, 0) for k in ("totalResults", "pageSize", "currentPage", "totalPages")]
    if not all(type(n) is int for n in numbers):
        raise ValueError(f"page data is not numeric: {data}")
    return PageInfo(*numbers)


def read_task_page(body: object, *, keep_text: bool = False) -> TaskPageBatch:
    """Parse a ``GET /tasks`` answer into a :class:`TaskPageBatch` (a ValueError for a broken envelope)."""
    info = _page_info(body)
    tasks = body.get("tasks") if isinstance(body, dict) else None
    return TaskPageBatch(
        info, read_records(tasks, where=f"p{info.current_page}-"), json.dumps(tasks) if keep_text else None
    )


def task_dict(task: CompactTask) -> dict[str, Any]:
    """The compact camelCase dict of a task (:data:`COMPACT_FIELDS`), as XCom and logs show it."""
    return {
        "id": task[ID],
        "type": task[TYPE],
        "title": task[TITLE],
        "caseId": task[CASE_ID],
        "solutionUrl": task[SOLUTION_URL],
    }


def is_account_level(task: CompactTask) -> bool:
    return is_account_level_task(task[TYPE], task[CASE_ID])


# ------------------------------------------------------------------------------------ the calls


def case_tasks_call(case_id: str) -> ApiCall[RecordBatch]:
    """Every open task of one case (one request; the type filter is applied here, so gates on one case
    with different filters share the read)."""
    call = endpoints.get_case_tasks(case_id, status=TaskStatus.OPEN.value)
    return replace(call, parse=read_records)


def account_tasks_call(page: int = 1) -> ApiCall[TaskPageBatch]:
    """One page of the account's open account-level tasks; the same call for every gate."""
    call = endpoints.get_tasks_page(
        status=TaskStatus.OPEN.value, types=ACCOUNT_LEVEL_TYPES, page=page, page_size=endpoints.MAX_PAGE_SIZE
    )
    return replace(call, parse=read_task_page)


def compact_page_call(call: ApiCall[Any], *, keep_text: bool = False) -> ApiCall[TaskPageBatch]:
    """A listing's page call, parsed into compact records instead of models."""
    return replace(call, parse=lambda body: read_task_page(body, keep_text=keep_text))


# ------------------------------------------------------------------------------ the policy


def is_fatal(exc: BaseException) -> bool:
    """Errors that checking again cannot fix (unknown case, bad key, bad parameter): fail at once."""
    return isinstance(exc, (DebituraNotFoundError, DebituraAuthError, DebituraConfigError, DebituraValidationError))


def is_transient(exc: BaseException) -> bool:
    """Errors after which the honest answer is "don't know yet": check again next interval."""
    return isinstance(exc, DebituraError) and exc.transient


@dataclass(frozen=True)
class Part:
    """One part of a gate's answer: the case's open tasks, or the account's open account-level tasks."""

    tasks: tuple[CompactTask, ...] = ()
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
    """A read case's part: unknown when one of its records could not be read."""
    if batch.rejected:
        return Part.unknown(f"{len(batch.rejected)} task record(s) of the case could not be read")
    return Part(batch.open, complete=complete)


# ------------------------------------------------------------------------------------ verdicts


class GateState(str, enum.Enum):
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    UNKNOWN = "unknown"
    FAILED = "failed"


@dataclass(frozen=True)
class GateVerdict:
    state: GateState
    blocking: tuple[CompactTask, ...] = ()
    """Blocking tasks, case tasks first."""
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
        return tuple(t[ID] for t in self.blocking)

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
        for task in self.blocking:
            by_type[task[TYPE] or "(no type)"].append(task)
        lines = [f"blocked by {len(self.blocking)} open task(s)"]
        for type_name, tasks in by_type.items():
            scope = " [account-level]" if type_name in ACCOUNT_LEVEL_TYPES and tasks[0][CASE_ID] is None else ""
            lines.append(f"  {type_name}{scope} x{len(tasks)}:")
            lines.extend(
                f"    - {t[TITLE] or t[ID]}: {t[SOLUTION_URL] or '(no solutionUrl)'}"
                for t in tasks[:SUMMARY_TASKS_PER_TYPE]
            )
            if len(tasks) > SUMMARY_TASKS_PER_TYPE:
                lines.append(f"    - ... and {len(tasks) - SUMMARY_TASKS_PER_TYPE} more")
        return "\n".join(lines)


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
        no case) block this case.
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

    @property
    def account_types(self) -> frozenset[str]:
        """The account-level types that can block this gate (empty: the account-level read is not needed)."""
        if not self.include_account_tasks:
            return frozenset()
        every = frozenset(ACCOUNT_LEVEL_TYPES)
        return every if self.blocking_types is None else every & self.blocking_types

    def blocks(self, task: CompactTask) -> bool:
        return self.blocking_types is None or task[TYPE] in self.blocking_types

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


# ------------------------------------------------------------------------------------ snapshots


@dataclass(frozen=True)
class AccountSnapshot:
    """What one round read, for every gate on a connection: the open tasks by case, the open
    account-level tasks, and what a case that was not read separately gets (:attr:`rest`).

    A full read of the queue indexes every open task once (``rest`` is "no tasks"); a round of direct
    reads holds just the cases it read (``rest`` is "not read"). Tuples of strings throughout, so that
    holding one costs the triggerer's garbage collector nothing.
    """

    taken_at: float
    """Wall-clock time when the reads started."""
    by_case: Mapping[str, tuple[CompactTask, ...]] = field(default_factory=dict)
    account: Part = field(default_factory=lambda: Part.unknown("the account-level tasks were not read"))
    rest: Part = field(default_factory=lambda: Part.unknown("the case was not read"))
    patches: Mapping[str, Part] = field(default_factory=dict)
    """Per-case answers that override ``by_case``: a record that could not be read, a direct re-read."""
    tasks: tuple[CompactTask, ...] = ()
    """Every open task of a full read (for subscribers that need the whole queue)."""
    total: int = 0
    error: str | None = None
    full: bool = False
    """The queue was read in full (every page), successfully or not."""
    pages: tuple[str, ...] = ()
    """The full read's task records as JSON text, one string per page (only when a subscriber asked)."""
    started: float = 0.0
    """Event-loop time when the round started (gates pace their next check from it)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def verified(self) -> bool:
        return self.full and self.ok and self.rest.complete

    @classmethod
    def failed(cls, error: str, taken_at: float, *, full: bool = True) -> AccountSnapshot:
        doubt = Part.unknown(error)
        return cls(taken_at, account=doubt, rest=doubt, error=error, full=full)

    @classmethod
    def from_tasks(cls, tasks: Iterable[Any], taken_at: float, *, verified: bool = True) -> AccountSnapshot:
        """A full snapshot from already-read tasks (``Task`` models or compact tuples).

        :param tasks: every task of a full listing.
        :param taken_at: when the listing started.
        :param verified: whether the listing guarantees it missed no task.
        """
        compacts = [
            t if isinstance(t, tuple) else _compact_model(t) for t in tasks if isinstance(t, tuple) or t.is_open
        ]
        return cls.from_batch(RecordBatch(tuple(t[ID] for t in compacts), tuple(compacts)), taken_at, verified=verified)

    @classmethod
    def from_batch(
        cls, batch: RecordBatch, taken_at: float, *, verified: bool, pages: tuple[str, ...] = ()
    ) -> AccountSnapshot:
        """Index a full read once, so each gate's verdict is a dict lookup.

        :param batch: the records of the whole listing.
        :param taken_at: when the listing started.
        :param verified: whether the listing guarantees it missed no task.
        :param pages: the records as JSON text, for subscribers that asked for them.
        """
        by_case: dict[str, list[CompactTask]] = defaultdict(list)
        account: list[CompactTask] = []
        for task in batch.open:
            if is_account_level(task):
                account.append(task)
            elif task[CASE_ID]:
                by_case[task[CASE_ID].lower()].append(task)
        doubt = "the listing could not rule out a missed task" if not verified else None
        account_part = Part(tuple(account), complete=verified, reason=doubt)
        if any(r.affects_account for r in batch.rejected):
            account_part = Part.unknown("an account-level task record could not be read")
        patches = {
            r.case_id: Part.unknown("a task record of this case could not be read")
            for r in batch.rejected
            if r.case_id and r.case_id != ANY_CASE
        }
        return cls(
            taken_at,
            {k: tuple(v) for k, v in by_case.items()},
            account_part,
            Part(complete=verified, reason=doubt),
            patches,
            batch.open,
            len(batch.ids),
            full=True,
            pages=pages,
        )

    def case_part(self, case_id: str) -> Part:
        key = case_id.lower()
        patch = self.patches.get(key)
        if patch is not None:
            return patch
        tasks = self.by_case.get(key)
        if tasks is None:
            return self.rest
        return Part(tasks, complete=self.rest.complete, reason=self.rest.reason) if self.full else Part(tasks)

    def verdict_for(self, spec: GateSpec) -> GateVerdict:
        return spec.verdict(self.case_part(spec.case_id), self.account)

    def verdict(
        self, case_id: str, *, blocking_types: Sequence[str] | None = None, include_account_tasks: bool = True
    ) -> GateVerdict:
        """The verdict for one case (same rule as every other path).

        :param case_id: the case GUID.
        :param blocking_types: the blocking types, None for every type.
        :param include_account_tasks: whether account-level tasks count.
        """
        return self.verdict_for(GateSpec.of(case_id, blocking_types, include_account_tasks))

    def with_reads(self, cases: Mapping[str, Part], account: Part | None) -> AccountSnapshot:
        """This snapshot with some parts replaced by direct re-reads (the fallback of a doubtful full read)."""
        return replace(
            self, patches={**self.patches, **cases}, account=account if account is not None else self.account
        )

    def records(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The full task records of a full read (JSON as the API sent it), in listing order.

        :param ids: only these task ids (None: every open task). Needs a poller subscriber that asked for records.
        """
        wanted = None if ids is None else set(ids)
        open_ids = {t[ID] for t in self.tasks}
        out: list[dict[str, Any]] = []
        for text in self.pages:
            for record in json.loads(text) or ():
                task_id = record.get("id") if isinstance(record, dict) else None
                if task_id in open_ids and (wanted is None or task_id in wanted):
                    out.append(record)
        return out


def _compact_model(task: Any) -> CompactTask:
    return (task.id, task.type, task.case_id, task.title, task.solution_url, task.case_reference)


# ------------------------------------------------------------------------------- direct reads


@dataclass
class DirectReads:
    """The reads of one round of direct checks, for one gate or many: one read per distinct case, and
    the account-level tasks once (page 1; a further page only while a needed type is still unseen).

    Drive it: send each of :meth:`case_calls` (concurrently is fine) with :meth:`feed_case` (or
    :meth:`skip_case` once :attr:`tripped`), then :meth:`account_call` / :meth:`feed_account` until it
    returns None; :meth:`snapshot` holds the answers. Cases first, then the account: an account-level
    task raised while the cases are read is still seen.

    :param case_ids: the cases to read.
    :param account_types: the account-level types some gate needs (empty: no account-level read).
    """

    case_ids: Iterable[str]
    account_types: frozenset[str] = frozenset()
    cases: dict[str, Part] = field(default_factory=dict)
    account: Part | None = None
    failures: int = 0
    requests: int = 0
    """Answers fed so far: the requests this round sent."""
    _account_tasks: list[CompactTask] = field(default_factory=list)
    _page: int = 1
    _total: int | None = None

    def __post_init__(self) -> None:
        self.case_ids = tuple(dict.fromkeys(c.lower() for c in self.case_ids))

    @property
    def tripped(self) -> bool:
        return self.failures >= FAILED_READS_PER_ROUND

    def account_call(self) -> ApiCall[TaskPageBatch] | None:
        if not self.account_types or self.account is not None:
            return None
        return account_tasks_call(self._page)

    def feed_account(self, answer: TaskPageBatch | BaseException) -> None:
        self.requests += 1
        if isinstance(answer, BaseException):
            self.account = self._failed(answer)
            return
        info, batch = answer.page, answer.batch
        if any(r.affects_account for r in batch.rejected):
            self.account = Part.unknown("an account-level task record could not be read")
            return
        size = endpoints.MAX_PAGE_SIZE
        expected = min(size, max(0, info.total_results - (self._page - 1) * size))
        if (self._total is not None and info.total_results != self._total) or len(batch.ids) != expected:
            self.account = Part.unknown("the account-level listing changed or disagreed with its own count")
            return
        self._total = info.total_results
        self._account_tasks.extend(t for t in batch.open if is_account_level(t))
        self.cases.update(
            {
                r.case_id: Part.unknown("a task record of this case could not be read")
                for r in batch.rejected
                if r.case_id
            }
        )
        last = self._page * size >= info.total_results
        seen = {t[TYPE] for t in self._account_tasks}
        if last or self.account_types <= seen:
            reason = None if last else "only the first page(s) of account-level tasks were read"
            self.account = Part(tuple(self._account_tasks), complete=last, reason=reason)
        else:
            self._page += 1

    def case_calls(self) -> list[tuple[str, ApiCall[RecordBatch]]]:
        return [(case_id, case_tasks_call(case_id)) for case_id in self.case_ids if case_id not in self.cases]

    def feed_case(self, case_id: str, answer: RecordBatch | BaseException) -> None:
        self.requests += 1
        self.cases[case_id] = self._failed(answer) if isinstance(answer, BaseException) else part_from(answer)

    def skip_case(self, case_id: str) -> None:
        self.cases[case_id] = Part.unknown(f"skipped after {self.failures} failed reads in this round")

    def _failed(self, exc: BaseException) -> Part:
        part = part_from_error(exc)
        if part.error is None:
            self.failures += 1
        return part

    def snapshot(self, taken_at: float) -> AccountSnapshot:
        by_case = {c: p.tasks for c, p in self.cases.items() if p.settled}
        patches = {c: p for c, p in self.cases.items() if not p.settled}
        account = self.account if self.account is not None else Part.unknown("the account-level tasks were not read")
        return AccountSnapshot(taken_at, by_case, account, patches=patches)


# ----------------------------------------------------------------------------- bookkeeping


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


@dataclass(slots=True)
class GateProgress:
    """What a gate remembers between checks: the count, the first check's blockers, its case's name.

    :param case_id: the case GUID.
    :param label: the case's reference for log lines (None until known).
    :param checks: checks already made (e.g. by the sensor before it deferred).
    :param first_blockers: compact blockers of the first check that could tell, None until then.
    :param record_first: False when earlier checks were made but their blockers are lost (reschedule mode
        without a task state store): ``first_blockers`` then stays None.
    """

    case_id: str
    label: str | None = None
    checks: int = 0
    first_blockers: list[dict[str, Any]] | None = None
    record_first: bool = True
    solution_url: str | None = None
    _last_ids: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return f"{self.label} ({self.case_id})" if self.label and self.label != self.case_id else self.case_id

    def note(self, verdict: GateVerdict, *, quiet_unchanged: bool = False) -> tuple[str, str]:
        """Count a check; return (level, message) for its log line ("warning", "info" or "debug").

        :param verdict: the check's verdict.
        :param quiet_unchanged: "debug" for a blocked verdict identical to the last one.
        """
        self.checks += 1
        if self.label is None and verdict.case_reference:
            self.label = verdict.case_reference
        if verdict.state in (GateState.BLOCKED, GateState.UNBLOCKED):
            if self.first_blockers is None and self.record_first:
                self.first_blockers = verdict.blockers()
            self.solution_url = verdict.first_solution_url or self.solution_url
        if verdict.state in (GateState.UNKNOWN, GateState.FAILED):
            return "warning", f"Case {self.name}, check {self.checks}: {verdict.summary()}"
        ids = verdict.ids
        changed, self._last_ids = ids != self._last_ids, ids
        if quiet_unchanged and not changed and verdict.state is GateState.BLOCKED:
            # No summary built: 1,000 gates re-listing 100 blockers each round would cost the loop ~30 ms.
            return "debug", f"Case {self.name}, check {self.checks}: still blocked (unchanged)"
        return "info", f"Case {self.name}, check {self.checks}: {verdict.summary()}"

    def record(self) -> dict[str, Any]:
        return success_record(self.case_id, self.checks, self.first_blockers)


def next_interval(
    base: float, checks: int, *, exponential_backoff: bool = False, max_wait: float | None = None, seed: str = ""
) -> float:
    """Seconds until the next check: ``base``, or with ``exponential_backoff`` Airflow's own sensor
    progression (after check n, between base·2^(n-2) and twice that, jittered by ``seed``), capped by
    ``max_wait``.

    :param base: the poke or poll interval.
    :param checks: checks made so far.
    :param exponential_backoff: grow the interval after each check.
    :param max_wait: the longest interval, None for no cap.
    :param seed: makes the jitter differ between gates and stay stable across restarts.
    """
    if not exponential_backoff:
        return base
    low = base * 2.0 ** (max(checks, 1) - 2)
    digest = int(hashlib.sha1(f"{seed}#{checks}".encode(), usedforsecurity=False).hexdigest()[:8], 16)
    interval = low + low * (digest % 1000) / 1000
    return min(interval, max_wait) if max_wait else interval
