"""What a new-task watcher has already fired for, kept in Airflow's metadata database.

Why here and not in the trigger: a triggerer restart re-creates the trigger from its kwargs, so an
in-memory set would replay the whole queue; a local file would not survive the trigger moving to
another triggerer machine. The state therefore lives where every triggerer can read it:

- Airflow 3.3+: the **asset state store** of the asset(s) the watcher feeds
  (``BaseEventTrigger.asset_state_store``, injected by the triggerer; async ``aget``/``aset`` over
  the triggerer's supervisor channel). It is deleted with the asset, so nothing is left behind.
- Otherwise (Airflow 3.0-3.2, or a trigger run outside an asset watcher): an Airflow **Variable**
  named after the watcher's identity, read and written from a worker thread, because a sync Task SDK
  call from the triggerer's event loop can deadlock.

Unit tests use an in-memory store (``tests/helpers/seen_store.py``); the store is a seam, never part of the
trigger's kwargs.

The stored value is small, versioned JSON: ``{"v": 1, "ids": {task_id: first_seen_epoch}}``, capped
(see :data:`DEFAULT_MAX_SEEN`) so it cannot grow without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

STATE_VERSION = 1
DEFAULT_MAX_SEEN = 10_000
"""A watcher rarely tracks more than the account's open queue; the cap only guards against a runaway."""

KEY_PREFIX = "debitura_new_tasks"


@dataclass
class SeenState:
    """Task ids already fired for (or recorded as the baseline), with when they were first seen."""

    ids: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"v": STATE_VERSION, "ids": dict(self.ids)}

    @classmethod
    def from_json(cls, value: Any) -> SeenState | None:
        """None for anything that is not a state this module wrote (treated as "no state yet")."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, Mapping) or value.get("v") != STATE_VERSION:
            return None
        ids = value.get("ids")
        if not isinstance(ids, Mapping):
            return None
        out: dict[str, float] = {}
        for key, seen_at in ids.items():
            try:
                out[str(key)] = float(seen_at)
            except (TypeError, ValueError):
                out[str(key)] = 0.0
        return cls(out)

    def cap(self, max_seen: int) -> list[str]:
        """Drop the oldest entries beyond ``max_seen``; returns what was dropped."""
        if len(self.ids) <= max_seen:
            return []
        ordered = sorted(self.ids.items(), key=lambda item: (item[1], item[0]))
        dropped = [task_id for task_id, _ in ordered[: len(self.ids) - max_seen]]
        for task_id in dropped:
            del self.ids[task_id]
        return dropped

    @staticmethod
    def merge(states: Iterable[SeenState | None]) -> SeenState | None:
        """Union of several stored states (one per watched asset); None when none exists."""
        merged: SeenState | None = None
        for state in states:
            if state is None:
                continue
            if merged is None:
                merged = SeenState({})
            for task_id, seen_at in state.ids.items():
                merged.ids[task_id] = min(seen_at, merged.ids.get(task_id, seen_at))
        return merged


class SeenTasksStore(Protocol):
    """Where a watcher keeps its :class:`SeenState`. ``load`` returns None when nothing was stored yet
    and raises when the store cannot be read (the trigger then fires nothing until it can)."""

    async def load(self, key: str) -> SeenState | None: ...

    async def save(self, key: str, state: SeenState) -> None: ...


class AirflowSeenTasksStore:
    """The real store: the watched assets' state store (Airflow 3.3+) or a Variable (fallback).

    :param trigger: the running trigger; its ``asset_state_store`` is read at call time, because the
        triggerer injects it after ``__init__``.
    """

    def __init__(self, trigger: Any) -> None:
        self._trigger = trigger

    def _asset_accessors(self) -> list[Any]:
        stores = getattr(self._trigger, "asset_state_store", None)
        if stores is None:
            return []
        # One trigger may feed several assets (identical watchers are de-duplicated by Airflow);
        # AssetStateStoreAccessors has no public way to list them, so read its two maps defensively.
        accessors = [*getattr(stores, "_by_name", {}).values(), *getattr(stores, "_by_uri", {}).values()]
        return accessors or [stores]

    @property
    def backend(self) -> str:
        return "asset_state_store" if self._asset_accessors() else "variable"

    async def load(self, key: str) -> SeenState | None:
        accessors = self._asset_accessors()
        if accessors:
            values = [await accessor.aget(key, None) for accessor in accessors]
            return SeenState.merge(SeenState.from_json(v) for v in values)
        return SeenState.from_json(await asyncio.to_thread(_variable_get, key))

    async def save(self, key: str, state: SeenState) -> None:
        payload = state.to_json()
        accessors = self._asset_accessors()
        if accessors:
            for accessor in accessors:
                await accessor.aset(key, payload)
            return
        await asyncio.to_thread(_variable_set, key, json.dumps(payload, separators=(",", ":")))


def _variable_get(key: str) -> Any:
    try:
        from airflow.sdk import Variable
    except ImportError:  # Airflow 2: not a supported runtime for the watcher, but keep it importable
        from airflow.models import Variable  # type: ignore[no-redef]
    return Variable.get(key, default=None)


def _variable_set(key: str, value: str) -> None:
    try:
        from airflow.sdk import Variable
    except ImportError:
        from airflow.models import Variable  # type: ignore[no-redef]
    Variable.set(key, value, description="Debitura new-task watcher: task ids already fired for (do not edit).")


def watcher_key(conn_id: str, task_types: Iterable[str] | None, case_id: str | None) -> str:
    """A stable key per watcher *filter*: changing the poll interval keeps the state, changing what is
    watched starts a fresh one (with a fresh baseline), and two watchers never share a state."""
    identity = json.dumps(
        {"conn": conn_id, "types": sorted(task_types) if task_types is not None else None, "case": case_id},
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{KEY_PREFIX}__{conn_id}__{digest}"
