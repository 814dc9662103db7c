"""A real ``airflow api-server`` on the test harness's SQLite metadata DB, to answer Human-in-the-loop requests
the way the UI does: through Airflow's REST API.

``airflow dags test`` (run by :meth:`AirflowEnv.run_dag`, here in a background thread via :func:`run_dag_async`)
keeps a run alive while a task waits for a person ("Waiting for Human-in-the-loop input"); the test answers
with :meth:`ApiServer.answer` (``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails``, the UI's own
call) and reads the outcome back.

Auth: the simple auth manager with ``[core] simple_auth_manager_all_admins = True``: a token comes from
``GET /auth/token`` without credentials (what the UI does in that mode) and is sent as a bearer token.
The server binds to 127.0.0.1 on a free port and is stopped (its process group) on exit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from helpers.airflow_harness import BIN, AirflowEnv, DagRunResult
from helpers.browser import chromium, new_page
from helpers.waiting import free_port, wait_until

HitlDetail = dict[str, Any]

WAITING_STATES = ("deferred", "awaiting_input", "queued", "scheduled", "running", "up_for_reschedule")


class ApiServer:
    """``with ApiServer(airflow_env) as api: api.answer(api.wait_for_request(dag_id), ["Done"])``."""

    def __init__(self, env: AirflowEnv, *, startup_timeout: float = 240) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.log_path: Path = env.home / f"api-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @property
    def process_env(self) -> dict[str, str]:
        env = self.env.env
        env.update(
            {
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
            }
        )
        return env

    def start(self) -> ApiServer:
        log = self.log_path.open("wb")
        cmd = [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", "1", "--apps", "core"]
        self._proc = subprocess.Popen(
            cmd, env=self.process_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            wait_until(self._healthy, timeout=self.startup_timeout, interval=1.0, what="airflow api-server to start")
            token = httpx.get(f"{self.url}/auth/token", timeout=30).raise_for_status().json()["access_token"]
        except BaseException:
            self.stop()
            raise
        self._client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        return self

    def _healthy(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {self._proc.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker: the group this helper started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client(self) -> httpx.Client:
        assert self._client is not None, "start() the server first"
        return self._client

    # -- Human-in-the-loop, as the UI calls it --

    def hitl_details(self, dag_id: str = "~", run_id: str = "~", **query: Any) -> list[HitlDetail]:
        """``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails`` (the Required Actions page's list)."""
        response = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails", params=query)
        response.raise_for_status()
        return response.json()["hitl_details"]

    def pending(self, dag_id: str = "~") -> list[HitlDetail]:
        """Requests without an answer whose task is still waiting.

        The UI counts a request as pending while its task is ``deferred`` or ``awaiting_input``. Under
        ``airflow dags test`` a deferred task shows as ``queued`` while its trigger runs inline, so here
        every unfinished state counts; a request of a finished task (failed at a timeout, say) does not.
        """
        return [
            d
            for d in self.hitl_details(dag_id, response_received=False)
            if d["task_instance"]["state"] in WAITING_STATES
        ]

    def wait_for_request(
        self,
        dag_id: str,
        *,
        task_id: str | None = None,
        count: int = 1,
        timeout: float = 240,
        run: concurrent.futures.Future[DagRunResult] | None = None,
    ) -> list[HitlDetail]:
        """Wait until ``count`` pending requests of ``dag_id`` (optionally of one task) exist; return them.
        With ``run`` (from :func:`run_dag_async`), fail at once with its output if the run ends first."""

        def ready() -> list[HitlDetail] | None:
            if run is not None and run.done():
                raise AssertionError(f"the DAG run ended before the request appeared:\n{run.result().explain()}")
            found = [d for d in self.pending(dag_id) if task_id is None or d["task_instance"]["task_id"] == task_id]
            return found if len(found) >= count else None

        return wait_until(ready, timeout=timeout, what=f"{count} pending HITL request(s) in {dag_id}")

    def detail(self, request: HitlDetail) -> HitlDetail:
        """The request's current state (``GET .../hitlDetails`` of its task instance)."""
        response = self.client.get(_path(request))
        response.raise_for_status()
        return response.json()

    def answer(
        self, request: HitlDetail, chosen_options: list[str], params_input: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Answer as a person does in the UI (``PATCH .../hitlDetails``); returns the raw response."""
        return self.client.patch(
            _path(request), json={"chosen_options": chosen_options, "params_input": params_input or {}}
        )


def form_values(request: HitlDetail) -> dict[str, Any]:
    """The request's form as the UI submits it untouched: every field with its current value."""
    return {key: param["value"] for key, param in request["params"].items()}


def _path(request: HitlDetail) -> str:
    ti = request["task_instance"]
    return (
        f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
        f"{ti['map_index']}/hitlDetails"
    )


_EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="dags-test")


def run_dag_async(env: AirflowEnv, dag_id: str, **kwargs: Any) -> concurrent.futures.Future[DagRunResult]:
    """``env.run_dag(...)`` in a background thread, so the test can answer while ``airflow dags test`` waits."""
    return _EXECUTOR.submit(env.run_dag, dag_id, **kwargs)


def run_until_request(
    api: ApiServer, dag_id: str, conn_json: str, timeout: float
) -> tuple[concurrent.futures.Future[DagRunResult], HitlDetail]:
    """Start ``dag_id`` on ``api``'s Airflow in the background and wait until its one request is pending;
    (the run, the request). Fails if the run ends first, or if more than one request appears."""
    run = run_dag_async(api.env, dag_id, conn_json=conn_json, timeout=timeout)
    [request] = api.wait_for_request(dag_id, timeout=timeout, run=run)
    return run, request


# -- a real browser on the api-server's UI (tests/helpers/browser.py) --


@contextlib.contextmanager
def logged_in_page(api: ApiServer) -> Iterator[Any]:
    """A headless Chromium page logged in to ``api``'s UI (all-admins login, no password), 1400 x 900, that
    refuses every request off loopback (:func:`helpers.browser.new_page`)."""
    with chromium() as browser:
        page = new_page(browser)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{api.url}/auth/token/login", wait_until="domcontentloaded")
        yield page
