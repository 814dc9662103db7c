"""A task context for calling an operator's ``execute`` directly: a task instance that records XCom pushes."""

from __future__ import annotations

from typing import Any


class RecordingTI:
    """Enough of a task instance for the operators' XCom pushes."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def task_context(task: Any = None, **values: Any) -> dict[str, Any]:
    """``{"ti": RecordingTI(), "task": task, **values}`` (``task`` left out when None)."""
    context: dict[str, Any] = {"ti": RecordingTI(), **values}
    if task is not None:
        context["task"] = task
    return context
