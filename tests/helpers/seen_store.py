"""An in-memory :class:`~airflow_provider_debitura.seen_tasks.SeenTasksStore` for unit tests."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_debitura.seen_tasks import SeenState


class MemorySeenTasksStore:
    """In-process store for unit tests: share one instance between two trigger instances to model a
    restart (the second instance "finds" what the first one saved)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.saves = 0
        self.fail_loads = 0
        self.fail_saves = 0

    async def load(self, key: str) -> SeenState | None:
        if self.fail_loads:
            self.fail_loads -= 1
            raise RuntimeError("memory store: simulated load failure")
        value = self.values.get(key)
        return None if value is None else SeenState.from_json(json.loads(json.dumps(value)))

    async def save(self, key: str, state: SeenState) -> None:
        if self.fail_saves:
            self.fail_saves -= 1
            raise RuntimeError("memory store: simulated save failure")
        self.values[key] = json.loads(json.dumps(state.to_json()))
        self.saves += 1
