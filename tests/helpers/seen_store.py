"""An in-memory :class:`~airflow_provider_debitura.triggers.watcher.store.SeenTasksStore` for unit tests."""

from __future__ import annotations

import json
import time

from pydantic import JsonValue

from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY, SeenState, WatchFilter
from airflow_provider_debitura.triggers.watcher.store import dumps, with_legacy_mark


class MemorySeenTasksStore:
    """In-process store for unit tests: share one instance between two trigger instances to model a
    restart (the second instance "finds" what the first one saved).

    :param shared: behave like an asset's state store on Airflow 3.3+ (one value for every watcher of the
        asset, merged on save); False behaves like the Variable store of Airflow 3.0-3.2 (one value per filter).
    """

    def __init__(self, *, shared: bool = True) -> None:
        self.shared = shared
        self.values: dict[str, JsonValue] = {}
        self.saves = 0
        self.fail_loads = 0
        self.fail_saves = 0

    def key(self, watch: WatchFilter) -> str:
        """Where ``watch``'s state lives in :attr:`values`."""
        return ASSET_STATE_KEY if self.shared else watch.key

    def state(self, watch: WatchFilter | None = None) -> SeenState:
        """The stored state, decoded (the shared one, or ``watch``'s own)."""
        key = ASSET_STATE_KEY if watch is None else self.key(watch)
        state = SeenState.from_json(self.values.get(key))
        assert state is not None, f"nothing stored under {key!r}"
        return state

    def size(self, watch: WatchFilter | None = None) -> int:
        """Bytes of the stored JSON."""
        key = ASSET_STATE_KEY if watch is None else self.key(watch)
        return len(dumps(self.values[key]))

    async def load(self, watch: WatchFilter) -> SeenState | None:
        if self.fail_loads:
            self.fail_loads -= 1
            raise RuntimeError("memory store: simulated load failure")
        value = self.values.get(self.key(watch))
        state = None if value is None else SeenState.from_json(json.loads(dumps(value)))
        return with_legacy_mark(state, watch, time.time()) if not self.shared else state

    async def save(self, watch: WatchFilter, state: SeenState, now: float) -> int:
        if self.fail_saves:
            self.fail_saves -= 1
            raise RuntimeError("memory store: simulated save failure")
        key = self.key(watch)
        stored = SeenState.from_json(self.values.get(key)) if self.shared else None
        payload = state.merged_for_save(stored, watch.key, now).to_json() if self.shared else state.to_json()
        text = dumps(payload)
        self.values[key] = json.loads(text)
        self.saves += 1
        return len(text)
