"""The "Resolve in Debitura" link: one stored URL per Airflow version, and no lookup of a missing XCom.

The real-Airflow side (the worker's finalize storing ``_link_DebituraResolveLink``, no "XCom not found"
line in the task log) is checked in ``test_operator_e2e.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from helpers.context import task_context

from airflow_provider_debitura import links
from airflow_provider_debitura.links import (
    SOLUTION_URL_XCOM_KEY,
    DebituraResolveLink,
    push_solution_url,
    recorded_solution_url,
)
from airflow_provider_debitura.operators import DebituraListTasksOperator

URL = "https://app.debitura.com/creditor/cases/x?task=y"
ON_AIRFLOW_3 = pytest.mark.skipif(not links.AIRFLOW_3, reason="the Airflow 3 link path needs Airflow 3's task SDK")


@pytest.fixture
def xcom_reads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    reads: list[dict[str, Any]] = []

    def get_value(**kwargs: Any) -> str:
        reads.append(kwargs)
        return "stored-by-the-deferring-process"

    monkeypatch.setattr(links.XCom, "get_value", staticmethod(get_value))
    return reads


def op() -> DebituraListTasksOperator:
    return DebituraListTasksOperator(task_id="list_tasks")


@ON_AIRFLOW_3
def test_airflow3_keeps_the_url_on_the_task_and_pushes_no_second_xcom(monkeypatch, xcom_reads) -> None:
    monkeypatch.setattr(links, "AIRFLOW_3", True)
    task = op()
    context = task_context(task)
    push_solution_url(context, URL)
    assert context["ti"].xcom == {}
    assert recorded_solution_url(context) == URL
    assert DebituraResolveLink().get_link(task, ti_key=SimpleNamespace()) == URL
    assert xcom_reads == []


@ON_AIRFLOW_3
def test_airflow3_with_nothing_recorded_reads_no_xcom(monkeypatch, xcom_reads) -> None:
    monkeypatch.setattr(links, "AIRFLOW_3", True)
    push_solution_url(task_context(op()), None)
    assert DebituraResolveLink().get_link(op(), ti_key=SimpleNamespace(_ti_context_from_server=None)) == ""
    assert xcom_reads == []  # the lookup that logged "XCom not found" at ERROR on every such try


@ON_AIRFLOW_3
def test_airflow3_resumed_task_keeps_the_link_its_deferral_stored(monkeypatch, xcom_reads) -> None:
    monkeypatch.setattr(links, "AIRFLOW_3", True)
    resumed = SimpleNamespace(_ti_context_from_server=SimpleNamespace(next_method="execute_complete"))
    assert DebituraResolveLink().get_link(op(), ti_key=resumed) == "stored-by-the-deferring-process"
    assert [r["key"] for r in xcom_reads] == ["_link_DebituraResolveLink"]


def test_airflow2_pushes_the_url_for_the_webserver(monkeypatch, xcom_reads) -> None:
    monkeypatch.setattr(links, "AIRFLOW_3", False)
    task = op()
    context = task_context(task)
    push_solution_url(context, URL)
    assert context["ti"].xcom == {SOLUTION_URL_XCOM_KEY: URL}
    key = SimpleNamespace()
    assert DebituraResolveLink().get_link(DebituraListTasksOperator(task_id="fresh"), ti_key=key) == (
        "stored-by-the-deferring-process"
    )
    assert xcom_reads == [{"key": SOLUTION_URL_XCOM_KEY, "ti_key": key}]


def test_no_url_and_no_task_instance_are_fine() -> None:
    push_solution_url({}, URL)
    push_solution_url({"ti": None}, None)
