"""What a sensor remembers across its own reschedules and retries: Airflow 3.3's task state store.

Airflow clears a task's XComs before every rescheduled try, so XCom cannot carry anything from one
reschedule to the next. Airflow 3.3 (AIP-103) gives each task instance a key-value store that survives
reschedules and retries, ``context["task_state_store"]`` (the one ``ResumableJobMixin`` uses); earlier
versions have none, and then nothing is remembered. Reading or writing it is a call to Airflow's API
server, never to Debitura. See docs/gates.md.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class TaskMemory:
    """A thin, failure-tolerant view of ``context["task_state_store"]``.

    :param context: the task's Airflow context (a plain dict in unit tests).
    """

    def __init__(self, context: Any) -> None:
        self._store = context.get("task_state_store") if hasattr(context, "get") else None

    @property
    def available(self) -> bool:
        return self._store is not None

    def get(self, key: str) -> Any:
        """The stored value, or None when absent, unavailable, or unreadable (the sensor then reads again).

        :param key: the key.
        """
        if self._store is None:
            return None
        try:
            return self._store.get(key)
        except Exception as exc:  # an API-server hiccup must not fail a check that can do without it
            log.warning("Could not read %r from the task state store (%s); reading it again instead", key, exc)
            return None

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value; a failure only costs the next try a repeated read.

        :param key: the key.
        :param value: a JSON-serialisable value (not None).
        """
        if self._store is None or value is None:
            return
        try:
            self._store.set(key, value)
        except Exception as exc:
            log.warning("Could not write %r to the task state store (%s); the next try reads it again", key, exc)
