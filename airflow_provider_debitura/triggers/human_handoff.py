"""The wait of a human handoff: for a person's answer in Required Actions *or* the tasks clearing in Debitura.

Airflow's own ``HITLOperator`` waits for the answer alone (3.3: ``awaiting_input``, no trigger; 3.1/3.2:
``HITLTrigger``). A handoff must also notice when the Debitura task is solved in the app, so it defers to
this trigger instead, on every version: the task is ``deferred``, which the Required Actions page counts as
waiting for an answer, exactly like ``awaiting_input``.

- A person answers (UI or REST): on 3.3 Airflow resumes the task directly from the answer; on every version
  this trigger also sees it (it reads the request every ``response_poll_interval`` seconds, through the same
  supervisor call ``HITLTrigger`` uses) and resumes it.
- The tasks clear in Debitura (checked every ``poll_interval`` seconds): the trigger records the answer
  "Done" on the request itself, with a note saying Debitura solved it, through Airflow's supported call
  (``update_hitl_detail_response``, as ``HITLTrigger`` records a timeout default), so the request is
  answered and no longer pending, and resumes the task. If a person answered first, Airflow refuses the
  write (409) and the person's answer wins.
- ``timeout_at`` passes: one last Debitura check, then the default options (recorded like ``HITLTrigger``
  does) or a timeout error.
- A case of the handed-over tasks is gone (404): an event saying so (``case_gone``); the operator fails. The
  tasks were not solved, so the request is not answered "Done".
- With ``verify_answer`` (the operator could not read Debitura right after a person's answer): no waiting for
  an answer; Debitura is checked again, with growing pauses up to ``poll_interval``, until a check succeeds
  (an event with the answer and ``verified``, the check) or ``timeout_at`` passes or the error is not transient
  (the answer and ``unverified``, the last error).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_debitura.exceptions import DebituraError
from airflow_provider_debitura.hitl import compat as hitl_compat
from airflow_provider_debitura.hitl.handoff import HandoffCheck, HandoffReads
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.shared_poll import connection_slots

CLEARED_KEY = "debitura_cleared"
"""Event key set when the trigger itself closed the request because Debitura shows the tasks solved."""

CLOSED_NOTE = "Closed by Airflow:"
"""How the note recorded with such an answer starts."""

CASE_GONE_KEY = "debitura_case_gone"
"""Event key set when a case of the handed-over tasks no longer exists (404); ``check`` holds the check."""

VERIFIED_KEY = "debitura_verified"
"""Event key (verify mode): the check that confirmed, or not, a person's answer (``HandoffCheck.to_dict()``)."""

UNVERIFIED_KEY = "debitura_unverified"
"""Event key (verify mode): why Debitura could not be read to check a person's answer in time."""

VERIFY_FIRST_PAUSE = 5.0
"""Seconds before the first re-check in verify mode; each pause doubles, up to ``poll_interval``."""


