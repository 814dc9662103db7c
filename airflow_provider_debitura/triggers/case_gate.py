"""The deferred half of the case gate: waits in the triggerer until the case has no blocking tasks."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_debitura import gate
from airflow_provider_debitura.gate import AccountSnapshot, GateProgress, GateSpec, GateState, GateVerdict
from airflow_provider_debitura.gate.progress import check_backoff
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.shared_poll import Step, subscribe
from airflow_provider_debitura.triggers.sources import DirectGateSource, SnapshotSource
from airflow_provider_debitura.validation import case_selector


class DebituraCaseUnblockedTrigger(BaseTrigger):
    """Polls until the case is unblocked, the deadline passes, or polling cannot succeed.

    Yields exactly one event: ``{"status": "success", **record}`` (the sensor's XCom record),
    ``{"status": "timeout", "message"}`` or ``{"status": "error", "message"}``; each also carries
    ``solution_url`` (the last blocker's, for the "Resolve in Debitura" link).

    With ``coalesce=True`` (the default) it joins the shared poll of its connection
    (:mod:`.shared_poll`), which serves every gate there with the fewest requests; with
    ``coalesce=False`` every check is the gate's own (1 request for the case, 1 for the account-level
    tasks when they can block it). See ``docs/gates.md``.

    :param case_id: the case GUID; None when the sensor could not look the case up yet (then one of
        ``creditor_reference`` / ``case_reference`` names it, and the trigger looks it up first).
    :param blocking_task_types: only these types block (None: every type).
    :param include_account_tasks: whether open account-level tasks block the case.
    :param debitura_conn_id: the Airflow connection.
    :param poll_interval: seconds between checks (the first check waits one interval when ``checks`` > 0).
    :param end_time: wall-clock deadline (epoch seconds): survives triggerer restarts, unlike a
        monotonic clock. None waits forever (Airflow's deferral timeout may still apply).
    :param checks: checks already made before this trigger started (the sensor's first poke).
    :param first_blockers: compact blockers seen on the first check, carried into the record.
    :param coalesce: share the connection's poll with the other gates (default) or check alone.
    :param case_label: the case's reference for log lines (e.g. the creditor reference).
    :param creditor_reference: names the case when ``case_id`` is None.
    :param case_reference: names the case when ``case_id`` is None.
    :param exponential_backoff: Airflow's doubling of the interval after each check (instead of ``backoff``).
    :param max_wait: the longest interval when backing off, in seconds (None: 900, ``gate.DEFAULT_MAX_WAIT``).
    :param solution_url: the last blocker's solutionUrl seen before deferring.
    :param backoff: a gate blocked for long checks less often: ``poll_interval`` for its first 10 intervals, then
        a tenth of the time it has been blocked, at most ``max_wait`` (``gate.backoff_interval``); a change of
        its blockers starts it again from ``poll_interval``. See docs/gate-backoff.md.
    :param blocked_since: wall-clock time (epoch seconds) since which the gate has been in its current state
        (the sensor's checks before it deferred); None: from the trigger's first check.
    """

    def __init__(
        self,
        case_id: str | None,
        *,
        blocking_task_types: Sequence[str] | None = None,
        include_account_tasks: bool = True,
        debitura_conn_id: str = "debitura_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
        checks: int = 0,
        first_blockers: list[dict[str, Any]] | None = None,
        coalesce: bool = True,
        case_label: str | None = None,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        solution_url: str | None = None,
        backoff: bool = True,
        blocked_since: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.case_id = case_id
        self.blocking_task_types = list(blocking_task_types) if blocking_task_types is not None else None
        self.include_account_tasks = bool(include_account_tasks)
        self.debitura_conn_id = debitura_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.checks = int(checks)
        self.first_blockers = None if first_blockers is None else [dict(t) for t in first_blockers]
        self.coalesce = bool(coalesce)
        self.case_label = case_label
        self.creditor_reference = creditor_reference
        self.case_reference = case_reference
        self.exponential_backoff = bool(exponential_backoff)
        self.max_wait = None if max_wait is None else float(max_wait)
        self.solution_url = solution_url
        self.backoff = bool(backoff)
        self.blocked_since = None if blocked_since is None else float(blocked_since)
        self._clock: Callable[[], float] = time.time
        """Wall-clock time for the backoff (tests inject a simulated clock)."""
        if self.backoff or self.exponential_backoff:
            check_backoff(self.poll_interval, self.max_wait, "poll_interval")
        if case_id is None:
            case_selector(None, creditor_reference, case_reference)  # exactly one reference, or a config error
        gate.check_gate_config(self.blocking_task_types, self.include_account_tasks)
        self.progress = GateProgress(
            (case_id or "").lower(), case_label or creditor_reference or case_reference, self.checks,
            self.first_blockers, solution_url=solution_url, since=self.blocked_since,
        )  # fmt: skip

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "case_id": self.case_id,
                "blocking_task_types": self.blocking_task_types,
                "include_account_tasks": self.include_account_tasks,
                "debitura_conn_id": self.debitura_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "checks": self.checks,
                "first_blockers": self.first_blockers,
                "coalesce": self.coalesce,
                "case_label": self.case_label,
                "creditor_reference": self.creditor_reference,
                "case_reference": self.case_reference,
                "exponential_backoff": self.exponential_backoff,
                "max_wait": self.max_wait,
                "solution_url": self.solution_url,
                "backoff": self.backoff,
                "blocked_since": self.blocked_since,
            },
        )

    # -- helpers --

    def _remaining(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _interval(self) -> float:
        """Seconds until the next check (the same schedule as the sensor's in poke and reschedule mode)."""
        return gate.next_interval(
            self.poll_interval,
            self.progress.checks,
            exponential_backoff=self.exponential_backoff,
            max_wait=self.max_wait,
            seed=self.progress.case_id,
            backoff=self.backoff,
            blocked_for=self.progress.blocked_for(self._clock()),
        )

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, **payload, "solution_url": self.progress.solution_url})

    def _timeout_event(self) -> TriggerEvent:
        message = (
            f"Case {self.progress.name} was not seen unblocked before the sensor timed out "
            f"({self.progress.checks} check(s))."
        )
        return self._event("timeout", message=message)

    # -- the loop --

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(exc) if gate.is_fatal(exc) else f"{type(exc).__name__}: {exc}"
            event = self._event("error", message=f"Case gate for {self.progress.name} failed: {message}")
        yield event

    async def _wait(self) -> TriggerEvent:
        if not self.progress.case_id:
            failure = await self._look_up()
            if failure is not None:
                return failure
        spec = GateSpec.of(self.progress.case_id, self.blocking_task_types, self.include_account_tasks)
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            return self._timeout_event()
        step: Step[TriggerEvent] = functools.partial(self._step, spec)
        if self.progress.checks == 0:
            # No check was made in the worker (a trigger created on its own): the first is the gate's own, so a
            # case that does not exist fails at once (a shared read cannot tell "no tasks" from "no case").
            async with DirectGateSource(self.debitura_conn_id, spec) as own:
                snapshot = await own.next_snapshot(None, self.end_time)
            if snapshot is None:
                return self._timeout_event()
            outcome = step(snapshot)  # a direct read
            if isinstance(outcome, TriggerEvent):
                return outcome
        return await self._follow(spec, step)

    async def _follow(self, spec: GateSpec, step: Step[TriggerEvent]) -> TriggerEvent:
        """Follow the source's rounds until the gate has an event."""
        source: SnapshotSource = (
            subscribe(self.debitura_conn_id, self.poll_interval, gate=spec)
            if self.coalesce
            else DirectGateSource(self.debitura_conn_id, spec)
        )
        not_before = asyncio.get_running_loop().time() + self._interval()
        async with source:
            outcome = await source.follow(step, not_before, self.end_time)
        return self._timeout_event() if outcome is None else outcome

    def _step(self, spec: GateSpec, snapshot: AccountSnapshot) -> TriggerEvent | float:
        """One check: count and log it; the final event, or the loop time of the next check. The gate opens only
        on direct reads of its case and of the account-level tasks (the shared poll makes them, within its
        budget, in the round a full read would open the gate)."""
        verdict = snapshot.verdict_for(spec)
        if verdict.is_unblocked and not snapshot.direct_for(spec):
            return self._pending(snapshot)
        return self._record(verdict, snapshot.started, snapshot.taken_at)

    def _pending(self, snapshot: AccountSnapshot) -> float:
        """The round's full read saw no blocker, but the gate's own read did not fit the round's budget: count the
        check and ask for the next round, without backing off; the poll reads this case first there
        (``triggers/poll_confirm.py``). Many gates clearing together thus open within a few rounds, not after
        their backoff (issue 24)."""
        reason = "the shared read of the queue saw no blocker; the gate opens on its own read, due next round"
        _, message = self.progress.note(gate.unknown(reason), now=self._clock())
        self.log.info(message)  # nothing is wrong: a verdict that is on its way
        return snapshot.started + self.poll_interval

    def _record(self, verdict: GateVerdict, started: float, taken_at: float | None = None) -> TriggerEvent | float:
        """Count and log a check; the final event, or the loop time of the next check.

        :param verdict: the check's verdict.
        :param started: loop time when the check's round started.
        :param taken_at: wall-clock time when the round started (default: now).
        """
        level, message = self.progress.note(verdict, quiet_unchanged=True, now=self._clock())
        getattr(self.log, level)(message)
        if verdict.state is GateState.FAILED:
            return self._event("error", message=gate.failure_message(self.progress.name, verdict))
        if verdict.is_unblocked:
            return self._event("success", **self.progress.record())
        interval = self._interval()
        if self.coalesce and self.backoff and not self.exponential_backoff:
            # On the wall-clock grid of its level: gates blocked since different times meet in one round.
            max_wait = gate.DEFAULT_MAX_WAIT if self.max_wait is None else self.max_wait
            now = self._clock() if taken_at is None else taken_at  # the grid is read from the round's start
            interval = gate.aligned_wait(now, interval, self.poll_interval, max_wait)
        return started + interval

    async def _look_up(self) -> TriggerEvent | None:
        """Resolve the reference the sensor could not (its lookup failed transiently): check again every
        interval until it answers; a definite answer (404, a rejected key) ends the gate."""
        async with DebituraAsyncHook(self.debitura_conn_id) as hook:
            while True:
                try:
                    case = await hook.find_case(
                        creditor_reference=self.creditor_reference, case_reference=self.case_reference
                    )
                except Exception as exc:
                    if gate.is_fatal(exc):
                        return self._event("error", message=gate.lookup_failure_message(self.progress.name, exc))
                    if not gate.is_transient(exc):
                        raise
                    self.progress.checks += 1
                    self.log.warning("Case %s: could not look the case up (%s); trying again", self.progress.name, exc)
                    remaining = self._remaining()
                    if remaining is not None and remaining <= self.poll_interval:
                        await asyncio.sleep(max(0.0, remaining))
                        return self._timeout_event()
                    await asyncio.sleep(self._interval())
                    continue
                self.progress.case_id = case.id.lower()
                self.progress.label = self.progress.label or case.creditor_reference
                self.log.info("Debitura case %s is %s", self.progress.label, case.id)
                return None
