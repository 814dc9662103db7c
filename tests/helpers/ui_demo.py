"""The example DAGs in Airflow standalone against the Debitura sandbox: what ``make airflow`` runs and what
the browser tests look at.

::

    with ui_demo(home, airflow_port=0, sandbox_port=0) as demo:
        demo.airflow   # StandaloneAirflow (tests/helpers/standalone.py): url, username, password, api(), cli()
        demo.sandbox   # SandboxServer (connection 'debitura_default' points at it)
        demo.blocker   # None, or with manual_blocker=True the ManualBlocker the case-gate example waits on

By default the sandbox runs the ``demo-ui`` scenario: its account-level AssignBankAccount clears 5 s after the
case-gate example's first check, and any run 20 s or more later finds a fresh one, so every run visibly waits
(state *deferred*, blockers and links in its log) with no helper thread. ``manual_blocker=True`` holds the gate
until the test calls ``demo.blocker.solve()`` (the browser tests take their screenshots first).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_debitura.provider_info import CONN_FIELDS
from airflow_provider_debitura.sandbox import SandboxServer
from helpers.standalone import StandaloneAirflow

ROOT = Path(__file__).resolve().parents[2]
DEMO_SCENARIO = ROOT / "airflow_provider_debitura" / "sandbox" / "scenarios" / "demo.json"
EXAMPLE_DAGS = ROOT / "example_dags"
GATE_DAG = "example_debitura_case_gate"
TRIAGE_DAG = "example_debitura_task_triage"
GATE_CASE = "INV-1001"
CONN_ID = "debitura_default"
BLOCKER_TITLE = "Assign a bank account for payouts"


def demo_scenario() -> dict[str, Any]:
    """The bundled demo scenario without its timed AssignBankAccount (a :class:`ManualBlocker` raises one)."""
    scenario = json.loads(DEMO_SCENARIO.read_text())
    scenario["tasks"] = [t for t in scenario["tasks"] if t["type"] != "AssignBankAccount"]
    return scenario


def connection(sandbox: SandboxServer) -> dict[str, Any]:
    """The ``debitura_default`` connection for the sandbox as the form would save it: the port included
    (Airflow 3.3's Test button needs a stored one: docs/ui.md) and every extra field filled (Airflow 3.3's
    edit dialog shows only the extras a connection already has)."""
    defaults = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}
    conn = sandbox.conn_dict()
    return {**conn, "port": sandbox.port, "extra": {**defaults, **conn["extra"]}}


def preset_connection(airflow: StandaloneAirflow, sandbox: SandboxServer, conn_id: str = CONN_ID) -> None:
    """Store the sandbox connection in Airflow's database (so the UI lists it and its Test button works).

    :param airflow: the running Airflow.
    :param sandbox: the sandbox it points at.
    :param conn_id: the connection id.
    """
    conn = connection(sandbox)
    airflow.api("DELETE", f"/api/v2/connections/{conn_id}")
    body = {**conn, "connection_id": conn_id, "extra": json.dumps(conn.get("extra") or {})}
    airflow.api("POST", "/api/v2/connections", json=body).raise_for_status()


class ManualBlocker:
    """One open account-level AssignBankAccount that the case-gate example waits on until :meth:`solve`
    (the browser tests take their screenshots of the waiting gate first).

    :param sandbox: the sandbox.
    """

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        task = sandbox.control("POST", "/_sandbox/tasks", json={"type": "AssignBankAccount", "title": BLOCKER_TITLE})
        task.raise_for_status()
        self.task_id: str = task.json()["id"]

    def is_open(self) -> bool:
        return (self.sandbox.state.task(self.task_id) or {}).get("status") == "Open"

    def solve(self) -> None:
        """Clear the blocker now."""
        self.sandbox.control("POST", f"/_sandbox/tasks/{self.task_id}/solve").raise_for_status()


@dataclass
class UiDemo:
    airflow: StandaloneAirflow
    sandbox: SandboxServer
    blocker: ManualBlocker | None


@contextlib.contextmanager
def ui_demo(
    home: Path,
    *,
    airflow_port: int = 0,
    sandbox_port: int = 0,
    manual_blocker: bool = False,
    db_template: Path | None = None,
    dags_folder: Path = EXAMPLE_DAGS,
    startup_timeout: float = 420,
) -> Iterator[UiDemo]:
    """Sandbox, Airflow standalone (``[core] test_connection = Enabled``) and the preset connection; all stopped
    on exit, whatever happened.

    :param home: the throwaway ``AIRFLOW_HOME``.
    :param airflow_port: the api-server's port (0: a free one).
    :param sandbox_port: the sandbox's port (0: a free one).
    :param manual_blocker: hold the gate on a :class:`ManualBlocker` until the caller solves it, instead of
        the ``demo-ui`` scenario's own blocker.
    :param db_template: a migrated ``airflow.db`` to start from (the tests' ``migrated_db``); None: standalone
        migrates its own.
    :param dags_folder: the DAGs folder (the example DAGs).
    :param startup_timeout: seconds to wait for Airflow.
    """
    with SandboxServer(scenario=demo_scenario() if manual_blocker else "demo-ui", port=sandbox_port) as sandbox:
        blocker = ManualBlocker(sandbox) if manual_blocker else None
        if db_template is not None:
            home.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(db_template, home / "airflow.db")
        airflow = StandaloneAirflow(
            home, dags_folder, port=airflow_port, config={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
        )
        try:
            airflow.start(timeout=startup_timeout)
            preset_connection(airflow, sandbox)
            yield UiDemo(airflow, sandbox, blocker)
        finally:
            airflow.stop()