class DebituraHandoffTrigger(BaseTrigger):
    """Waits for an answer to a handoff request, or for its Debitura tasks to clear; yields one event.

    Events have the shape of Airflow's HITL events (``chosen_options``, ``params_input``, ``responded_at``,
    ``responded_by_user``, ``timedout``) or its failure event (``error``, ``error_type="timeout"``), plus
    ``checks`` (Debitura checks made), ``rounds`` and ``tasks`` (the operator's state: ``dag.test()`` resumes a
    task with the event alone, dropping the deferral's kwargs) and, when Debitura cleared the tasks,
    ``debitura_cleared: True`` with ``gone`` (the tasks) and ``notes``.

    :param ti_id: the waiting task instance's id (its HITL request's key).
    :param tasks: the handed-over tasks (handoff dicts, see :mod:`airflow_provider_debitura.hitl.handoff`).
    :param debitura_conn_id: Airflow connection to Debitura.
    :param poll_interval: seconds between Debitura checks.
    :param response_poll_interval: seconds between reads of the request's answer.
    :param timeout_at: epoch seconds when the person's time is up; None waits for ever.
    :param defaults: options recorded at the timeout (Airflow's HITL ``defaults``); None fails instead.
    :param done_option: the option recorded when Debitura cleared the tasks.
    :param note_param: the request's free-text field that receives the "solved in Debitura" note.
    :param checks: Debitura checks already made (carried over from the operator).
    :param rounds: the try that asked (Airflow's ``try_number``: each try opens one request).
    :param carry: the operator's own JSON state, echoed in every event (e.g. the reply drafts of an approval).
        With no ``tasks``, Debitura is not watched: the trigger waits for the answer or the timeout only.
    :param verify_answer: a person's answer (an event, ``responded_at`` as ISO text) that Debitura could not be
        read to check: the trigger checks Debitura until it can, or until ``timeout_at``, and echoes the answer.
    """

    def __init__(
        self,
        *,
        ti_id: str,
        tasks: Sequence[dict[str, Any]],
        debitura_conn_id: str = "debitura_default",
        poll_interval: float = 60.0,
        response_poll_interval: float = 5.0,
        timeout_at: float | None = None,
        defaults: Sequence[str] | None = None,
        done_option: str = "Done",
        note_param: str | None = "note",
        checks: int = 0,
        rounds: int = 1,
        carry: dict[str, Any] | None = None,
        verify_answer: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ti_id = str(ti_id)
        self.tasks = [dict(t) for t in tasks]
        self.debitura_conn_id = debitura_conn_id
        self.poll_interval = float(poll_interval)
        self.response_poll_interval = float(response_poll_interval)
        self.timeout_at = None if timeout_at is None else float(timeout_at)
        self.defaults = None if defaults is None else list(defaults)
        self.done_option = done_option
        self.note_param = note_param
        self.checks = int(checks)
        self.rounds = int(rounds)
        self.carry = None if carry is None else dict(carry)
        self.verify_answer = None if verify_answer is None else dict(verify_answer)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ti_id": self.ti_id,
                "tasks": self.tasks,
                "debitura_conn_id": self.debitura_conn_id,
                "poll_interval": self.poll_interval,
                "response_poll_interval": self.response_poll_interval,
                "timeout_at": self.timeout_at,
                "defaults": self.defaults,
                "done_option": self.done_option,
                "note_param": self.note_param,
                "checks": self.checks,
                "rounds": self.rounds,
                "carry": self.carry,
                "verify_answer": self.verify_answer,
            },
        )

    def _event(self, payload: dict[str, Any]) -> TriggerEvent:
        state = {
            "checks": self.checks,
            "rounds": self.rounds,
            "tasks": self.tasks,
            "carry": self.carry,
            "timeout_at": self.timeout_at,
        }
        return TriggerEvent({**payload, **state})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = DebituraAsyncHook(self.debitura_conn_id)
        try:
            event = await self._wait(hook)
        finally:
            await asyncio.shield(hook.aclose())
        yield event

    async def _wait(self, hook: DebituraAsyncHook) -> TriggerEvent:
        if self.verify_answer is not None:
            return await self._verify(hook, self.verify_answer)
        next_check = time.time() + self.poll_interval  # the operator checked just before it deferred
        while True:
            answer = await self._answer()
            if answer is not None:
                return answer
            now = time.time()
            timed_out = self.timeout_at is not None and now >= self.timeout_at
            if self.tasks and (timed_out or now >= next_check):
                check = await self._check(hook)
                next_check = time.time() + self.poll_interval
                if check is not None and check.missing:
                    return self._event({CASE_GONE_KEY: True, "check": check.to_dict()})
                if check is not None and check.cleared:
                    return await self._close(check)
            if timed_out:
                return await self._timeout()
            await asyncio.sleep(self._pause(next_check))

    def _pause(self, next_check: float) -> float:
        now = time.time()
        pause = min(self.response_poll_interval, next_check - now)
        if self.timeout_at is not None:
            pause = min(pause, self.timeout_at - now)
        return max(0.0, pause)

    # -- the person's side --

    async def _answer(self) -> TriggerEvent | None:
        response = await sync_to_async(hitl_compat.read_response)(UUID(self.ti_id))
        if not (response.response_received and response.chosen_options):
            return None
        user = response.responded_by_user
        params_input = dict(response.params_input or {})
        # Closed by an earlier run of this trigger (restarted before it could resume the task)?
        closed_here = user is None and str(params_input.get(self.note_param or "", "")).startswith(CLOSED_NOTE)
        event: dict[str, Any] = {
            "chosen_options": list(response.chosen_options),
            "params_input": params_input,
            "responded_at": response.responded_at,
            "responded_by_user": None if user is None else {"id": user.id, "name": user.name},
            "timedout": user is None and not closed_here,
        }
        if closed_here:
            event.update({CLEARED_KEY: True, "gone": self.tasks, "notes": []})
        return self._event(event)

    # -- Debitura's side --

    async def _read_check(self, hook: DebituraAsyncHook) -> HandoffCheck | DebituraError:
        """One Debitura check, counted: the check, or the error that kept Debitura from answering (a cancelled
        trigger's ``CancelledError`` passes through)."""
        self.checks += 1
        try:
            return await hook.exchange(HandoffReads(self.tasks), slots=connection_slots(self.debitura_conn_id))
        except DebituraError as exc:
            return exc

    async def _check(self, hook: DebituraAsyncHook) -> HandoffCheck | None:
        """One check; None when Debitura could not be read this time (the person can still answer)."""
        check = await self._read_check(hook)
        if isinstance(check, DebituraError):
            exc = check
            self.log.warning(
                "Could not check the handed-over Debitura task(s) (check %d): %s. Waiting for the person's answer; "
                "checking again in %.0f s.",
                self.checks,
                exc,
                self.poll_interval,
            )
            return None
        self.log.info("Debitura check %d: %s", self.checks, check.describe())
        return check

    async def _verify(self, hook: DebituraAsyncHook, answer: dict[str, Any]) -> TriggerEvent:
        """Check Debitura until it answers (or ``timeout_at``); echo the person's answer with the result."""
        event = {**answer, "responded_at": _as_datetime(answer.get("responded_at"))}
        pause = min(VERIFY_FIRST_PAUSE, self.poll_interval)
        while True:
            remaining = None if self.timeout_at is None else self.timeout_at - time.time()
            await asyncio.sleep(max(0.0, pause if remaining is None else min(pause, remaining)))
            check = await self._read_check(hook)
            if isinstance(check, DebituraError):
                exc = check
                out_of_time = self.timeout_at is not None and time.time() >= self.timeout_at
                if out_of_time or not exc.transient:
                    return self._event({**event, UNVERIFIED_KEY: f"{type(exc).__name__}: {exc}"})
                self.log.warning(
                    "Could not check Debitura after the answer (check %d): %s. The answer is kept; trying again "
                    "in %.0f s.",
                    self.checks,
                    exc,
                    pause,
                )
                pause = min(pause * 2, self.poll_interval)
                continue
            self.log.info("Debitura check %d (after the answer): %s", self.checks, check.describe())
            return self._event({**event, VERIFIED_KEY: check.to_dict()})

    async def _close(self, check: HandoffCheck) -> TriggerEvent:
        note = (
            f"{CLOSED_NOTE} Debitura shows {'these tasks' if len(check.gone) > 1 else 'this task'} solved "
            f"(check {self.checks}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC). No answer needed."
        )
        params_input = {self.note_param: note} if self.note_param else {}
        try:
            recorded = await sync_to_async(hitl_compat.record_response)(
                UUID(self.ti_id), chosen_options=[self.done_option], params_input=params_input
            )
            responded_at = recorded.responded_at
        except Exception as exc:  # 409: a person answered first; their answer wins
            answer = await self._answer()
            if answer is not None:
                self.log.info("A person answered while Debitura cleared the task(s); the person's answer wins.")
                return answer
            self.log.warning("Could not record the 'solved in Debitura' answer on the request: %s", exc)
            responded_at = datetime.now(timezone.utc)
        self.log.info("The handed-over task(s) cleared in Debitura; request closed: %s", note)
        return self._event(
            {
                "chosen_options": [self.done_option],
                "params_input": params_input,
                "responded_at": responded_at,
                "responded_by_user": None,
                "timedout": False,
                CLEARED_KEY: True,
                "gone": list(check.gone),
                "notes": list(check.notes),
            }
        )

    async def _timeout(self) -> TriggerEvent:
        answer = await self._answer()
        if answer is not None:
            return answer
        if not self.defaults:
            return self._event(
                {
                    "error": "The response timeout passed without an answer, and Debitura still shows the task(s) "
                    "open.",
                    "error_type": "timeout",
                }
            )
        try:
            recorded = await sync_to_async(hitl_compat.record_response)(
                UUID(self.ti_id), chosen_options=self.defaults, params_input={}
            )
        except Exception:  # a person answered at the last moment
            answer = await self._answer()
            if answer is not None:
                return answer
            raise
        self.log.info("No answer before the response timeout: taking the default %s", self.defaults)
        return self._event(
            {
                "chosen_options": list(self.defaults),
                "params_input": {},
                "responded_at": recorded.responded_at,
                "responded_by_user": None,
                "timedout": True,
            }
        )


def _as_datetime(value: Any) -> Any:
    """An ISO timestamp back as a ``datetime`` (Airflow's HITL events carry one); anything else as it is."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value
