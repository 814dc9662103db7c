"""An event trigger that fires once per newly seen open Debitura task: the source of event-driven DAGs.

Use it in an ``AssetWatcher`` (Airflow 3): each event becomes an asset event whose ``extra`` is
``{"from_trigger": True, "payload": <the task's camelCase JSON>}``, and a DAG scheduled on the asset
runs for it. See ``docs/event-driven.md`` and ``example_dags/example_debitura_new_tasks_asset.py``.

Design points (the why):

- **Shared poll.** With ``coalesce=True`` (default) it subscribes to the process-wide account poll
  that the case gates use (:mod:`.shared_poll`): one full ``GET /tasks?status=Open`` read per interval
  per connection per triggerer, however many gates and watchers run there.
- **Dedup across restarts.** What it has fired for is persisted in Airflow's metadata
  (:mod:`airflow_provider_debitura.seen_tasks`), never on local disk, so a restarted or moved
  trigger does not replay the queue.
- **First start** (nothing persisted yet) records the open queue as the baseline and fires nothing:
  a watcher reacts to tasks that appear after it started, it does not replay the backlog
  (``replay_existing=True`` fires for the backlog once instead).
- **Never crashes.** Errors, inconsistent listings and store failures are logged and retried next
  interval; a round that could not be read consistently fires nothing.
- **At least once.** Events are yielded before the new state is saved: a crash in between re-fires
  those tasks after the restart rather than losing them (the reply operator is idempotent).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.gate import CASE_ID, ID, TYPE
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.models import Task, is_open_status
from airflow_provider_debitura.seen_tasks import (
    DEFAULT_MAX_SEEN,
    AirflowSeenTasksStore,
    SeenState,
    SeenTasksStore,
    watcher_key,
)
from airflow_provider_debitura.triggers.shared_poll import warm_client
from airflow_provider_debitura.triggers.sources import SharedQueueSource
from airflow_provider_debitura.validation import connection_id, positive_seconds, task_types, validate_guid

PRUNE_AFTER_ROUNDS = 3
"""A seen id is forgotten only after this many consecutive consistent listings without it: one
listing that misses a task (it should not, but offset paging over a live queue is hard) must not
make the task fire a second time."""


@dataclass
class Round:
    """One poll's answer: every open task the round could see (full JSON), or why it saw nothing."""

    ok: bool
    tasks: list[dict[str, Any]]
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> Round:
        return cls(False, [], error)


