"""The case gate: hold a pipeline (export, invoicing, reporting) while a Debitura case is blocked."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_debitura import gate
from airflow_provider_debitura.exceptions import DebituraError, DebituraRequestError
from airflow_provider_debitura.gate import DirectReads, GateProgress, GateSpec, GateState, GateVerdict
from airflow_provider_debitura.gate.progress import check_backoff
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.hooks.lookup import CaseLookup
from airflow_provider_debitura.links import DebituraResolveLink, push_solution_url
from airflow_provider_debitura.sensors.memory import TaskMemory
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger
from airflow_provider_debitura.validation import CaseSelector, as_bool, case_selector, positive_seconds, task_types

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _is_template(value: Any) -> bool:
    """True when the value is only known after rendering: a Jinja string, or an object Airflow
    resolves at run time (``XComArg`` such as ``lookup.output["id"]``, and the like)."""
    if value is None:
        return False
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_is_template(v) for v in value)
    return True


@dataclass(frozen=True)
class _Case:
    id: str
    label: str | None


class DebituraCaseUnblockedSensor(BaseSensorOperator):
    """Waits until a Debitura case has no open blocking task.

    A check reads the case's open tasks (1 request) and, when account-level tasks can block it, the
    account's open SignContract / AssignBankAccount tasks (1 request); the check that would open a gate that
    counts every type also rules out a caseless task of a type the provider does not know (1-2 requests,
    ``docs/gates-unknown-types.md``). A gate blocked for long checks less often (``backoff``, at most every
    ``max_wait``: ``docs/gate-backoff.md``). A check whose read fails
    transiently counts as "still blocked"; an unknown case or a rejected key fails at once (or skips,
    with ``soft_fail`` / ``never_fail``). The XCom record is ``{"case_id", "unblocked_at", "checks",
    "blocked_by_on_first_check"}`` in every mode; in reschedule mode ``blocked_by_on_first_check`` may be
    null (see ``docs/gates.md``). Parameter table and costs: ``docs/gates.md`` and the README.

    :param case_id: Debitura case GUID; or exactly one of ``creditor_reference`` / ``case_reference``.
        Templated (checked after rendering when templated, else when the DAG is parsed).
    :param creditor_reference: your own reference of the case (resolved to the GUID once per task instance).
    :param case_reference: Debitura's 8-character reference of the case.
    :param blocking_task_types: only tasks of these types block, the case's own and account-level ones
        alike (None: every type, including types Debitura adds later). Templated.
    :param include_account_tasks: whether open account-level tasks (SignContract, AssignBankAccount, raised
        on the account, never on a case) block this case.
    :param debitura_conn_id: the Airflow connection (type Debitura). Templated.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between checks in the triggerer (default: ``poke_interval``).
    :param backoff: a gate blocked for long checks less often, in every mode (default True): the interval
        for its first 10 intervals, then a tenth of the time it has been blocked (each wait 1.1 times the
        last), at most ``max_wait``; a change of its blockers starts it again from the interval (in poke mode
        and in the triggerer; in reschedule mode the time counts from the first try). False: a fixed interval.
        Airflow's ``exponential_backoff=True`` (doubling after each check) replaces it. See docs/gate-backoff.md.
    :param max_wait: Airflow's parameter: the longest wait between two checks, seconds or a ``timedelta``
        (default here: 15 minutes, the most a gate opens after its blocker clears); at least the interval.
    """

    template_fields: Sequence[str] = (
        "case_id",
        "creditor_reference",
        "case_reference",
        "blocking_task_types",
        "debitura_conn_id",
    )
    operator_extra_links = (DebituraResolveLink(),)
    ui_color = "#f6d365"

    def __init__(
        self,
        *,
        case_id: str | None = None,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
        blocking_task_types: Sequence[str] | str | None = None,
        include_account_tasks: bool = True,
        debitura_conn_id: str = "debitura_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta | None = None,
        backoff: bool = True,
        **kwargs: Any,
    ) -> None:
        # Before Airflow's own check, which raises AirflowException on 2.11 and 3.1 and ValueError on 3.2+.
        for name in ("poke_interval", "timeout", "max_wait"):
            if kwargs.get(name) is not None:
                positive_seconds(name, kwargs[name])
        if kwargs.get("max_wait") is None:
            kwargs["max_wait"] = timedelta(seconds=gate.DEFAULT_MAX_WAIT)
        super().__init__(**kwargs)
        self.backoff = as_bool("backoff", backoff)
        self.case_id = case_id
        self.creditor_reference = creditor_reference
        self.case_reference = case_reference
        self.blocking_task_types = blocking_task_types
        self.include_account_tasks = bool(include_account_tasks)
        self.debitura_conn_id = debitura_conn_id
        self.deferrable = deferrable
        self.poll_interval = positive_seconds("poll_interval", poll_interval, allow_none=True)
        positive_seconds("poke_interval", self.poke_interval)
        positive_seconds("timeout", self.timeout)
        if self.backoff or self.exponential_backoff:
            check_backoff(self.poke_interval, self._max_wait_seconds(), "poke_interval")
            if self.poll_interval is not None:
                check_backoff(self.poll_interval, self._max_wait_seconds(), "poll_interval")
        # Literal values are checked now, templated ones (Jinja strings, XComArgs) after rendering, at the
        # first check (a template may also render empty, e.g. one of two templated selectors).
        given = [v for v in (case_id, creditor_reference, case_reference) if v is not None and str(v).strip()]
        if not any(_is_template(v) for v in given):
            case_selector(case_id, creditor_reference, case_reference)
        if not _is_template(blocking_task_types):
            self.blocking_task_types = task_types("blocking_task_types", blocking_task_types)
            gate.check_gate_config(self.blocking_task_types, self.include_account_tasks)
        self._case: _Case | None = None
        self._progress: GateProgress | None = None
        self._pushed: str | None = None

    def _max_wait_seconds(self) -> float:
        wait = self.max_wait
        return wait.total_seconds() if isinstance(wait, timedelta) else float(wait or gate.DEFAULT_MAX_WAIT)

    def _get_next_poke_interval(self, started_at: Any, run_duration: Callable[[], float], poke_count: int) -> float:
        """Seconds until the next poke or reschedule (Airflow asks after each check that is not done): with
        ``backoff``, :func:`gate.backoff_interval` of the time blocked (since the current blockers were first
        seen in poke mode; since the first try in reschedule mode), never past the timeout; with
        ``exponential_backoff``, Airflow's own progression (capped by ``max_wait``)."""
        if self.exponential_backoff or not self.backoff:
            return float(super()._get_next_poke_interval(started_at, run_duration, poke_count))
        elapsed = run_duration()
        progress = self._progress
        if progress is not None and progress.since is not None and not self.reschedule:
            blocked_for = progress.blocked_for(time.time())
        else:
            blocked_for = elapsed
        interval = gate.backoff_interval(self.poke_interval, blocked_for, self._max_wait_seconds())
        return max(0.0, min(interval, self.timeout - elapsed))

    @cached_property
    def hook(self) -> DebituraHook:
        return DebituraHook(self.debitura_conn_id)

    # -- the case --

    def _selector(self) -> CaseSelector:
        selector = case_selector(self.case_id, self.creditor_reference, self.case_reference)
        assert selector is not None
        return selector

    def _spec(self, case_id: str) -> GateSpec:
        types = task_types("blocking_task_types", self.blocking_task_types)
        return GateSpec.of(case_id, types, self.include_account_tasks)

    def resolve_case_id(self) -> str:
        """The case GUID: given, or looked up once by reference (one request). A transient failure raises
        the :class:`DebituraError` (callers treat it as "still blocked"); a definite one fails the task."""
        return self._resolve(TaskMemory({})).id

    def _resolve(self, memory: TaskMemory) -> _Case:
        if self._case is not None:
            return self._case
        selector = self._selector()
        key = f"debitura_case:{selector.description}"
        stored = memory.get(key)
        if selector.case_id:
            self._case = _Case(selector.case_id, stored.get("label") if isinstance(stored, dict) else None)
        elif isinstance(stored, dict) and stored.get("case_id"):
            self._case = _Case(str(stored["case_id"]), stored.get("label"))
        else:
            try:
                found = self.hook.exchange(CaseLookup(selector))
            except DebituraError as exc:
                if gate.is_fatal(exc):
                    raise AirflowFailException(gate.lookup_failure_message(selector.description, exc)) from _cause(exc)
                raise
            label = selector.creditor_reference or found.creditor_reference or selector.case_reference
            self._case = _Case(found.id, label)
            memory.set(key, {"case_id": found.id, "label": label})
            self.log.info("Debitura case %s is %s", selector.description, found.id)
        return self._case

    def _name_case(self, case: _Case, memory: TaskMemory) -> _Case:
        """Given only a GUID and no task naming the case: one case read, once, for the log lines."""
        try:
            found = self.hook.get_case(case.id)
        except DebituraError as exc:
            self.log.debug("Could not read case %s for its reference: %s", case.id, exc)
            return case
        named = _Case(case.id, found.creditor_reference or found.reference or case.id)
        memory.set(f"debitura_case:{self._selector().description}", {"case_id": case.id, "label": named.label})
        self._case = named
        return named

    # -- the check --

    def check(self, case_id: str) -> GateVerdict:
        """One check: the case's open tasks, then (when they can block it) the account-level ones."""
        spec = self._spec(case_id)
        reads = DirectReads([spec.case_id], spec.account_types, prove_new_types=True)  # no shared read to lean on
        return self.hook.exchange(reads).snapshot(time.time()).verdict_for(spec)

    def _progress_for(self, context: Context, memory: TaskMemory, case: _Case | None) -> GateProgress:
        if self._progress is not None and not self.reschedule:
            if case is not None and not self._progress.case_id:  # the lookup failed at the first check
                self._progress.case_id, self._progress.label = case.id, self._progress.label or case.label
            return self._progress
        # Reschedule mode: each try is a fresh process. Airflow 3 says how many checks came before (2.11 does
        # not: there, the first check's blockers are known only if the task state store kept them).
        count = context.get("task_reschedule_count") if hasattr(context, "get") else None
        prior = int(count or 0)
        first = memory.get(_first_key(context)) if memory.available else None
        first_check = not self.reschedule or (count is not None and prior == 0)
        self._progress = GateProgress(
            case.id if case else "", case.label if case else None, prior,
            first if isinstance(first, list) else None, record_first=first_check or memory.available,
        )  # fmt: skip
        return self._progress

    def poke(self, context: Context) -> PokeReturnValue:
        """One check; transient failures (the lookup included) leave the gate shut for the next check."""
        memory = TaskMemory(context)
        try:
            case = self._resolve(memory)
        except DebituraError as exc:
            progress = self._progress_for(context, memory, None)
            progress.checks += 1
            self.log.warning(
                "Case %s, check %d: could not look the case up (%s); treating it as blocked",
                self._selector().description, progress.checks, exc,
            )  # fmt: skip
            self._publish(context, progress.solution_url)
            return PokeReturnValue(is_done=False)
        progress = self._progress_for(context, memory, case)
        verdict = self.check(case.id)
        if progress.label is None and verdict.case_reference is None and verdict.state in _TELLING:
            progress.label = self._name_case(case, memory).label
        had_first = progress.first is not None
        level, message = progress.note(verdict)
        getattr(self.log, level)(message)
        if progress.first is not None and not had_first and self.reschedule:
            memory.set(_first_key(context), progress.first_blockers)
        self._publish(context, progress.solution_url)
        if verdict.state is GateState.FAILED:
            raise AirflowFailException(gate.failure_message(progress.name, verdict)) from _cause(verdict.error)
        if verdict.is_unblocked:
            return PokeReturnValue(is_done=True, xcom_value=progress.record())
        return PokeReturnValue(is_done=False)

    def _publish(self, context: Context, url: str | None) -> None:
        """Record the URL the "Resolve in Debitura" link opens (``links.push_solution_url``: on the running task
        on Airflow 3, in XCom on Airflow 2); nothing without a blocker, and nothing twice."""
        if url and url != self._pushed:
            push_solution_url(context, url)
            self._pushed = url

    # -- modes --

    def _skip_or_raise(self, exc: Exception) -> Exception:
        """``soft_fail`` and ``never_fail`` turn a failed check into a skip in every mode, as in poke mode."""
        if self.soft_fail:
            return AirflowSkipException(f"Skipping due to soft_fail: {exc}")
        if getattr(self, "never_fail", False):
            return AirflowSkipException(f"Skipping due to never_fail: {exc}")
        return exc

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        try:
            result = self.poke(context)
        except AirflowSkipException:
            raise
        except Exception as exc:
            raise self._skip_or_raise(exc) from None
        if result.is_done:
            return result.xcom_value
        finite = math.isfinite(self.timeout)
        self.defer(
            trigger=self._trigger(started + self.timeout if finite else None),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if finite else None,
        )

    def _trigger(self, end_time: float | None) -> DebituraCaseUnblockedTrigger:
        progress = self._progress
        assert progress is not None
        selector = self._selector()
        max_wait = self._max_wait_seconds()
        return DebituraCaseUnblockedTrigger(
            case_id=self._case.id if self._case else None,
            blocking_task_types=task_types("blocking_task_types", self.blocking_task_types),
            include_account_tasks=self.include_account_tasks,
            debitura_conn_id=self.debitura_conn_id,
            poll_interval=self.poll_interval or self.poke_interval,
            end_time=end_time,
            checks=progress.checks,
            first_blockers=progress.first_blockers,
            case_label=progress.label,
            creditor_reference=None if self._case else selector.creditor_reference,
            case_reference=None if self._case else selector.case_reference,
            exponential_backoff=bool(self.exponential_backoff),
            max_wait=max_wait,
            solution_url=progress.solution_url,
            backoff=self.backoff,
            blocked_since=progress.since,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(event, dict) or "status" not in event:
            raise self._skip_or_raise(AirflowFailException(f"Case gate trigger sent no usable event: {event!r}"))
        self._publish(context, event.get("solution_url"))  # the last blocker the trigger saw
        status = event["status"]
        if status == "success":
            record = {key: event.get(key) for key in ("case_id", "unblocked_at", "checks", "blocked_by_on_first_check")}
            self.log.info("Case %s unblocked after %s check(s)", record["case_id"], record["checks"])
            return record
        message = event.get("message") or f"case gate trigger reported {status!r}"
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise self._skip_or_raise(AirflowFailException(message))


_TELLING = (GateState.BLOCKED, GateState.UNBLOCKED)


def _cause(exc: BaseException | None) -> BaseException | None:
    """The cause to chain to a failure: none for an answer from the API (the message already says what it
    said, and its traceback is a wall of retry frames), the error itself for a configuration problem."""
    return None if isinstance(exc, DebituraRequestError) else exc


def _first_key(context: Context) -> str:
    ti = context.get("ti") if hasattr(context, "get") else None
    return f"debitura_gate_first_check:try_{getattr(ti, 'try_number', 1)}"
