"""A task context for calling an operator's ``execute`` or a sensor's ``poke`` directly (no Airflow run).

::

    context = task_context(op)                   # {"ti": FakeTI(), "task": op, "ds": ..., "params": {}}
    op.execute(context)
    context["ti"].xcom                            # what the task pushed, by key
"""

from __future__ import annotations

from typing import Any

DS = "2026-11-27"


class FakeTI:
    """Enough of a task instance for the operators' and the sensor's XCom pushes (the "Resolve" link) and for
    reschedule mode (``try_number``).

    :param try_number: the try this instance is in.
    """

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def task_context(task: Any = None, *, ti: FakeTI | None = None, **values: Any) -> dict[str, Any]:
    """``{"ti": ti or FakeTI(), "ds": DS, "params": {}, "task": task, **values}`` (``task`` left out when None).

    :param task: the operator, for code that reads ``context["task"]``.
    :param ti: the task instance; a fresh :class:`FakeTI` by default.
    :param values: more context keys (they win over the defaults).
    """
    context: dict[str, Any] = {"ti": ti if ti is not None else FakeTI(), "ds": DS, "params": {}}
    if task is not None:
        context["task"] = task
    context.update(values)
    return context