class DebituraNewTasksTrigger(BaseEventTrigger):
    """Fires one ``TriggerEvent(task_json)`` for every open task it sees for the first time.

    :param debitura_conn_id: Airflow connection of type ``debitura``.
    :param task_types: only these types (None: every type, including types Debitura adds later).
    :param case_id: only this case (GUID); account-level tasks have no case and never match.
    :param poll_interval: seconds between reads of the queue (the shared poll may read more often
        when a case gate on the same connection asks for a shorter interval).
    :param replay_existing: on first start (no stored state) fire for every task already open,
        instead of recording them as the baseline.
    :param coalesce: join the triggerer-wide shared poll (default); False reads on its own.
    :param max_seen: cap on the stored ids.
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
        max_seen: int = DEFAULT_MAX_SEEN,
        store: SeenTasksStore | None = None,
    ) -> None:
        super().__init__()
        self.debitura_conn_id = connection_id(debitura_conn_id)
        self.task_types = _validated_types(task_types)
        self.case_id = None if case_id in (None, "") else validate_guid("case_id", str(case_id))
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.replay_existing = bool(replay_existing)
        self.coalesce = bool(coalesce)
        self.max_seen = int(max_seen)
        if self.max_seen < 1:
            raise DebituraConfigError(f"max_seen={max_seen!r} must be at least 1.")
        self.store: SeenTasksStore = store if store is not None else AirflowSeenTasksStore(self)
        self.state_key = watcher_key(self.debitura_conn_id, self.task_types, self.case_id)
        self._state: SeenState | None = None
        self._missing_rounds: dict[str, int] = {}
        self.rounds = 0
        self.events_fired = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Only configuration, never run-time state: Airflow hashes these kwargs to recognise the
        # same watcher across DAG parses, so they must not change while it runs.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "debitura_conn_id": self.debitura_conn_id,
                "task_types": self.task_types,
                "case_id": self.case_id,
                "poll_interval": self.poll_interval,
                "replay_existing": self.replay_existing,
                "coalesce": self.coalesce,
                "max_seen": self.max_seen,
            },
        )

    # -- filtering --

    def matches(self, task: Mapping[str, Any]) -> bool:
        if not is_open_status(task.get("status")):
            return False
        if self.task_types is not None and task.get("type") not in self.task_types:
            return False
        return self.case_id is None or str(task.get("caseId") or "").lower() == self.case_id

    # -- the loop --

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info(
            "Watching Debitura for new open tasks (connection %r, types %s, case %s, every %g s; state key %r)",
            self.debitura_conn_id,
            ", ".join(self.task_types) if self.task_types is not None else "all",
            self.case_id or "any",
            self.poll_interval,
            self.state_key,
        )
        source = _SharedSource(self) if self.coalesce else _DirectSource(self)
        async with source:
            while True:
                try:
                    listing = await source.next_round()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug or a surprise must not kill the watcher
                    self.log.exception("Debitura watcher: reading the queue failed; trying again next interval")
                    listing = Round.failed(f"{type(exc).__name__}: {exc}")
                for event in await self._process(listing):
                    yield event
                await self._persist()
                await source.pause()

    async def _process(self, listing: Round) -> list[TriggerEvent]:
        """Turn one round into events (and a pending state change); fires nothing when unsure."""
        self.rounds += 1
        if not listing.ok:
            self.log.warning(
                "Debitura watcher, round %d: no consistent listing (%s); no events this round",
                self.rounds,
                listing.error,
            )
            return []
        if self._state is None and not await self._load_state():
            return []
        state = self._state
        assert state is not None
        open_matching = {t["id"]: t for t in listing.tasks if t.get("id") and self.matches(t)}
        first_start = self._first_start
        self._first_start = False
        now = time.time()
        new = [t for task_id, t in open_matching.items() if task_id not in state.ids]
        new.sort(key=lambda t: (str(t.get("dateCreated") or ""), str(t["id"])))
        self._dirty = bool(new) or self._dirty
        for task in new:
            state.ids[task["id"]] = now
        self._forget_gone(state, {t["id"] for t in listing.tasks if t.get("id")})
        for dropped in state.cap(self.max_seen):
            self._missing_rounds.pop(dropped, None)
            self._dirty = True
        if first_start and not self.replay_existing:
            self.log.info(
                "Debitura watcher first start: %d open matching task(s) recorded as already seen; "
                "events start with the next new task.",
                len(new),
            )
            return []
        if new:
            self.log.info(
                "Debitura watcher, round %d: %d new task(s): %s",
                self.rounds,
                len(new),
                ", ".join(f"{t.get('type')} {t['id']}" for t in new),
            )
        else:
            self.log.debug(
                "Debitura watcher, round %d: nothing new (%d open matching)", self.rounds, len(open_matching)
            )
        self.events_fired += len(new)
        return [TriggerEvent(dict(task)) for task in new]

    def _forget_gone(self, state: SeenState, open_ids: set[str]) -> None:
        for task_id in list(state.ids):
            if task_id in open_ids:
                self._missing_rounds.pop(task_id, None)
                continue
            misses = self._missing_rounds.get(task_id, 0) + 1
            if misses >= PRUNE_AFTER_ROUNDS:
                del state.ids[task_id]
                self._missing_rounds.pop(task_id, None)
                self._dirty = True
            else:
                self._missing_rounds[task_id] = misses

    _first_start = False
    _dirty = False

    async def _load_state(self) -> bool:
        try:
            stored = await self.store.load(self.state_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without the stored state a restart would replay everything: fire nothing until it loads.
            self.log.warning(
                "Debitura watcher: could not read its state %r (%s: %s); no events until it can",
                self.state_key,
                type(exc).__name__,
                exc,
            )
            return False
        if stored is None:
            self._state = SeenState({})
            self._first_start = True
            self._dirty = True
            self.log.info(
                "Debitura watcher: no stored state under %r: first start (%s)",
                self.state_key,
                "replaying the open queue" if self.replay_existing else "recording a baseline",
            )
        else:
            self._state = stored
            self.log.info("Debitura watcher: resumed with %d seen task id(s) from %r", len(stored.ids), self.state_key)
        return True

    async def _persist(self) -> None:
        if not self._dirty or self._state is None:
            return
        try:
            # Shielded: a cancellation (triggerer shutdown) while saving should not leave the events of
            # this round fired but unrecorded if the write can still finish.
            await asyncio.shield(self.store.save(self.state_key, self._state))
            self._dirty = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.warning(
                "Debitura watcher: could not save its state %r (%s: %s); will retry next round",
                self.state_key,
                type(exc).__name__,
                exc,
            )


def _validated_types(values: Sequence[str] | str | None) -> list[str] | None:
    types = task_types("task_types", values)
    if types is not None and not types:
        raise DebituraConfigError("task_types is empty; give at least one type, or None for every type.")
    return types


# ------------------------------------------------------------------------------------------ sources
# The adapters from the snapshot-source seam (:mod:`.sources`) to the watcher's rounds.


class _DirectSource:
    """Reads on its own every ``poll_interval``: the case's tasks (1 request) or the filtered queue."""

    def __init__(self, trigger: DebituraNewTasksTrigger) -> None:
        self.trigger = trigger
        self.hook = DebituraAsyncHook(trigger.debitura_conn_id)

    async def __aenter__(self) -> _DirectSource:
        await warm_client(self.hook)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.hook.aclose())

    async def next_round(self) -> Round:
        return await read_direct(self.hook, self.trigger)

    async def pause(self) -> None:
        await asyncio.sleep(self.trigger.poll_interval)


