"""Fixtures shared by every test tier.

- ``sandbox``: a real Debitura sandbox HTTP server on a free loopback port (demo scenario).
- ``debitura_conn``: ``AIRFLOW_CONN_DEBITURA_DEFAULT`` pointing at it, so hooks resolve it with no DB.
- ``airflow_env``: one migrated SQLite ``AIRFLOW_HOME`` per test session (per pytest-xdist worker, copied
  from one DB migrated once per run) whose DAGs folder holds ``tests/dags`` and ``example_dags``;
  ``airflow_env.run_dag(dag_id, conn_json=...)`` runs ``airflow dags test`` in a process of its own (a fork
  of a warm process that imported Airflow once; ``DEBITURA_COLD_AIRFLOW=1`` for a fresh ``airflow``
  process each time) and reads states and XComs back.
- ``module_airflow_env``: the same, fresh for one test module (for pages that list everything in the DB).
- ``api``: Airflow's api-server on ``airflow_env`` (one per worker; its modules share one ``xdist_group``).
- ``migrated_db``: the run's one migrated ``airflow.db``, for tests that start Airflow their own way.
- ``retry_clock`` (every test): the hook's retry waits are recorded in ``retry_clock.waits`` and not slept;
  ``@pytest.mark.real_retry_waits`` (or ``DEBITURA_REAL_WAITS=1`` for the whole run) sleeps them
  (``helpers/retry_clock.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.airflow_harness import AirflowEnv, make_env, migrated_template
from helpers.api_server import ApiServer
from helpers.retry_clock import RetryClock, install

from airflow_provider_debitura.sandbox.scenarios import case_id_for

ROOT = Path(__file__).resolve().parent.parent

# Airflow writes airflow.cfg into AIRFLOW_HOME on import: keep the tests off ~/airflow (whose config may
# come from another Airflow version) by giving the session its own, before any test module imports Airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="debitura-tests-airflow-home-")
# Unit tiers must never touch a metadata DB: point Airflow at one that cannot exist.
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////nonexistent/debitura-tests/airflow.db")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

SANDBOX_KEY = "sandbox-key-7f3a9c21-do-not-log"


@pytest.fixture
def sandbox() -> Iterator:
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="demo", api_key=SANDBOX_KEY) as server:
        yield server


@pytest.fixture
def debitura_conn(sandbox, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sandbox.conn_json())
    return sandbox


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``airflow.db`` migrated by this Airflow, once per run and shared by pytest-xdist's workers (their temp
    dirs have a common parent): copy it rather than run ``airflow db migrate`` again."""
    run_temp = tmp_path_factory.getbasetemp()
    return migrated_template(run_temp.parent if os.environ.get("PYTEST_XDIST_WORKER") else run_temp)


def _dags_folder(base: Path) -> Path:
    """A DAGs folder under ``base`` holding ``tests/dags`` and ``example_dags``."""
    dags = base / "dags"
    dags.mkdir()
    for folder in (ROOT / "tests" / "dags", ROOT / "example_dags"):
        for path in folder.glob("*.py"):
            shutil.copy(path, dags / path.name)
    return dags


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[AirflowEnv]:
    base = tmp_path_factory.mktemp("airflow")
    env = make_env(base, _dags_folder(base), template=migrated_db, warm=True)
    yield env
    env.close()


@pytest.fixture(scope="module")
def module_airflow_env(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[AirflowEnv]:
    """An ``airflow_env`` of the test module's own (an empty metadata DB): for pages that list every run or
    request in the DB, such as Required Actions, which the worker's shared one fills with other tests' runs."""
    base = tmp_path_factory.mktemp("module-airflow")
    env = make_env(base, _dags_folder(base), template=migrated_db, warm=True)
    yield env
    env.close()


@pytest.fixture
def case_ids() -> dict[str, str]:
    """Demo-scenario creditor references to case GUIDs (stable ids)."""
    return {ref: case_id_for(ref) for ref in ("INV-1001", "INV-1002", "INV-1003", "INV-1004", "INV-1005")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ``slow`` tests first, then the other end-to-end tests (stable: file order otherwise). pytest-xdist
    hands work out in this order, after the ``xdist_group`` units (largest first): a two-minute test started
    last would keep one worker busy while the others idle."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.get_closest_marker("e2e") is None))


@pytest.fixture(scope="session")
def api(airflow_env: AirflowEnv) -> Iterator[ApiServer]:
    """Airflow's api-server on ``airflow_env`` (human-in-the-loop answers, the UI), one per pytest-xdist
    worker: the modules that use it share the ``xdist_group`` mark "hitl", so that one worker starts it once."""
    with ApiServer(airflow_env) as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_retry_waits: the hook's retry loops sleep for real (see tests/helpers/retry_clock.py)"
    )


@pytest.fixture(autouse=True)
def retry_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RetryClock:
    """The hook's retry waits, recorded and not slept (``real_retry_waits``: slept); see helpers/retry_clock.py."""
    marked = request.node.get_closest_marker("real_retry_waits") is not None
    real = marked or bool(os.environ.get("DEBITURA_REAL_WAITS"))
    clock = RetryClock(real=real)
    install(monkeypatch, clock)
    return clock
