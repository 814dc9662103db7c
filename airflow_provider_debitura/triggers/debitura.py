"""The deferred half of the case gate: waits in the triggerer until the case has no blocking tasks."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_debitura import gate
from airflow_provider_debitura.gate import GateState, GateVerdict
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook


class DebituraCaseUnblockedTrigger(BaseTrigger):
    """Polls until the case is unblocked, the deadline passes, or polling cannot succeed.

    Yields exactly one event: ``{"status": "success", **record}`` (the sensor's XCom record),
    ``{"status": "timeout", "message"}`` or ``{"status": "error", "message"}``.

    With ``coalesce=True`` (the default) it joins the process-wide shared poll of its connection
    (:mod:`.shared_poll`) and, before firing, confirms an "unblocked" verdict with its own direct
    check: offset paging over a live queue can, rarely, miss a task, and a gate that opens wrongly
    is the one failure that matters. In intervals where the poller finds the gates' own checks
    cheaper than its account-wide read (few gates, a large queue), it skips the read and each gate
    makes its direct check instead. With ``coalesce=False`` every check is the direct 2-request one.

    :param end_time: wall-clock deadline (epoch seconds): survives triggerer restarts, unlike a
        monotonic clock. None waits forever (Airflow's deferral timeout may still apply).
    :param checks: checks already made before this trigger started (the sensor's first poke).
    :param first_blockers: compact blockers seen on the first check, carried into the record.
    """

    def __init__(
        self,
        case_id: str,
        *,
        blocking_task_types: Sequence[str] | None = None,
        include_account_tasks: bool = True,
        debitura_conn_id: str = "debitura_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
        checks: int = 0,
        first_blockers: list[dict[str, Any]] | None = None,
        coalesce: bool = True,
    ) -> None:
        super().__init__()
        self.case_id = case_id
        self.blocking_task_types = list(blocking_task_types) if blocking_task_types is not None else None
        self.include_account_tasks = bool(include_account_tasks)
        self.debitura_conn_id = debitura_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.checks = int(checks)
        self.first_blockers = None if first_blockers is None else [dict(t) for t in first_blockers]
        self.coalesce = bool(coalesce)

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
            },
        )

    # -- helpers --

    def _remaining(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _timeout_event(self) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "timeout",
                "message": f"Case {self.case_id} was not seen unblocked before the sensor timed out "
                f"({self.checks} check(s)).",
            }
        )

    async def _sleep(self, seconds: float) -> None:
        remaining = self._remaining()
        await asyncio.sleep(max(0.0, seconds if remaining is None else min(seconds, remaining)))

    async def direct_check(self, hook: DebituraAsyncHook) -> GateVerdict:
        """The ≤2-request check; transient errors become "unknown", fatal ones propagate.

        At most ``MAX_CONCURRENT_DIRECT_CHECKS`` run at once per triggerer loop: when one shared blocker
        clears (an AssignBankAccount), every gate confirms in the same round, and 1,000 gates firing
        2,000 requests in one burst would spend the key's whole per-minute budget at once."""
        case_call, account_call = gate.direct_check_calls(
            self.case_id, blocking_types=self.blocking_task_types, include_account_tasks=self.include_account_tasks
        )
        try:
            async with _direct_check_slots():
                case_tasks = await hook.run(case_call)
                account_page = await hook.run(account_call) if account_call is not None else None
        except Exception as exc:
            if gate.is_transient(exc):
                return gate.unknown(f"{type(exc).__name__}: {exc}")
            raise
        return gate.verdict_from_direct(
            case_tasks,
            account_page,
            blocking_types=self.blocking_task_types,
            include_account_tasks=self.include_account_tasks,
        )

    def _note(self, verdict: GateVerdict, previous: GateVerdict | None) -> None:
        self.checks += 1
        if self.first_blockers is None and verdict.state is not GateState.UNKNOWN:
            self.first_blockers = list(verdict.blocking)
        if verdict.state is GateState.UNKNOWN:
            self.log.warning("Case %s, check %d: %s", self.case_id, self.checks, verdict.summary())
        elif previous is None or _ids(verdict) != _ids(previous):
            self.log.info("Case %s, check %d: %s", self.case_id, self.checks, verdict.summary())
        else:
            # DEBUG, not INFO: a triggerer with 1,000 gates would otherwise spend its loop on log lines.
            self.log.debug("Case %s, check %d: still blocked (unchanged)", self.case_id, self.checks)

    def _success(self) -> TriggerEvent:
        return TriggerEvent(
            {"status": "success", **gate.success_record(self.case_id, self.checks, self.first_blockers)}
        )

    # -- the loop --

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            if self.coalesce:
                event = await self._run_coalesced()
            else:
                event = await self._run_direct()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(exc) if gate.is_fatal(exc) else f"{type(exc).__name__}: {exc}"
            event = TriggerEvent({"status": "error", "message": f"Case gate for {self.case_id} failed: {message}"})
        yield event

    async def _run_direct(self) -> TriggerEvent:
        from airflow_provider_debitura.triggers.shared_poll import warm_client

        hook = DebituraAsyncHook(self.debitura_conn_id)
        previous: GateVerdict | None = None
        try:
            await warm_client(hook)
            while True:
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    return self._timeout_event()
                verdict = await self.direct_check(hook)
                self._note(verdict, previous)
                if verdict.is_unblocked:
                    return self._success()
                previous = verdict
                await self._sleep(self.poll_interval)
        finally:
            await asyncio.shield(hook.aclose())

    async def _run_coalesced(self) -> TriggerEvent:
        from airflow_provider_debitura.triggers.shared_poll import subscribe

        previous: GateVerdict | None = None
        direct_cost = 2 if self.include_account_tasks else 1
        async with subscribe(self.debitura_conn_id, self.poll_interval, direct_cost=direct_cost) as poller:
            while True:
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    return self._timeout_event()
                snapshot = await _within(poller.next_snapshot(), remaining)
                if snapshot is None:
                    return self._timeout_event()
                if snapshot.direct or snapshot.fatal:
                    # The poller skipped its read this interval (our own check is the cheaper one), or the
                    # read failed for good (bad key, ...): our own check raises it, so the task fails now.
                    verdict = await self.direct_check(poller.hook)
                else:
                    verdict = snapshot.verdict(
                        self.case_id,
                        blocking_types=self.blocking_task_types,
                        include_account_tasks=self.include_account_tasks,
                    )
                    if verdict.is_unblocked:
                        # Confirm directly: the snapshot may have missed a task (see class docstring).
                        verdict = await self.direct_check(poller.hook)
                        if verdict.state is not GateState.UNBLOCKED:
                            self.log.info(
                                "Case %s: the shared poll saw no blockers, the direct check did", self.case_id
                            )
                self._note(verdict, previous)
                if verdict.is_unblocked:
                    return self._success()
                previous = verdict


async def _within(awaitable: Any, seconds: float | None) -> Any:
    """The awaitable's result, or None after ``seconds``. Not ``asyncio.wait_for``: before Python 3.12 it
    can swallow a cancellation that lands as the inner result arrives, and a cancelled trigger (a deferral
    timeout, a killed task) would then poll on until its own deadline."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        return None
    return task.result()


MAX_CONCURRENT_DIRECT_CHECKS = 8
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _direct_check_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = asyncio.Semaphore(MAX_CONCURRENT_DIRECT_CHECKS)
    return slots


def _ids(verdict: GateVerdict) -> tuple[Any, ...]:
    return tuple(t.get("id") for t in verdict.blocking)
