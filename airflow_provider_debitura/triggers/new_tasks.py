"""An event trigger that fires once per newly seen open Debitura task: the source of event-driven DAGs.

Use it in an ``AssetWatcher`` (Airflow 3): each event becomes an asset event whose ``extra`` is
``{"from_trigger": True, "payload": <the task's camelCase JSON>}``, and a DAG scheduled on the asset
runs for it. See ``docs/event-driven.md`` and ``example_dags/example_debitura_new_tasks_asset.py``.

Design points (the why; details in ``docs/event-driven.md``):

- **The end of the queue, not all of it.** The API lists the queue oldest first, so a new task is appended
  at the end. A round reads the last page or two and proves by ``totalResults`` that they hold everything
  new since the last listing it trusted (:mod:`.watcher.tail`): 1 or 2 requests in steady state, at any
  queue size. When the count says something moved that the end does not explain (tasks solved before the
  end, a burst, a total or an order that does not add up), the round reads the whole queue: with
  ``coalesce=True`` (default) through the connection's shared poll, whose read the case gates due then
  share (:mod:`.shared_poll`); otherwise on its own. Costs: ``docs/watcher-cost.md``.
- **What is new** is decided by :class:`~airflow_provider_debitura.triggers.watcher.tracker.SeenTracker`:
  seen ids plus a watermark on ``dateCreated``, persisted in Airflow's metadata (never on local disk), so a
  restarted or moved trigger does not replay the queue, and a task never fires twice while it stays
  open, at any queue size.
- **First start** (nothing persisted yet) records the open queue as the baseline and fires nothing
  (``replay_existing=True`` fires for the backlog once instead).
- **Never crashes.** Errors, inconsistent listings and store failures are logged and retried next
  interval; a round that could not be read consistently fires nothing.
- **At least once.** A fired task enters the stored state only 30 s after its event was yielded
  (:data:`~airflow_provider_debitura.triggers.watcher.tracker.PERSIST_GRACE`): Airflow stores events asynchronously
  and drops those of a trigger a redeploy replaced meanwhile, so a crash or a redeploy in that window
  fires the task again rather than losing it (the reply operator is idempotent).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import TriggerEvent

try:  # Airflow 3: a trigger an AssetWatcher may run
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2.11 (common-compat's own fallback, which its versions before 1.15 lack)
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.triggers.watcher.ids import TaskJson
from airflow_provider_debitura.triggers.watcher.records import SnapshotRecords
from airflow_provider_debitura.triggers.watcher.rounds import DirectRounds, QueueRounds, Round, SharedRounds
from airflow_provider_debitura.triggers.watcher.state import SeenState, WatchFilter
from airflow_provider_debitura.triggers.watcher.store import AirflowSeenTasksStore, SeenTasksStore
from airflow_provider_debitura.triggers.watcher.tracker import RoundOutcome, SeenTracker
from airflow_provider_debitura.validation import connection_id, positive_seconds, task_types, validate_guid

EVENT_BATCH = 100
"""Events handed over between two yields to the event loop."""

EXIT_SAVE_TIMEOUT = 5.0
"""Seconds a stopping watcher may spend saving its state (a triggerer shutting down must not wait long)."""


class DebituraNewTasksTrigger(BaseEventTrigger):
    """Fires one ``TriggerEvent(task_json)`` for every open task it sees for the first time.

    :param debitura_conn_id: Airflow connection of type ``debitura``.
    :param task_types: only these types (None: every type, including types Debitura adds later).
    :param case_id: only this case (GUID); account-level tasks have no case and never match.
    :param poll_interval: seconds between reads of the queue (the shared poll may read more often
        when a case gate on the same connection asks for a shorter interval).
    :param replay_existing: on first start (no stored state), and for what a filter change newly
        watches, fire for every task already open instead of recording them as the backlog.
    :param coalesce: join the triggerer-wide shared poll (default); False reads on its own.
    :param max_seen: deprecated and ignored: the state no longer has a cap (a task never fires twice
        while it stays open, however many are open).
    :param store: persistence seam, not serialized: tests pass an in-memory store; None
        uses Airflow's metadata (asset state store on 3.3+, else a Variable).
    """

    def __init__(
        self,
        debitura_conn_id: str = "debitura_default",
        task_types: Sequence[str] | str | None = None,
        case_id: str | None = None,
        poll_interval: float = 60.0,
        *,
        replay_existing: bool = False,
        coalesce: bool = True,
        max_seen: int | None = None,
        store: SeenTasksStore | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseEventTrigger via common.compat
        self.debitura_conn_id = connection_id(debitura_conn_id)
        self.task_types = _validated_types(task_types)
        self.case_id = None if case_id in (None, "") else validate_guid("case_id", str(case_id))
        self.poll_interval = float(positive_seconds("poll_interval", poll_interval) or 0)
        self.replay_existing = bool(replay_existing)
        self.coalesce = bool(coalesce)
        if max_seen is not None:
            warnings.warn(
                "DebituraNewTasksTrigger(max_seen=...) is ignored and will be removed: the watcher keeps every "
                "open task it has seen at any queue size, in a compact state. Remove the argument.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.watch = WatchFilter(
            self.debitura_conn_id, tuple(self.task_types) if self.task_types is not None else None, self.case_id
        )
        self.state_key = self.watch.key
        """This watcher's mark in the stored state, and its Variable's name on Airflow 3.0-3.2."""
        self.store: SeenTasksStore = store if store is not None else AirflowSeenTasksStore(self)
        self.tracker: SeenTracker | None = None
        """The watcher's memory, once its state has loaded."""
        self.rounds = 0
        self.events_fired = 0
        self.last_save: tuple[int, float] | None = None
        """Bytes and seconds of the last successful save (for logs, tests and the benchmark)."""
        self.source: QueueRounds | None = None
        """Where the rounds come from, once running (its counters: tests and the benchmark)."""
        self.last_round: Round | None = None
        self._accepted = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Only configuration, never run-time state.

        Airflow hashes these kwargs to recognise the same watcher across DAG parses, so they must not
        change while it runs.
        """
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "debitura_conn_id": self.debitura_conn_id,
                "task_types": self.task_types,
                "case_id": self.case_id,
                "poll_interval": self.poll_interval,
                "replay_existing": self.replay_existing,
                "coalesce": self.coalesce,
            },
        )

    def matches(self, task: TaskJson) -> bool:
        """Whether an open task passes this watcher's filter.

        :param task: the task's JSON (``status``, ``type`` and ``caseId`` are read).
        """
        return self.watch.matches(task)

    # -- the loop --

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield one event per newly seen open task."""
        self.log.info(
            "Watching Debitura for new open tasks (connection %r, types %s, case %s, every %g s; mark %r)",
            self.debitura_conn_id,
            ", ".join(self.task_types) if self.task_types is not None else "all",
            self.case_id or "any",
            self.poll_interval,
            self.state_key,
        )
        source: QueueRounds = SharedRounds(self) if self.coalesce else DirectRounds(self)
        self.source = source
        try:
            async with source:
                while True:
                    try:
                        listing = await source.next_round()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # a bug or a surprise must not kill the watcher
                        self.log.exception("Debitura watcher: reading the queue failed; trying again next interval")
                        listing = Round.failed(f"{type(exc).__name__}: {exc}")
                    self.last_round = listing
                    fired = await self._process(listing)
                    source.settle(listing, self._accepted)
                    for count, task in enumerate(fired, start=1):
                        yield TriggerEvent(task if isinstance(task, dict) else dict(task))
                        if count % EVENT_BATCH == 0:
                            await asyncio.sleep(0)  # a burst of 20,000 must not hold the loop in one piece
                    await self._persist()
                    await source.pause()
        finally:
            await self._save_on_exit()

    async def _save_on_exit(self) -> None:
        """A stopping watcher (a redeploy, a triggerer shutdown) saves how far it got, so that a filter change
        that follows knows when this filter last listed the queue."""
        if self.tracker is None:
            return
        self.tracker.dirty = True
        try:
            await asyncio.wait_for(self._persist(), timeout=EXIT_SAVE_TIMEOUT)
        except asyncio.TimeoutError:
            self.log.warning("Debitura watcher: saving its state on exit took over %g s; skipped", EXIT_SAVE_TIMEOUT)

    async def _process(self, listing: Round) -> list[TaskJson]:
        """Turn one round into the tasks to fire for (and a pending state change); none when unsure."""
        number = self.rounds + 1
        self._accepted = False
        try:
            return await self._events(listing, number)
        finally:
            self.rounds = number  # counted once the round is decided (tests wait on it)

    async def _events(self, listing: Round, number: int) -> list[TaskJson]:
        if not listing.ok:
            self.log.warning(
                "Debitura watcher, round %d: no consistent listing (%s); no events this round", number, listing.error
            )
            return []
        if self.tracker is None and not await self._load_state():
            return []
        tracker = self.tracker
        assert tracker is not None
        # In a worker thread: a first start or a burst on 20,000 open tasks takes ~0.1 s of CPU, which
        # must not stall the triggerer's event loop (and every gate on it) in one piece.
        outcome = await asyncio.to_thread(
            tracker.observe, listing.tasks, complete=listing.complete, now=time.time(), tail=listing.tail
        )
        self._accepted = tracker.start == "resumed"  # judged by a started watcher: its order may be the next basis
        for record in listing.rejected:
            if self.watch.may_match(record):
                what = f"a {record.what} {record.id or 'with no id'} the listing could not read ({record.reason})"
                tracker.report(f"{record.id}|{record.reason}", what, outcome)
        self._log_outcome(outcome, listing, number)
        self.events_fired += len(outcome.new)
        return outcome.new

    def _log_outcome(self, outcome: RoundOutcome, listing: Round, number: int) -> None:
        for text in outcome.unusable:
            self.log.warning("Debitura watcher: skipping a record it cannot use (%s); it never fires", text)
        if outcome.start is not None:
            self.log.info(
                "Debitura watcher %s: %d open matching task(s) recorded as already seen, %d fired; "
                "events start with the next new task.",
                outcome.start,
                outcome.backlog,
                len(outcome.new),
            )
        if outcome.new:
            self.log.info(
                "Debitura watcher, round %d: %d new task(s): %s",
                number,
                len(outcome.new),
                ", ".join(f"{t.get('type')} {t.get('id')}" for t in outcome.new[:20])
                + (f" and {len(outcome.new) - 20} more" if len(outcome.new) > 20 else ""),
            )
        else:
            self.log.debug("Debitura watcher, round %d: nothing new (%s listed)", number, _listed(listing))

    async def _load_state(self) -> bool:
        try:
            stored = await self.store.load(self.watch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without the stored state a restart would replay everything: fire nothing until it loads.
            self.log.warning(
                "Debitura watcher: could not read its state (%s: %s); no events until it can",
                type(exc).__name__,
                exc,
            )
            return False
        tracker = SeenTracker(
            self.watch,
            stored if stored is not None else SeenState(),
            poll_interval=self.poll_interval,
            replay_existing=self.replay_existing,
            now=time.time(),
        )
        self.tracker = tracker
        if tracker.start == "resumed":
            self.log.info(
                "Debitura watcher: resumed with %d seen task id(s) and a watermark at %s",
                len(tracker.state.ids),
                tracker.mark.cutoff,
            )
        else:
            self.log.info(
                "Debitura watcher: %s (%s)",
                tracker.start,
                "replaying the open queue" if self.replay_existing else "recording the open queue as backlog",
            )
        return True

    async def _persist(self) -> None:
        tracker = self.tracker
        now = time.time()
        if tracker is None or not tracker.save_due(now):
            return
        tracker.mark.saved = now
        state = tracker.snapshot(now)
        started = time.monotonic()
        try:
            # Shielded: a cancellation (triggerer shutdown) while saving should not leave the state
            # half-way if the write can still finish.
            size = await asyncio.shield(self.store.save(self.watch, state, now))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.warning(
                "Debitura watcher: could not save its state (%s: %s); will retry next round",
                type(exc).__name__,
                exc,
            )
            return
        tracker.dirty = False
        self.last_save = (size, time.monotonic() - started)
        self.log.info(
            "Debitura watcher: state saved (%d seen id(s), %d byte(s), %.0f ms)",
            len(state.ids),
            size,
            self.last_save[1] * 1000,
        )


def _listed(listing: Round) -> int | str:
    """How many tasks a round listed, for the log (a full read's records are counted only once iterated)."""
    tasks = listing.tasks
    if isinstance(tasks, SnapshotRecords):
        return tasks.counted if tasks.counted is not None else "?"
    return len(tasks)


def _validated_types(values: Sequence[str] | str | None) -> list[str] | None:
    types = task_types("task_types", values)
    if types is not None and not types:
        raise DebituraConfigError("task_types is empty; give at least one type, or None for every type.")
    return types
