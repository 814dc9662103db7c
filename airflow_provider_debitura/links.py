"""The "Resolve in Debitura" extra link: one click from a task to where a human clears the blocker.

Where the URL is kept depends on who resolves links:

- **Airflow 3**: the worker calls :meth:`DebituraResolveLink.get_link` when the task ends (also when
  it defers or is rescheduled) and stores the URL itself in XCom ``_link_DebituraResolveLink``; the
  UI only reads that. So :func:`push_solution_url` keeps the URL on the running task and no second
  XCom is written. When a deferred task resumes in a new process without recording a URL, the link
  keeps what the deferring process stored (that XCom always exists then: the deferral wrote it).
- **Airflow 2**: the webserver calls ``get_link`` later, so the URL must be in XCom: it is pushed
  under :data:`SOLUTION_URL_XCOM_KEY` and read back from there.

Either way no lookup of a missing XCom happens, so no "XCom not found" error is logged for a task
that had nothing to link to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow import __version__ as _airflow_version
from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

__all__ = ["SOLUTION_URL_XCOM_KEY", "DebituraResolveLink", "push_solution_url", "recorded_solution_url"]

SOLUTION_URL_XCOM_KEY = "debitura_solution_url"
"""XCom key of the URL on Airflow 2 (on Airflow 3 the link's own ``_link_DebituraResolveLink`` holds it)."""

_TASK_ATTRIBUTE = "_debitura_solution_url"
AIRFLOW_3 = int(_airflow_version.split(".")[0]) >= 3


class DebituraResolveLink(BaseOperatorLink):
    """Opens the ``solutionUrl`` of the first task a human must resolve (recorded by :func:`push_solution_url`).

    The sensor records the first blocking task's URL, the operators the first task that needs a human.
    """

    name = "Resolve in Debitura"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The URL, or "" when the task recorded none.

        :param operator: the task (on Airflow 3, the very object that ran).
        :param ti_key: the task instance (Airflow 3: the running one; Airflow 2: its key).
        """
        recorded = getattr(operator, _TASK_ATTRIBUTE, None)
        if isinstance(recorded, str):
            return recorded
        if not AIRFLOW_3:
            return XCom.get_value(key=SOLUTION_URL_XCOM_KEY, ti_key=ti_key) or ""
        if _resumed_after_deferral(ti_key):
            return XCom.get_value(key=self.xcom_key, ti_key=ti_key) or ""
        return ""


def _resumed_after_deferral(ti: Any) -> bool:
    server_context = getattr(ti, "_ti_context_from_server", None)
    return bool(getattr(server_context, "next_method", None))


def push_solution_url(context: Mapping[str, Any], url: str | None) -> None:
    """Record the URL the "Resolve in Debitura" link opens (nothing happens for an empty URL).

    Call it from ``execute``, ``poke`` or ``execute_complete`` with the task context; a later call in the
    same process replaces the URL. Safe with a context that holds no task instance (unit tests).

    :param context: the Airflow task context.
    :param url: the ``solutionUrl`` to open, or None.
    """
    if not url:
        return
    task = context.get("task")
    if AIRFLOW_3 and task is not None:
        setattr(task, _TASK_ATTRIBUTE, url)
        return
    ti = context.get("ti")
    if ti is not None:
        ti.xcom_push(key=SOLUTION_URL_XCOM_KEY, value=url)


def recorded_solution_url(context: Mapping[str, Any]) -> str | None:
    """The URL :func:`push_solution_url` recorded on the running task (Airflow 3), if any.

    :param context: the Airflow task context.
    """
    recorded = getattr(context.get("task"), _TASK_ATTRIBUTE, None)
    return recorded if isinstance(recorded, str) else None
