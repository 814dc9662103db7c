"""The version gate: Human-in-the-loop operators need Airflow 3.1+, and say so when a DAG is parsed on an
older Airflow; nothing else in the provider starts to need 3.1. Marked e2e so that the Airflow 2.11 tier
(``make test-airflow2``) runs it too; it needs no metadata DB.
"""

from __future__ import annotations

import importlib
import pkgutil
import textwrap

import pytest

from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE, HITL_UNAVAILABLE_REASON, airflow_version

pytestmark = pytest.mark.e2e

DAG_HEADER = """
import pendulum
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG
from airflow_provider_debitura.operators.human_handoff import DebituraHumanHandoffOperator
from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator
"""

DAGS = {
    "handoff_direct": "DebituraHumanHandoffOperator(task_id='h', debitura_tasks={'id': 'T1'})",
    "handoff_mapped": "DebituraHumanHandoffOperator.partial(task_id='h').expand(debitura_tasks=[{'id': 'T1'}])",
    "reply_approval": "DebituraReplyApprovalOperator(task_id='a', reply_template='Thanks')",
}
NEEDS = {
    "handoff_direct": "DebituraHumanHandoffOperator",
    "handoff_mapped": "DebituraHumanHandoffOperator",
    "reply_approval": "DebituraReplyApprovalOperator",
}


def test_available_on_every_airflow_that_has_it():
    """Where Airflow has Human-in-the-loop (3.1+), the pinned installs make it available here, so the HITL tests
    run instead of skipping (standard provider 1.12, which Airflow 3.1.8's own constraints pin, is too old)."""
    has_it = tuple(int(part) for part in airflow_version().split(".")[:2]) >= (3, 1)
    assert has_it == HITL_AVAILABLE, HITL_UNAVAILABLE_REASON


def _dagbag(folder):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(folder), include_examples=False) if not HITL_AVAILABLE else DagBag(str(folder))


def _modules() -> list[str]:
    import airflow_provider_debitura

    found = pkgutil.walk_packages(airflow_provider_debitura.__path__, "airflow_provider_debitura.")
    return sorted(m.name for m in found if ".sandbox" not in m.name)  # the sandbox has no Airflow imports


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports_on_this_airflow(module):
    importlib.import_module(module)


def test_a_dag_using_the_handoff_operator_fails_at_parse_time_before_3_1(tmp_path):
    from airflow import __version__

    for dag_id, task in DAGS.items():
        body = f"\nwith DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):\n    {task}\n"
        (tmp_path / f"{dag_id}.py").write_text(textwrap.dedent(DAG_HEADER) + body)
    bag = _dagbag(tmp_path)
    if HITL_AVAILABLE:
        assert bag.import_errors == {} and set(bag.dag_ids) == set(DAGS)
        return
    assert bag.dag_ids == [] and len(bag.import_errors) == len(DAGS)
    for path, error in bag.import_errors.items():
        operator = NEEDS[path.rsplit("/", 1)[-1].removesuffix(".py")]
        assert f"{operator} needs Airflow 3.1 or newer" in error, error
        assert f"this is Airflow {__version__}" in error, error
