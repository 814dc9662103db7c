"""Where a watcher keeps its state: Airflow 3.3's asset state store (one value per watched asset), else a
Variable per filter (Airflow 3.0-3.2). Unit tests use ``tests/helpers/seen_store.py``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Protocol

from airflow.providers.common.compat.sdk import Variable
from pydantic import JsonValue

from airflow_provider_debitura.supervisor import call_airflow
from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY, Mark, SeenState, WatchFilter


class SeenTasksStore(Protocol):
    """Where a watcher keeps its :class:`SeenState`.

    ``load`` returns None when nothing was stored yet and raises when the store cannot be read (the
    trigger then fires nothing until it can). ``save`` returns the size of what it wrote, in bytes.
    """

    async def load(self, watch: WatchFilter) -> SeenState | None:
        """The stored state ``watch`` reads (None: nothing stored yet).

        :param watch: the watcher's filter.
        """
        ...

    async def save(self, watch: WatchFilter, state: SeenState, now: float) -> int:
        """Write ``state``; returns the bytes written.

        :param watch: the watcher's filter.
        :param state: what to write (see :meth:`SeenTracker.snapshot`).
        :param now: local POSIX seconds.
        """
        ...


class AssetStateSlot(Protocol):
    """The part of Airflow 3.3's ``AssetStateStoreAccessor`` a watcher uses (one watched asset)."""

    async def aget(self, key: str, default: JsonValue = None) -> JsonValue:
        """The value under ``key``.

        :param key: the state key.
        :param default: returned when nothing is stored.
        """
        ...

    async def aset(self, key: str, value: JsonValue) -> None:
        """Store ``value`` under ``key``.

        :param key: the state key.
        :param value: a JSON value (not None).
        """
        ...

    async def adelete(self, key: str) -> None:
        """Remove ``key``.

        :param key: the state key.
        """
        ...


def with_legacy_mark(state: SeenState | None, watch: WatchFilter, now: float) -> SeenState | None:
    """A version-1 state (ids, no marks) read under ``watch``'s own key gets ``watch``'s mark, so it resumes.

    :param state: what was loaded.
    :param watch: the filter whose key it was loaded from.
    :param now: local POSIX seconds.
    """
    if state is not None and not state.marks:
        state.marks[watch.key] = Mark(watch, created=0.0, saved=now)
    return state


def dumps(value: JsonValue) -> str:
    """Compact JSON, as stored.

    :param value: the JSON value.
    """
    return json.dumps(value, separators=(",", ":"))


class AirflowSeenTasksStore:
    """The real store: every watched asset's state store (Airflow 3.3+), else a Variable per filter.

    :param trigger: the running trigger; its ``asset_state_store`` is read at call time, because the
        triggerer injects it after ``__init__``.
    """

    def __init__(self, trigger: object) -> None:
        self._trigger = trigger
        self._legacy_keys: set[str] = set()
        """Version-1 keys found in an asset store: deleted after the first save of the new state."""

    def _slots(self) -> list[AssetStateSlot]:
        stores = getattr(self._trigger, "asset_state_store", None)
        if stores is None:
            return []
        # One trigger may feed several assets (identical watchers are de-duplicated by Airflow);
        # AssetStateStoreAccessors has no public way to list them, so read its two maps defensively.
        slots = [*getattr(stores, "_by_name", {}).values(), *getattr(stores, "_by_uri", {}).values()]
        return slots or [stores]

    @property
    def backend(self) -> str:
        """ "asset_state_store" or "variable"."""
        return "asset_state_store" if self._slots() else "variable"

    async def load(self, watch: WatchFilter) -> SeenState | None:
        """The state of ``watch``'s asset(s), or its Variable.

        :param watch: the watcher's filter.
        """
        now = time.time()
        slots = self._slots()
        if not slots:
            stored = SeenState.from_json(await call_airflow(_variable_get, watch.key))
            return with_legacy_mark(stored, watch, now)
        values = [await slot.aget(ASSET_STATE_KEY, None) for slot in slots]
        merged = await asyncio.to_thread(_decode_merged, values)
        if merged is None or watch.key not in merged.marks:
            legacy = _decode_merged([await slot.aget(watch.key, None) for slot in slots])
            if legacy is not None:
                self._legacy_keys.add(watch.key)
                merged = SeenState.merge([merged, with_legacy_mark(legacy, watch, now)])
        return merged

    async def save(self, watch: WatchFilter, state: SeenState, now: float) -> int:
        """Write ``state`` (merged with what other watchers of the same asset stored meanwhile).

        :param watch: the watcher's filter.
        :param state: its state.
        :param now: local POSIX seconds.
        """
        slots = self._slots()
        if not slots:
            text = await asyncio.to_thread(lambda: dumps(state.to_json()))
            await call_airflow(_variable_set, watch.key, text)
            return len(text)
        size = 0
        for slot in slots:
            stored = await slot.aget(ASSET_STATE_KEY, None)
            payload, text = await asyncio.to_thread(_payload_for_save, state, stored, watch.key, now)
            size = max(size, len(text))
            await slot.aset(ASSET_STATE_KEY, payload)
        for key in list(self._legacy_keys):
            for slot in slots:
                await slot.adelete(key)
            self._legacy_keys.discard(key)
        return size


def _decode_merged(values: Iterable[JsonValue]) -> SeenState | None:
    return SeenState.merge(SeenState.from_json(value) for value in values)


def _payload_for_save(state: SeenState, stored: JsonValue, keep: str, now: float) -> tuple[JsonValue, str]:
    """Off the event loop: encoding 20,000 ids takes tens of milliseconds."""
    payload = state.merged_for_save(SeenState.from_json(stored), keep, now).to_json()
    return payload, dumps(payload)


def _variable_get(key: str) -> str | None:
    value = Variable.get(key, default=None)
    return None if value is None else str(value)


def _variable_set(key: str, value: str) -> None:
    Variable.set(key, value, description="Debitura new-task watcher: what it has seen (do not edit).")