async def read_direct(hook: DebituraAsyncHook, trigger: DebituraNewTasksTrigger) -> Round:
    try:
        if trigger.case_id is not None:
            tasks: Iterable[Task] = await hook.get_case_tasks(trigger.case_id, status="Open", types=trigger.task_types)
        else:
            tasks = await hook.list_tasks(status="Open", types=trigger.task_types)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return Round.failed(f"{type(exc).__name__}: {exc}")
    return Round(True, [t.to_api_dict() for t in tasks])


class _SharedSource:
    """The watcher's rounds from the connection's shared poll (one read of the whole queue per round it asks
    for, shared with the case gates due then), at the watcher's own ``poll_interval``: a gate polling
    faster on the same connection does not make the watcher's rounds faster."""

    def __init__(self, trigger: DebituraNewTasksTrigger) -> None:
        self.trigger = trigger
        self.source = SharedQueueSource(trigger.debitura_conn_id, trigger.poll_interval, records=True)
        self._not_before: float | None = None
        self._last_failed = False

    async def __aenter__(self) -> _SharedSource:
        await self.source.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.source.__aexit__(exc_type, exc, tb)

    async def pause(self) -> None:
        # The source already waits for the watcher's next interval; the short pause after a failed round only
        # keeps a poller that fails instantly (e.g. a crashed loop) from spinning.
        if self._last_failed:
            await asyncio.sleep(min(1.0, self.trigger.poll_interval))

    async def next_round(self) -> Round:
        snapshot = await self.source.next_snapshot(self._not_before)
        if snapshot is None:  # no deadline was given, so this cannot happen
            return Round.failed("the shared poll stopped")
        self._not_before = snapshot.started + self.trigger.poll_interval
        self._last_failed = not snapshot.ok
        if not snapshot.ok:
            return Round.failed(snapshot.error or "the shared account poll failed")
        trigger = self.trigger
        wanted = [t[ID] for t in snapshot.tasks if trigger.matches({"type": t[TYPE], "caseId": t[CASE_ID]})]
        return Round(True, snapshot.records(wanted) if wanted else [])
