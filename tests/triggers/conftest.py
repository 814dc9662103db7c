"""Fixtures of the watcher tests (``test_new_tasks.py``, ``test_new_tasks_scale.py``)."""

from __future__ import annotations

import pytest
from helpers.seen_store import MemorySeenTasksStore

from airflow_provider_debitura.triggers.watcher import tracker


@pytest.fixture
def store() -> MemorySeenTasksStore:
    """A fresh in-memory stand-in for one asset's state store."""
    return MemorySeenTasksStore()


@pytest.fixture
def no_persist_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fired tasks are stored at once (the 30 s grace has its own tests), so a restart finds them. Used by
    the watcher modules through their ``pytestmark``; the state tests keep the real grace."""
    monkeypatch.setattr(tracker, "PERSIST_GRACE", 0.0)
