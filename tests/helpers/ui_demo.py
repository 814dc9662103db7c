"""The example DAGs in Airflow standalone against the Debitura sandbox: what ``make airflow`` runs and what
the browser tests look at.

::

    with ui_demo(home, airflow_port=0, sandbox_port=0, blocker_delay=25) as demo:
        demo.airflow   # StandaloneAirflow (tests/helpers/standalone.py): url, username, password, api(), cli()
        demo.sandbox   # SandboxServer (demo scenario; connection 'debitura_default' points at it)
        demo.blocker   # DemoBlocker: the account-level task the case-gate example waits on

The demo scenario's AssignBankAccount clears 5 s after the scenario *loads*, long before anyone triggers the
gate in a running Airflow. Here it is replaced by a :class:`DemoBlocker`: one open AssignBankAccount that
clears ``blocker_delay`` seconds after the first gate check on ``INV-1001`` sees it, and is raised again
30 s after it cleared, so every run of the case-gate example visibly waits (state *deferred*, blockers and links in
its log). ``blocker_delay=None`` clears it only on ``blocker.solve()`` (the tests take their screenshots first).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_debitura.provider_info import CONN_FIELDS
from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for
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
    """The bundled demo scenario without its timed AssignBankAccount (a :class:`DemoBlocker` raises it)."""
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


class DemoBlocker:
    """One open account-level AssignBankAccount that the case-gate example waits on, raised again once cleared.

    :param sandbox: the sandbox.
    :param delay: seconds between the first gate check on ``case`` that sees the task and its clearing;
        ``None``: only :meth:`solve` clears it.
    :param case: the creditor reference the gate checks (its ``GET /cases/{id}/tasks`` arms the timer).
    :param interval: how often the background thread looks whether to raise a fresh blocker.
    :param rearm_after: seconds a cleared blocker stays cleared before a fresh one is raised: long enough for
        a waiting gate (polling every few seconds, then confirming) to see the clear and open.
    """

    def __init__(
        self,
        sandbox: SandboxServer,
        delay: float | None = 25.0,
        case: str = GATE_CASE,
        interval: float = 1.0,
        rearm_after: float = 30.0,
    ) -> None:
        self.sandbox = sandbox
        self.delay = delay
        self.case_path = f"/cases/{case_id_for(case)}/tasks"
        self.interval = interval
        self.rearm_after = rearm_after
        self._cleared_at: float | None = None
        self.task_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self) -> str:
        """Raise a fresh blocker (and its timer); returns its task id."""
        task = self.sandbox.control(
            "POST", "/_sandbox/tasks", json={"type": "AssignBankAccount", "title": BLOCKER_TITLE}
        )
        task.raise_for_status()
        self.task_id = task.json()["id"]
        if self.delay is not None:
            event = {
                "at": {"afterRequests": {"method": "GET", "path": self.case_path, "count": 1}},
                "action": {"type": "solveTask", "taskId": self.task_id, "afterSeconds": self.delay},
            }
            self.sandbox.control("POST", "/_sandbox/events", json=event).raise_for_status()
        return self.task_id

    def is_open(self) -> bool:
        return self.task_id is not None and (self.sandbox.state.task(self.task_id) or {}).get("status") == "Open"

    def solve(self) -> None:
        """Clear the current blocker now (a fresh one is raised ``rearm_after`` seconds later)."""
        if self.task_id is not None:
            self.sandbox.control("POST", f"/_sandbox/tasks/{self.task_id}/solve").raise_for_status()

    def start(self) -> DemoBlocker:
        self.arm()
        self._thread = threading.Thread(target=self._rearm_loop, name="debitura-demo-blocker", daemon=True)
        self._thread.start()
        return self

    def _rearm_loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # the sandbox is stopping; the next round retries
                if self.is_open():
                    self._cleared_at = None
                elif self._cleared_at is None:
                    self._cleared_at = time.monotonic()
                elif time.monotonic() - self._cleared_at >= self.rearm_after:
                    self.arm()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class UiDemo:
    airflow: StandaloneAirflow
    sandbox: SandboxServer
    blocker: DemoBlocker


@contextlib.contextmanager
def ui_demo(
    home: Path,
    *,
    airflow_port: int = 0,
    sandbox_port: int = 0,
    blocker_delay: float | None = 25.0,
    dags_folder: Path = EXAMPLE_DAGS,
    startup_timeout: float = 420,
) -> Iterator[UiDemo]:
    """Sandbox, Airflow standalone (``[core] test_connection = Enabled``) and the preset connection; all stopped
    on exit, whatever happened.

    :param home: the throwaway ``AIRFLOW_HOME``.
    :param airflow_port: the api-server's port (0: a free one).
    :param sandbox_port: the sandbox's port (0: a free one).
    :param blocker_delay: see :class:`DemoBlocker`.
    :param dags_folder: the DAGs folder (the example DAGs).
    :param startup_timeout: seconds to wait for Airflow.
    """
    with SandboxServer(scenario=demo_scenario(), port=sandbox_port) as sandbox:
        blocker = DemoBlocker(sandbox, blocker_delay).start()
        airflow = StandaloneAirflow(
            home, dags_folder, port=airflow_port, config={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
        )
        try:
            airflow.start(timeout=startup_timeout)
            preset_connection(airflow, sandbox)
            yield UiDemo(airflow, sandbox, blocker)
        finally:
            blocker.stop()
            airflow.stop()
