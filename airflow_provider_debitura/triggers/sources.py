"""Where a trigger gets what it reads each round: on its own (direct) or from the connection's shared poll.

One seam for the case-gate trigger and the new-task watcher. A source is an async context manager with
two methods: ``next_snapshot(not_before, deadline)`` returns an
:class:`~airflow_provider_debitura.gate.AccountSnapshot` (or None once the deadline has passed), and
``follow(step, not_before, deadline)`` calls a synchronous ``step(snapshot)`` after every round until it
returns a result (what the case gate uses: a blocked gate then costs nothing per round). There are two:

- :class:`DirectGateSource` ``(conn_id, spec)``: one gate reads its own case and the account-level tasks
  (``coalesce=False``);
- the :class:`~airflow_provider_debitura.triggers.shared_poll.Subscription` that
  :func:`~airflow_provider_debitura.triggers.shared_poll.subscribe` returns: ``subscribe(conn_id, interval,
  gate=spec)`` for a gate on the connection's shared poll (``coalesce=True``, the default), ``subscribe(conn_id,
  interval, records=True)`` for a subscriber that needs every open task (the watcher; while it asks, the
  rounds read the whole queue and the due gates share that read).

``not_before`` is event-loop time (pace the next call with ``snapshot.started + interval``); ``deadline``
is wall-clock time. The snapshot's verdict for a gate is ``snapshot.verdict_for(spec)``; a whole-queue
subscriber reads ``snapshot.tasks`` (compact) and ``snapshot.records(ids)`` (full JSON).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import replace
from types import TracebackType
from typing import Protocol

from airflow_provider_debitura.gate import AccountSnapshot, DirectReads, GateSpec
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.poll_subscribers import R, Step
from airflow_provider_debitura.triggers.shared_poll import connection_slots, warm_client


class SnapshotSource(Protocol):
    """What the gate trigger and the watcher read from."""

    async def __aenter__(self) -> SnapshotSource: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def next_snapshot(
        self, not_before: float | None = None, deadline: float | None = None
    ) -> Awaitable[AccountSnapshot | None]: ...

    def follow(
        self, step: Step[R], not_before: float | None = None, deadline: float | None = None
    ) -> Awaitable[R | None]: ...


class DirectGateSource:
    """A gate that reads on its own: its case (1 request) and the account-level tasks (1 request when it
    waits on them), within the connection's limit on concurrent reads.

    :param conn_id: the Airflow connection id.
    :param spec: the gate.
    """

    def __init__(self, conn_id: str, spec: GateSpec) -> None:
        self.conn_id = conn_id
        self.spec = spec
        self.hook = DebituraAsyncHook(conn_id)

    async def __aenter__(self) -> DirectGateSource:
        await warm_client(self.hook)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.shield(self.hook.aclose())

    async def next_snapshot(
        self, not_before: float | None = None, deadline: float | None = None
    ) -> AccountSnapshot | None:
        """One check at ``not_before`` (or now); None if ``deadline`` comes first.

        :param not_before: event-loop time of the check; None: now.
        :param deadline: wall-clock deadline; None: none.
        """
        loop = asyncio.get_running_loop()
        wait = 0.0 if not_before is None else not_before - loop.time()
        if deadline is not None and deadline - time.time() <= max(wait, 0.0):
            await asyncio.sleep(max(0.0, deadline - time.time()))
            return None
        if wait > 0:
            await asyncio.sleep(wait)
        started, taken_at = loop.time(), time.time()
        reads = DirectReads([self.spec.case_id], self.spec.account_types)
        reads = await self.hook.exchange(reads, slots=connection_slots(self.conn_id))
        return replace(reads.snapshot(taken_at), started=started)

    async def follow(self, step: Step[R], not_before: float | None = None, deadline: float | None = None) -> R | None:
        """Check at ``not_before`` and call ``step`` with each snapshot until it returns a result (not a float,
        which is the loop time of the next check); None once ``deadline`` has passed.

        :param step: the per-check function.
        :param not_before: event-loop time of the first check; None: now.
        :param deadline: wall-clock deadline; None: none.
        """
        while True:
            snapshot = await self.next_snapshot(not_before, deadline)
            if snapshot is None:
                return None
            outcome = step(snapshot)
            if not isinstance(outcome, float):
                return outcome
            not_before = outcome


__all__ = ["DirectGateSource", "SnapshotSource"]
