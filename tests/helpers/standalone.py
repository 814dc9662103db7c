"""Airflow ``standalone`` (api-server, scheduler, dag-processor, triggerer) on loopback, started and stopped whole.

Used by the browser tests (``tests/ui``) and by ``make airflow`` (``scripts/airflow_ui.py``)::

    with StandaloneAirflow(home, dags_folder) as airflow:      # port=0: a free loopback port
        airflow.url, airflow.username, airflow.password
        airflow.cli("connections", "add", ...)                  # the airflow CLI, same home and config
        airflow.api("GET", "/api/v2/dags").json()               # REST, with a token of the admin user
        airflow.wait_for_dag("example_debitura_case_gate")

Everything binds to 127.0.0.1 except Airflow's two log servers, which always listen on every interface
(their ports are free ones, not 8793/8794, so several instances can run side by side). ``stop()`` ends the
whole process tree: SIGINT to ``standalone`` (its own clean shutdown), then SIGTERM and SIGKILL to whatever
is left of its process group and descendants, and waits until the ports are free.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil

from helpers.waiting import free_port, port_is_free, wait_until

BIN = Path(sys.executable).parent
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


class StandaloneAirflow:
    """One ``airflow standalone`` in a throwaway ``AIRFLOW_HOME`` (SQLite, LocalExecutor, simple auth manager).

    :param home: the ``AIRFLOW_HOME`` (created; an existing one is reused, database included).
    :param dags_folder: the DAGs folder.
    :param port: the api-server's port on 127.0.0.1; 0 picks a free one.
    :param username: the simple auth manager's admin user.
    :param password: its password; ``None`` keeps the one stored in ``home`` or generates one.
    :param config: extra ``AIRFLOW__SECTION__KEY`` variables (win over the defaults here).
    :param parallelism: task slots (LocalExecutor starts one worker process per slot).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        port: int = 0,
        username: str = "admin",
        password: str | None = None,
        config: dict[str, str] | None = None,
        parallelism: int = 4,
    ) -> None:
        self.home = Path(home)
        self.dags_folder = Path(dags_folder)
        self.port = port or free_port()
        self.username = username
        self.password = password or self._stored_password() or secrets.token_urlsafe(12)
        self.config = dict(config or {})
        self.parallelism = parallelism
        self.log_ports = (free_port(), free_port())
        self.log_path = self.home / "standalone.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def _stored_password(self) -> str | None:
        try:
            return json.loads(self.password_file.read_text()).get(self.username)
        except (OSError, ValueError, AttributeError):
            return None

    @property
    def env(self) -> dict[str, str]:
        """The environment of every Airflow process started here (inherited AIRFLOW_* settings are dropped)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_VAR_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.*",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "NO_COLOR": "1",
            }
        )
        env.update(self.config)
        return env

    # -- lifecycle --

    def start(self, timeout: float = 420) -> StandaloneAirflow:
        """Start ``airflow standalone`` and wait until the API answers and every component is healthy.

        :param timeout: seconds to wait (a cold start takes about a minute on 2 busy cores).
        """
        if not port_is_free(self.port):
            raise RuntimeError(f"Port {self.port} on 127.0.0.1 is in use: choose another one for Airflow.")
        self.home.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(json.dumps({self.username: self.password}) + "\n")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "airflow"), "standalone"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() can reach every child
        )
        log.close()
        try:
            wait_until(self._healthy, timeout, f"Airflow standalone at {self.url} (log: {self.log_path})", 1.0)
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        return all((health.get(name) or {}).get("status") == "healthy" for name in COMPONENTS)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def processes(self) -> list[psutil.Process]:
        """``standalone`` and every process it started that is still alive (its group and descendants)."""
        if self.process is None:
            return []
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                found[proc.pid] = proc
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if os.getpgid(proc.pid) == self.process.pid:
                    found[proc.pid] = proc
        return [p for p in found.values() if alive(p)]

    def stop(self, timeout: float = 60) -> None:
        """Stop every process of this instance and wait until its ports are free.

        :param timeout: seconds for the clean shutdown before SIGTERM, then SIGKILL, hit what is left.
        """
        if self.process is None:
            return
        procs = self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        _, left = psutil.wait_procs(procs, timeout=timeout * 0.6)
        for sig, wait in ((signal.SIGTERM, timeout * 0.3), (signal.SIGKILL, timeout * 0.1)):
            left = [p for p in set(left) | set(self.processes()) if alive(p)]
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            _, left = psutil.wait_procs(left, timeout=wait)
        self.process.wait(timeout=10)
        ports = (self.port, *self.log_ports)
        wait_until(lambda: all(port_is_free(p) for p in ports), 30, f"ports {ports} to be free")
        self.process = None

    def __enter__(self) -> StandaloneAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- using it --

    def cli(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` against this instance's home and database.

        :param args: the CLI arguments, e.g. ``("connections", "get", "debitura_default", "-o", "json")``.
        :param timeout: seconds.
        :param check: raise with the output when the command fails.
        """
        proc = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def token(self) -> str:
        """A JWT for the admin user (the same one the UI's login form gets)."""
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST call as the admin user, e.g. ``api("GET", "/api/v2/dags/my_dag")``.

        :param method: HTTP method.
        :param path: path under the api-server's URL.
        :param kwargs: passed to ``httpx.request`` (``json=``, ``params=``, ...).
        """
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; returns the DAG's REST record.

        :param dag_id: the DAG id.
        :param timeout: seconds.
        """

        def parsed() -> dict[str, Any] | None:
            response = self.api("GET", f"/api/v2/dags/{dag_id}")
            return response.json() if response.status_code == 200 else None

        return wait_until(parsed, timeout, f"DAG {dag_id} to be parsed", 1.0)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` and start a manual run now; returns its run id.

        :param dag_id: the DAG id.
        :param conf: the run's conf (params).
        """
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        response = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return response.json().get("state") if response.status_code == 200 else None

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 360) -> str:
        """Wait until a task instance is in one of ``states``; returns the state.

        :param dag_id: the DAG id.
        :param run_id: the run id.
        :param task_id: the task id (unmapped).
        :param states: e.g. ``{"deferred"}`` or ``{"success", "failed"}``.
        :param timeout: seconds.
        """

        def reached() -> str | None:
            state = self.task_state(dag_id, run_id, task_id)
            return state if state in states else None

        return wait_until(reached, timeout, f"{dag_id}.{task_id} in run {run_id} to be one of {sorted(states)}", 1.0)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task instance's log as the UI shows it (for an assertion's message).

        :param dag_id: the DAG id.
        :param run_id: the run id.
        :param task_id: the task id (unmapped).
        :param try_number: the try.
        """
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        response = self.api("GET", path, params={"full_content": "true"}, headers={"Accept": "application/json"})
        if response.status_code != 200:
            return f"(no log: HTTP {response.status_code})"
        content = response.json().get("content")
        if isinstance(content, list):  # Airflow 3: structured log lines
            return "\n".join(line.get("event", str(line)) if isinstance(line, dict) else str(line) for line in content)
        return str(content)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 420) -> str:
        """Wait until a DAG run has finished; returns ``success`` or ``failed``.

        :param dag_id: the DAG id.
        :param run_id: the run id.
        :param timeout: seconds.
        """

        def finished() -> str | None:
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json().get("state")
            return state if state in ("success", "failed") else None

        return wait_until(finished, timeout, f"run {run_id} of {dag_id} to finish", 1.0)


def alive(proc: psutil.Process) -> bool:
    """True while the process runs (a zombie counts as gone)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
