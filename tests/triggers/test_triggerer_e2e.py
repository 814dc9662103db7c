"""The provider's triggers in Airflow's own triggerer, on every Airflow 3 minor: they never take it down.

``airflow dags test`` runs a trigger inline, on the test's own event loop, and hides what the triggerer's
supervisor forbids. Here ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer) runs
tests/dags/triggerer_neighbours.py against the sandbox:

- a deferred case gate (connection read, secret masked, the shared poll) waits on an account-level task and
  opens when the sandbox clears it;
- the new-task watcher stores its baseline, fires for a new chat task and saves its state (Airflow's asset
  state store on 3.3+, a Variable before);
- afterwards a task of another kind (Airflow's DateTimeSensorAsync) still defers and completes, and the
  triggerer never logged a dead trigger runner.

On Airflow 3.1 a synchronous Airflow call from ``asyncio.to_thread`` (secret masking, the watcher's Variable)
ran a second event loop on the supervisor's socket: "Response read out of order", then "Trigger runner
process has died! Exiting." (issue 22).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from helpers.sandbox import demo_without_timer
from helpers.standalone import StandaloneAirflow
from helpers.waiting import wait_until
from helpers.watcher import fernet_key_of, stored_state

try:
    from airflow.sdk import AssetWatcher  # noqa: F401
except ImportError:  # pragma: no cover - Airflow 2.11
    pytest.skip("the triggerer's AssetWatcher and the Task SDK need Airflow 3", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = tuple(int(part) for part in version("apache-airflow").split(".")[:2])
ASSET = "triggerer_neighbours_new_chat_tasks"
DEAD_RUNNER = ("Trigger runner process has died", "Response read out of order", "attached to a different loop")


@pytest.fixture
def airflow(tmp_path: Path, sandbox, migrated_db: Path) -> Iterator[StandaloneAirflow]:
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(ROOT / "tests" / "dags" / "triggerer_neighbours.py", dags)
    shutil.copyfile(migrated_db, home / "airflow.db")
    config = {
        "AIRFLOW_CONN_DEBITURA_DEFAULT": sandbox.conn_json(),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    }
    with StandaloneAirflow(home, dags, config=config, parallelism=2) as instance:
        yield instance


def stored_ids(airflow: StandaloneAirflow) -> set[str] | None:
    """What the watcher saved (``helpers.watcher.stored_state``); None until the first save."""
    state = stored_state(airflow.home / "airflow.db", ASSET, fernet_key_of(airflow.home))
    return None if state is None else set(state.ids)


def event_runs(airflow: StandaloneAirflow) -> list[dict[str, Any]]:
    return airflow.api("GET", "/api/v2/dags/triggerer_neighbours_events/dagRuns").json()["dag_runs"]


def test_gate_watcher_and_another_trigger_share_a_live_triggerer(airflow: StandaloneAirflow, sandbox):
    sandbox.control("POST", "/scenario", demo_without_timer())  # its AssignBankAccount stays open until solved
    blocker = next(t for t in sandbox.state.dump()["tasks"] if t["type"] == "AssignBankAccount")
    for dag_id in ("triggerer_neighbours", "triggerer_neighbours_events", "triggerer_neighbours_after"):
        try:
            airflow.wait_for_dag(dag_id)
        except TimeoutError:
            errors = airflow.api("GET", "/api/v2/importErrors").text
            raise AssertionError(f"{dag_id} not parsed; import errors: {errors}\n{airflow.log_tail(6000)}") from None

    # The watcher's first round stores its baseline: a synchronous save on 3.0-3.2 (the Variable).
    wait_until(lambda: stored_ids(airflow) is not None, 180, "the watcher's baseline in Airflow's metadata", 1.0)

    run = airflow.trigger("triggerer_neighbours", conf={"ref": "INV-1001"})
    airflow.wait_for_task("triggerer_neighbours", run, "gate", {"deferred"})
    sandbox.control("POST", f"/tasks/{blocker['id']}/solve", {"afterSeconds": 0})
    assert airflow.wait_for_task("triggerer_neighbours", run, "gate", {"success", "failed"}) == "success"

    task = sandbox.control("POST", "/tasks", {"type": "ReplyToChat", "caseCreditorReference": "INV-1005"}).json()
    wait_until(lambda: event_runs(airflow), 120, "a DAG run for the new chat task", 1.0)
    # Saved 30 s after its event (triggers/watcher/tracker.py, PERSIST_GRACE).
    wait_until(lambda: task["id"] in (stored_ids(airflow) or set()), 120, "the fired task in the saved state", 1.0)

    until = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat()
    after = airflow.trigger("triggerer_neighbours_after", conf={"until": until})
    airflow.wait_for_task("triggerer_neighbours_after", after, "neighbour", {"deferred", "success"})
    state = airflow.wait_for_task("triggerer_neighbours_after", after, "neighbour", {"success", "failed"})
    assert state == "success", airflow.task_log("triggerer_neighbours_after", after, "neighbour")[-6000:]

    log = airflow.log_tail(2_000_000)
    assert not [line for line in log.splitlines() if any(sign in line for sign in DEAD_RUNNER)], log[-6000:]
    health = airflow.api("GET", "/api/v2/monitor/health").json()
    assert health["triggerer"]["status"] == "healthy", health
    assert len(event_runs(airflow)) == 1
