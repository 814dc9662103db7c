"""The case gate: hold a pipeline (export, invoicing, reporting) while a Debitura case is blocked."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_debitura import gate
from airflow_provider_debitura.exceptions import DebituraError, DebituraNotFoundError
from airflow_provider_debitura.gate import GateState, GateVerdict
from airflow_provider_debitura.hooks.debitura import DebituraHook, case_lookup
from airflow_provider_debitura.links import DebituraResolveLink, push_solution_url
from airflow_provider_debitura.models import TaskStatus
from airflow_provider_debitura.triggers.debitura import DebituraCaseUnblockedTrigger
from airflow_provider_debitura.validation import CaseSelector, case_selector, positive_seconds, task_types


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


class DebituraCaseUnblockedSensor(BaseSensorOperator):
    """Waits until a Debitura case has no open blocking task.

    The case is blocked while it has an open task of ``blocking_task_types`` (None: every type,
    including types Debitura adds later) or, with ``include_account_tasks``, while the account has
    an open account-level task (SignContract, AssignBankAccount): those never show in the case's
    own listing, yet they stop every case. Account-level tasks block whatever ``blocking_task_types``
    says.

    Each check costs at most two requests, and a check whose read fails transiently (5xx, 429,
    transport, malformed body) counts as "still blocked": the gate never opens on doubt. An unknown
    case or a rejected API key fails at once instead of polling until the timeout.

    Returns (XCom) ``{"case_id", "unblocked_at", "checks", "blocked_by_on_first_check"}`` in every
    mode. The "Resolve in Debitura" link opens the first blocker's ``solutionUrl``. In
    ``mode="reschedule"`` each try makes one check and Airflow clears XComs between tries: ``checks``
    comes from Airflow's reschedule count (checks of the current try), and
    ``blocked_by_on_first_check`` is rebuilt at success from the tasks solved since the first try
    started, which is best effort (see :meth:`_derive_first_blockers`; None if it cannot be rebuilt).

    Parameters given as literals are validated when the DAG is parsed; templated ones (Jinja strings,
    XComArgs) after rendering, at the first check.

    :param case_id: Debitura case GUID; or exactly one of ``creditor_reference`` / ``case_reference``
        (resolved to the GUID once). Templated.
    :param poll_interval: seconds between checks in the triggerer (default: ``poke_interval``).
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.case_id = case_id
        self.creditor_reference = creditor_reference
        self.case_reference = case_reference
        self.blocking_task_types = blocking_task_types
        self.include_account_tasks = include_account_tasks
        self.debitura_conn_id = debitura_conn_id
        self.deferrable = deferrable
        self.poll_interval = positive_seconds("poll_interval", poll_interval, allow_none=True)
        positive_seconds("poke_interval", self.poke_interval)
        positive_seconds("timeout", self.timeout)
        # Parse-time checks only for literal values: a Jinja string or an XComArg is checked after
        # rendering, in poke/execute (a template may also render empty, e.g. one of two templated
        # selectors). Literal-only selectors get the full check now.
        given = [v for v in (case_id, creditor_reference, case_reference) if v is not None and str(v).strip()]
        if not any(_is_template(v) for v in given):
            case_selector(case_id, creditor_reference, case_reference)
        if not _is_template(blocking_task_types):
            self.blocking_task_types = task_types("blocking_task_types", blocking_task_types)
        self._resolved_case_id: str | None = None
        self._checks = 0
        self._prior_checks = 0
        self._first_blockers: list[dict[str, Any]] | None = None

    @cached_property
    def hook(self) -> DebituraHook:
        return DebituraHook(self.debitura_conn_id)

    # -- the check --

    def _selector(self) -> CaseSelector:
        selector = case_selector(self.case_id, self.creditor_reference, self.case_reference)
        assert selector is not None
        return selector

    def _types(self) -> list[str] | None:
        return task_types("blocking_task_types", self.blocking_task_types)

    def _fail(self, exc: DebituraError, what: str) -> AirflowFailException:
        return AirflowFailException(f"{what}: {exc}")

    def resolve_case_id(self) -> str:
        """The case GUID: given, or looked up once by reference (cached on the instance)."""
        if self._resolved_case_id is None:
            selector = self._selector()
            if selector.case_id:
                self._resolved_case_id = selector.case_id
            else:
                try:
                    case = self.hook.run(case_lookup(selector))
                except DebituraError as exc:
                    if gate.is_fatal(exc):
                        # Only a 404 means the case is missing; a bad connection or key says so itself.
                        what = (
                            f"Cannot find Debitura case {selector.description}"
                            if isinstance(exc, DebituraNotFoundError)
                            else f"Could not look up Debitura case {selector.description}"
                        )
                        raise self._fail(exc, what) from exc
                    raise
                self._resolved_case_id = case.id
                self.log.info("Debitura case %s is %s", selector.description, case.id)
        return self._resolved_case_id

    def check(self, case_id: str) -> GateVerdict:
        """One check: at most two requests; transient failures give an "unknown" verdict."""
        types = self._types()
        case_call, account_call = gate.direct_check_calls(
            case_id, blocking_types=types, include_account_tasks=self.include_account_tasks
        )
        try:
            case_tasks = self.hook.run(case_call)
            account_page = self.hook.run(account_call) if account_call is not None else None
        except DebituraError as exc:
            if gate.is_fatal(exc):
                raise self._fail(exc, f"Case gate for Debitura case {case_id} cannot work") from exc
            if gate.is_transient(exc):
                return gate.unknown(f"{type(exc).__name__}: {exc}")
            raise
        return gate.verdict_from_direct(
            case_tasks, account_page, blocking_types=types, include_account_tasks=self.include_account_tasks
        )

    def poke(self, context: Any) -> PokeReturnValue:
        case_id = self.resolve_case_id()
        if self._checks == 0 and self.reschedule:
            # Checks made by earlier tries; their XComs are gone (Airflow clears them per try).
            self._prior_checks = self._checks = _reschedule_count(context)
        verdict = self.check(case_id)
        self._checks += 1
        if self._first_blockers is None and not self._prior_checks and verdict.state is not GateState.UNKNOWN:
            self._first_blockers = list(verdict.blocking)
        if verdict.state is GateState.UNKNOWN:
            self.log.warning("Case %s, check %d: %s", case_id, self._checks, verdict.summary())
            return PokeReturnValue(is_done=False)
        self.log.info("Case %s, check %d: %s", case_id, self._checks, verdict.summary())
        if not verdict.is_unblocked:
            push_solution_url(context, verdict.first_solution_url)
            return PokeReturnValue(is_done=False)
        first = self._first_blockers
        if first is None and self._prior_checks:
            first = self._derive_first_blockers(context, case_id)
        return PokeReturnValue(is_done=True, xcom_value=gate.success_record(case_id, self._checks, first))

    def _derive_first_blockers(self, context: Any, case_id: str) -> list[dict[str, Any]] | None:
        """Reschedule mode: Airflow clears the task's XComs before every rescheduled try, so the first
        check's blockers are derived once, at success: the now-solved tasks that were open when the
        first try started (all of them are solved, or the gate would not be open).

        Best effort, unlike ``checks``: it takes the first try's *start* for the first check's time
        (a task created or solved in the second or so between the two is misjudged), and needs
        Airflow's and Debitura's clocks to roughly agree. Costs, once: the case's solved tasks (1
        request) and the account's solved account-level tasks (every page: Debitura lists oldest
        first, so the recent ones are not on page 1). None when it cannot be established."""
        first_at = _first_try_start(context)
        if first_at is None:
            return None
        types = self._types()
        try:
            solved = list(self.hook.get_case_tasks(case_id, status=TaskStatus.SOLVED.value, types=types))
            if self.include_account_tasks:
                solved += self.hook.list_tasks(status=TaskStatus.SOLVED.value, types=gate.ACCOUNT_LEVEL_TYPES)
        except DebituraError as exc:
            self.log.warning("Could not derive the first check's blockers: %s", exc)
            return None
        return [
            gate.compact(t)
            for t in solved
            if t.date_created <= first_at and (t.date_solved is None or t.date_solved > first_at)
        ]

    # -- modes --

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        try:
            result = self.poke(context)
        except AirflowFailException as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise
        if result.is_done:
            return result.xcom_value
        finite = math.isfinite(self.timeout)
        self.defer(
            trigger=DebituraCaseUnblockedTrigger(
                case_id=self.resolve_case_id(),
                blocking_task_types=self._types(),
                include_account_tasks=self.include_account_tasks,
                debitura_conn_id=self.debitura_conn_id,
                poll_interval=self.poll_interval or self.poke_interval,
                end_time=started + self.timeout if finite else None,
                checks=self._checks,
                first_blockers=self._first_blockers,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if finite else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowFailException(f"Case gate trigger sent no usable event: {event!r}")
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
        raise AirflowFailException(message)


def _reschedule_count(context: Any) -> int:
    """How many times this try was rescheduled, i.e. checks already made before this one (each
    rescheduled try makes exactly one check). Airflow 3 puts it in the context; Airflow 2 keeps one
    TaskReschedule row per reschedule of the try."""
    count = context.get("task_reschedule_count") if hasattr(context, "get") else None
    if count is not None:  # Airflow 3 puts it in the context
        return int(count)
    rows = _airflow2_reschedules(context)
    return len(rows)


def _first_try_start(context: Any) -> datetime | None:
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return None
    if "task_reschedule_count" in context:  # Airflow 3
        return ti.get_first_reschedule_date(context)
    rows = _airflow2_reschedules(context)
    return rows[0].start_date if rows else None


def _airflow2_reschedules(context: Any) -> list[Any]:
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return []
    try:
        from airflow.models.taskreschedule import TaskReschedule
        from airflow.utils.session import create_session

        with create_session() as session:
            return list(
                session.scalars(TaskReschedule.stmt_for_task_instance(ti=ti, try_number=None, descending=False)).all()
            )
    except Exception:  # no DB (unit tests) or an API change: fall back to counting from here
        return []
