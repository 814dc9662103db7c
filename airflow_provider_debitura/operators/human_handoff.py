"""Hand Debitura tasks that only a person can resolve to Airflow's Required Actions page (Airflow 3.1+).

See docs/human-in-the-loop.md for the design: Debitura's queue stays the source of truth, the request
closes itself when the task is solved in the app, and "Done" is checked against the API. Airflow never rewrites
a request, so one is asked again only while its whole text is still true (docs/hitl-reasking.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_debitura.exceptions import (
    DebituraConfigError,
    DebituraError,
    DebituraHandoffCaseGoneError,
    DebituraHandoffOutOfDateError,
    DebituraHandoffStillOpenError,
    DebituraHandoffUnverifiedError,
)
from airflow_provider_debitura.hitl import compat as hitl_compat
from airflow_provider_debitura.hitl.compat import HITLOperator, refuse_fixed_args, require_hitl
from airflow_provider_debitura.hitl.handoff import HandoffCheck, HandoffReads, handoff_tasks
from airflow_provider_debitura.hitl.request import default_subject, handoff_body
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.links import DebituraResolveLink, push_solution_url
from airflow_provider_debitura.triggers.human_handoff import (
    CASE_GONE_KEY,
    CLEARED_KEY,
    UNVERIFIED_KEY,
    VERIFIED_KEY,
    DebituraHandoffTrigger,
)
from airflow_provider_debitura.validation import connection_id, positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "DebituraHandoffCaseGoneError",  # the errors live in airflow_provider_debitura.exceptions; importable here too
    "DebituraHandoffOutOfDateError",
    "DebituraHandoffStillOpenError",
    "DebituraHandoffUnverifiedError",
    "DebituraHumanHandoffOperator",
]

STILL_OPEN_MODES = ("ask_again", "fail")

VERIFY_GRACE_CHECKS = 3
"""After an answer Debitura could not confirm, keep checking at least this many ``poll_interval``s."""


def _case_gone_message(check: HandoffCheck) -> str:
    tasks = ", ".join(f"{t.get('type')} {t['id']}" for t in check.missing)
    return (
        f"Cannot find Debitura case {', '.join(check.missing_cases)} (404: deleted, or not visible to this API "
        f"key). Its handed-over task(s) ({tasks}) were not solved: the case is gone. Check the case in the "
        "Debitura app; nothing is left to hand over for it."
    )


def _out_of_date_message(check: HandoffCheck) -> str:
    open_now = ", ".join(f"{t.get('type')} {t['id']}" for t in check.still_open)
    return (
        "This task instance asked before (an earlier try, or before it was cleared), and Airflow re-opens that "
        "request with its first text, which no longer matches Debitura: it would show tasks as open that are "
        f"solved, or miss what changed. Not asked with it. Open in Debitura now: {open_now}. They go to a new "
        "request from a new task instance (the DAG's next run)."
    )


def _unverified_message(event: dict[str, Any], error: str) -> str:
    who = (event.get("responded_by_user") or {}).get("name") or "the timeout default"
    note = (event.get("params_input") or {}).get(DebituraHumanHandoffOperator.NOTE)
    answer = f"{who}'s answer {event['chosen_options'][0]!r}" + (f" (note: {note!r})" if note else "")
    return (
        f"{answer} is kept (on the request in Required Actions and here), but Debitura could not be read to confirm "
        f"it before the handoff's deadline: {error}. When Debitura answers again, clear this task: it checks "
        "Debitura first and finishes without asking anyone if the task is solved."
    )


class DebituraHumanHandoffOperator(HITLOperator):
    """Put Debitura tasks that need a person in Airflow's Required Actions, and wait until they are resolved.

    One request per operator: map it over tasks (``.expand(debitura_tasks=list_op.output)``, one request per
    task) or over groups of tasks (one request per case, see :func:`group_tasks_by_case`). The request
    shows each task's title, type, case, deadline, description and a link to its ``solutionUrl``, and
    offers **Done** and **Can't do** plus a free-text *note*.

    - Before asking, Debitura is checked: tasks already solved are named as solved, not asked; if none is
      open, nothing is asked (outcome ``already_cleared``).
    - **Done**: Debitura is checked again. Solved: outcome ``done``. Still open: the log says which task and
      where to resolve it; then (``on_still_open="ask_again"``) the request opens again if every task it lists
      is still open, so its text is still true (Airflow never rewrites a request: it keeps the text it first
      wrote, on every later try too). If only some are solved, re-opening would show solved tasks as open, so
      it does not: outcome ``partly_done`` with the rest in ``still_open``, for a new request (the DAG's next
      run, or a handoff mapped over them). ``"fail"`` fails instead
      (:class:`~airflow_provider_debitura.exceptions.DebituraHandoffStillOpenError`); a retry asks again only
      while the request's text still holds (else
      :class:`~airflow_provider_debitura.exceptions.DebituraHandoffOutOfDateError`).
    - **Can't do**: outcome ``cant_do`` (the DAG goes on; ``fail_on_cant_do=True`` fails the task instead).
    - Solved in Debitura while waiting: the request is answered on Airflow's side ("Done", with a note that
      Debitura solved it), so it no longer waits in Required Actions, and the DAG goes on (outcome
      ``cleared_in_debitura``).
    - ``response_timeout`` passes: ``defaults`` are taken when given (as in Airflow's HITL operators),
      otherwise the task fails with Airflow's ``HITLTimeoutError``.

    Returns ``{"outcome", "tasks", "still_open", "chosen_option", "note", "responded_by", "responded_at",
    "timed_out", "rounds", "checks"}`` (JSON).

    :param debitura_tasks: One Debitura task dict (as ``DebituraListTasksOperator`` returns them; at least
        ``id``) or a list of them. Templated; the usual value is a mapped XCom.
    :param debitura_conn_id: Airflow connection to Debitura.
    :param subject: Headline in Required Actions; default built from the task(s). Templated.
    :param body: Markdown shown above the task details. Templated.
    :param on_still_open: ``"ask_again"`` (default) or ``"fail"``: what a "Done" answer does while Debitura
        still shows a task open.
    :param fail_on_cant_do: Fail the task on "Can't do" instead of returning the outcome.
    :param poll_interval: Seconds between Debitura checks while waiting (each check's cost:
        docs/human-in-the-loop.md).
    :param response_poll_interval: Seconds between reads of the answer inside the trigger.
    :param defaults: Option taken at ``response_timeout`` ("Done" or "Can't do"); None fails at the timeout.
    :param notifiers: Airflow notifiers called each time the request is (re-)opened.
    :param assigned_users: Who may answer (``{"id": ..., "name": ...}`` or a list).
    :param response_timeout: How long a person has for each round (``timedelta``).
    """

    DONE = "Done"
    CANT_DO = "Can't do"
    NOTE = "note"
    FIXED_ARGS = ("options", "multiple", "params")

    template_fields: Sequence[str] = ("subject", "body", "debitura_tasks", "debitura_conn_id")
    operator_extra_links = (DebituraResolveLink(),)
    ui_color = "#fdf0d5"

    def __init__(
        self,
        *,
        debitura_tasks: Any,
        debitura_conn_id: str = DebituraHook.default_conn_name,
        subject: str | None = None,
        body: str | None = None,
        on_still_open: str = "ask_again",
        fail_on_cant_do: bool = False,
        poll_interval: float = 60.0,
        response_poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        require_hitl(type(self).__name__)
        refuse_fixed_args(type(self).__name__, self.FIXED_ARGS, kwargs)
        if on_still_open not in STILL_OPEN_MODES:
            raise DebituraConfigError(f"on_still_open={on_still_open!r} must be one of {list(STILL_OPEN_MODES)}.")
        from airflow.sdk import Param

        note = Param(
            None,
            type=["null", "string"],
            title="Note",
            description="Optional: what you did, or why it cannot be done.",
        )
        super().__init__(
            subject=subject or "",
            body=body,
            options=[self.DONE, self.CANT_DO],
            multiple=False,
            params={self.NOTE: note},
            **kwargs,
        )
        self.debitura_tasks = debitura_tasks
        self.debitura_conn_id = debitura_conn_id
        self.on_still_open = on_still_open
        self.fail_on_cant_do = bool(fail_on_cant_do)
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.response_poll_interval = positive_seconds("response_poll_interval", response_poll_interval)
        self._intro: str | None = None

    # -- asking --

    def execute(self, context: Context) -> Any:
        """Check Debitura, then ask about what is still open and defer (or return ``already_cleared``).

        :param context: the Airflow task context.
        """
        tasks = handoff_tasks("debitura_tasks", self.debitura_tasks)
        check = self._check(tasks)
        if check.missing:
            raise DebituraHandoffCaseGoneError(_case_gone_message(check))
        if check.cleared:
            self.log.info("Nothing to hand over: Debitura already shows %d task(s) solved.", len(check.gone))
            return self._report("already_cleared", tasks, check, rounds=0, checks=1)
        open_tasks = list(check.still_open)
        push_solution_url(context, next((t["solutionUrl"] for t in open_tasks if t.get("solutionUrl")), None))
        self._ask(context, check, rounds=1, checks=1)

    def _check(self, tasks: list[dict[str, Any]]) -> HandoffCheck:
        with DebituraHook(debitura_conn_id=connection_id(self.debitura_conn_id)) as hook:
            check = hook.exchange(HandoffReads(tasks))
        self.log.info("Debitura check: %s", check.describe())
        return check

    def _ask(self, context: Context, check: HandoffCheck, *, rounds: int, checks: int) -> None:
        """Open (or re-open) the request about the tasks ``check`` shows open, notify, and wait in the triggerer.

        The text is built from the first round's check only: Airflow keeps a request's text as first written, and
        a round is asked again only while every task of that text is still open, so it stays true. A first round
        that finds an earlier try's different text kept (a retry, a cleared task) does not ask with it.
        """
        tasks = list(check.still_open)
        self.subject = (self.subject or "").strip() or default_subject(tasks)
        self.body = handoff_body(tasks, intro=self.body, done=self.DONE, cant_do=self.CANT_DO, solved=check.gone)
        ti_id = context["task_instance"].id
        kept = hitl_compat.upsert_request(
            ti_id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        if rounds == 1 and kept is not None and kept != (self.subject, self.body):
            raise DebituraHandoffOutOfDateError(_out_of_date_message(check))
        timeout_at = time.time() + self.response_timeout.total_seconds() if self.response_timeout else None
        hitl_compat.summary(self)["debitura_round"] = rounds
        self.log.info("Waiting for a person (round %d), or for Debitura to show the task(s) solved.", rounds)
        for notifier in self.notifiers:
            notifier(context)
        self.defer(
            trigger=self._trigger(str(ti_id), tasks, rounds=rounds, checks=checks, timeout_at=timeout_at),
            method_name="execute_complete",
            kwargs={"tasks": tasks, "rounds": rounds, "checks": checks, "timeout_at": timeout_at},
        )

    def _trigger(
        self,
        ti_id: str,
        tasks: list[dict[str, Any]],
        *,
        rounds: int,
        checks: int,
        timeout_at: float | None,
        answer: dict[str, Any] | None = None,
    ) -> DebituraHandoffTrigger:
        verify = None
        if answer is not None:  # what the trigger echoes back: the answer, as JSON
            keys = ("chosen_options", "params_input", "responded_at", "responded_by_user", "timedout")
            verify = {key: answer.get(key) for key in keys}
            when = verify["responded_at"]
            verify["responded_at"] = when.isoformat() if isinstance(when, datetime) else when
        return DebituraHandoffTrigger(
            ti_id=ti_id,
            tasks=tasks,
            debitura_conn_id=connection_id(self.debitura_conn_id),
            poll_interval=self.poll_interval,
            response_poll_interval=self.response_poll_interval,
            timeout_at=timeout_at,
            defaults=self.defaults,
            done_option=self.DONE,
            note_param=self.NOTE,
            checks=checks,
            rounds=rounds,
            verify_answer=verify,
        )

    # -- the answer --

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        tasks: list[dict[str, Any]] | None = None,
        rounds: int = 1,
        checks: int = 0,
        timeout_at: float | None = None,
    ) -> Any:
        """Act on the answer (or on Debitura clearing the tasks): see the class docstring.

        :param context: the Airflow task context.
        :param event: the trigger's event, or Airflow's resume payload of a person's answer.
        :param tasks: the tasks the request asked about.
        :param rounds: how many times the request has been asked.
        :param checks: Debitura checks made so far.
        :param timeout_at: when this round's response time ends (epoch seconds), if it has an end.
        """
        # The trigger's event carries the state too: dag.test() resumes with the event alone.
        tasks = event.get("tasks") or tasks or handoff_tasks("debitura_tasks", self.debitura_tasks)
        rounds = int(event.get("rounds") or rounds)
        checks = int(event.get("checks") or checks)
        timeout_at = event.get("timeout_at", timeout_at)
        push_solution_url(context, next((t["solutionUrl"] for t in tasks if t.get("solutionUrl")), None))
        if event.get(CASE_GONE_KEY):
            raise DebituraHandoffCaseGoneError(_case_gone_message(HandoffCheck.from_dict(event["check"])))
        if event.get(CLEARED_KEY):
            check = HandoffCheck((), tuple(event.get("gone") or tasks), tuple(event.get("notes") or ()))
            self.log.info("Solved in Debitura before anyone answered; the request was closed. %s", check.describe())
            return self._report("cleared_in_debitura", tasks, check, event=event, rounds=rounds, checks=checks)
        super().execute_complete(context=context, event=event)  # validates; raises on a timeout without defaults
        chosen = event["chosen_options"][0]
        who = (event.get("responded_by_user") or {}).get("name") or "the timeout default"
        if chosen == self.CANT_DO:
            self._log_cant_do(who, event)
            check = HandoffCheck(tuple(tasks), ())
            return self._report("cant_do", tasks, check, event=event, rounds=rounds, checks=checks)
        check, checks = self._check_answer(context, tasks, event, rounds=rounds, checks=checks, timeout_at=timeout_at)
        if check.missing:
            raise DebituraHandoffCaseGoneError(f"{who} answered {chosen!r}, but " + _case_gone_message(check))
        if check.cleared:
            self.log.info("%s answered %s and Debitura confirms it: every task is solved.", who, chosen)
            return self._report("done", tasks, check, event=event, rounds=rounds, checks=checks)
        message = f"{who} answered {chosen!r}, but Debitura still shows {check.describe()}"
        return self._still_open(context, tasks, check, event, message, rounds=rounds, checks=checks)

    def _still_open(
        self,
        context: Context,
        tasks: list[dict[str, Any]],
        check: HandoffCheck,
        event: dict[str, Any],
        message: str,
        *,
        rounds: int,
        checks: int,
    ) -> Any:
        """A "Done" that Debitura contradicts. The request is asked again only while its whole text is true:
        Airflow keeps a request's text as first written (on re-opening it and on every later try)."""
        if self.on_still_open == "fail" or event.get("timedout"):  # a timeout's default is nobody's word
            raise DebituraHandoffStillOpenError(message + ". Resolve it in Debitura (link above), then re-run.")
        if check.gone:  # re-opening would show solved tasks as open
            self.log.warning(
                "%s. Not asking again: this request lists %d solved task(s), and Airflow cannot re-word it. Reported "
                "as partly_done; the DAG's next run (or a handoff mapped over still_open) asks about the rest in a "
                "new request.",
                message,
                len(check.gone),
            )
            return self._report("partly_done", tasks, check, event=event, rounds=rounds, checks=checks)
        self.log.warning("%s. Asking again: every task of the request is still open, so its text still holds.", message)
        self._ask(context, check, rounds=rounds + 1, checks=checks)
        return None  # pragma: no cover (defer raises)

    def _check_answer(
        self,
        context: Context,
        tasks: list[dict[str, Any]],
        event: dict[str, Any],
        *,
        rounds: int,
        checks: int,
        timeout_at: float | None,
    ) -> tuple[HandoffCheck, int]:
        """Debitura's word on a "Done" answer, and the checks made so far.

        A transient error (after the hook's own retries) does not use the answer up: the task defers to the
        trigger, which checks again until this round's response deadline (at least ``VERIFY_GRACE_CHECKS``
        poll intervals from now), then fails saying the answer was kept (:class:`DebituraHandoffUnverifiedError`).
        """
        if event.get(UNVERIFIED_KEY):
            raise DebituraHandoffUnverifiedError(_unverified_message(event, str(event[UNVERIFIED_KEY])))
        if event.get(VERIFIED_KEY):
            return HandoffCheck.from_dict(event[VERIFIED_KEY]), checks  # the trigger counted its checks
        try:
            return self._check(tasks), checks + 1
        except DebituraError as exc:
            if not exc.transient:
                raise DebituraHandoffUnverifiedError(
                    _unverified_message(event, f"{type(exc).__name__}: {exc}")
                ) from exc
            self.log.warning("Could not check Debitura after the answer (%s). The answer is kept; checking again.", exc)
        grace = time.time() + VERIFY_GRACE_CHECKS * self.poll_interval
        deadline = max(grace, float(timeout_at)) if timeout_at is not None else None
        self.defer(
            trigger=self._trigger(
                str(context["task_instance"].id),
                tasks,
                rounds=rounds,
                checks=checks + 1,
                timeout_at=deadline,
                answer=event,
            ),
            method_name="execute_complete",
            kwargs={"tasks": tasks, "rounds": rounds, "checks": checks + 1, "timeout_at": deadline},
        )
        raise AssertionError("defer() raises")  # pragma: no cover

    def _log_cant_do(self, who: str, event: dict[str, Any]) -> None:
        note = (event.get("params_input") or {}).get(self.NOTE)
        message = f"{who} answered {self.CANT_DO!r}" + (f": {note}" if note else " (no note)")
        if self.fail_on_cant_do:
            raise AirflowFailException(message)
        self.log.warning("%s. The DAG goes on; the task(s) stay open in Debitura.", message)

    def _report(
        self,
        outcome: str,
        tasks: list[dict[str, Any]],
        check: HandoffCheck,
        *,
        rounds: int,
        checks: int,
        event: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event = event or {}
        responded_at = event.get("responded_at")
        hitl_compat.summary(self)["debitura_outcome"] = outcome
        return {
            "outcome": outcome,
            "tasks": tasks,
            "still_open": [t["id"] for t in check.still_open],
            "chosen_option": (event.get("chosen_options") or [None])[0],
            "note": (event.get("params_input") or {}).get(self.NOTE),
            "responded_by": event.get("responded_by_user"),
            "responded_at": responded_at.isoformat() if isinstance(responded_at, datetime) else responded_at,
            "timed_out": bool(event.get("timedout")) and outcome != "cleared_in_debitura",
            "rounds": rounds,
            "checks": checks,
        }


def group_tasks_by_case(tasks: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group task dicts for one request per case (``.expand(debitura_tasks=...)`` over the groups).

    Tasks without a case (account-level, lead or unknown tasks) get one request each.

    :param tasks: task dicts, e.g. ``DebituraListTasksOperator``'s output.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        key = f"case:{task['caseId']}" if task.get("caseId") else f"task:{task.get('id')}"
        groups.setdefault(key, []).append(task)
    return list(groups.values())
