"""The "Resolve in Debitura" extra link: one click from a task to where a human clears the blocker."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

SOLUTION_URL_XCOM_KEY = "debitura_solution_url"


class DebituraResolveLink(BaseOperatorLink):
    """Opens the ``solutionUrl`` the task pushed under :data:`SOLUTION_URL_XCOM_KEY`.

    The sensor pushes the first blocking task's URL, the reply operator the first task that needs a
    human. Reading it from XCom (rather than from operator attributes) is what works on Airflow 3,
    where links are resolved by the worker when the task finishes.
    """

    name = "Resolve in Debitura"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return XCom.get_value(key=SOLUTION_URL_XCOM_KEY, ti_key=ti_key) or ""


def push_solution_url(context: Any, url: str | None) -> None:
    """Record the URL the link opens; safe to call with no task instance (unit tests) or no URL."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None and url:
        ti.xcom_push(key=SOLUTION_URL_XCOM_KEY, value=url)
