"""Run DAGs in a real Airflow: ``airflow dags test`` in a process of its own on a throwaway SQLite metadata DB.

A separate process (not ``dag.test()`` in the pytest process) because that is what users and the README
run, it needs the DAG in a real DAGs folder (Airflow 3.3 requires a bundle), and it keeps Airflow's global
state (settings, ORM, logging) out of the test process. Results are read back from the SQLite DB.

With ``warm=True`` each run is a fork of a process that has imported Airflow once (``helpers/zygote.py``)
running Airflow's own CLI entry point, which halves the CPU of a run on Airflow 3.3; ``DEBITURA_COLD_AIRFLOW=1``
runs every DAG in a fresh ``airflow`` process instead. The metadata DB is migrated once per test run
(:func:`migrated_template`) and copied for each ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from helpers.zygote import Zygote

BIN = Path(sys.executable).parent
COLD = os.environ.get("DEBITURA_COLD_AIRFLOW", "") not in ("", "0")


@dataclass
class DagRunResult:
    dag_id: str
    returncode: int
    output: str
    states: dict[str, str | None] = field(default_factory=dict)
    xcoms: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    run_state: str | None = None
    durations: dict[str, float] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self.xcoms[(task_id, key, map_index)]

    def mapped_xcoms(self, task_id: str, key: str = "return_value") -> list[Any]:
        return [
            v
            for (t, k, i), v in sorted(self.xcoms.items(), key=lambda kv: kv[0][2])
            if t == task_id and k == key and i >= 0
        ]

    def explain(self) -> str:
        return (
            f"dag {self.dag_id} rc={self.returncode} run={self.run_state} states={self.states}\n{self.output[-6000:]}"
        )


class AirflowEnv:
    """One migrated ``AIRFLOW_HOME``; DAG runs share it (each DAG id gets a fresh logical date).

    :param home: the ``AIRFLOW_HOME``.
    :param dags_folder: the DAGs folder.
    :param warm: run DAGs in forks of one process that imported Airflow (see the module docstring).
    """

    def __init__(self, home: Path, dags_folder: Path, *, warm: bool = False) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.db = home / "airflow.db"
        self.warm = warm and not COLD
        self._zygote: Zygote | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_") and not k.startswith("AIRFLOW__")
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.*",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def migrate(self, template: Path | None = None) -> None:
        """Create the metadata DB: a copy of ``template`` (a migrated ``airflow.db``), or ``airflow db migrate``.

        :param template: a database migrated by the same Airflow version.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if template is not None:
            shutil.copyfile(template, self.db)
            return
        proc = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

    def run_dag(
        self,
        dag_id: str,
        *,
        conn_json: str | None = None,
        env: dict[str, str] | None = None,
        conf: dict[str, Any] | None = None,
        timeout: float = 240,
    ) -> DagRunResult:
        run_env = self.env
        if conn_json is not None:
            run_env["AIRFLOW_CONN_DEBITURA_DEFAULT"] = conn_json
        run_env.update(env or {})
        args = ["dags", "test", dag_id]
        if conf:
            args += ["--conf", json.dumps(conf)]
        returncode, output = self._airflow(args, run_env, timeout)
        result = DagRunResult(dag_id, returncode, output)
        self._read_back(result)
        return result

    def cli(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        """``airflow <args>`` on this home and configuration; (exit code, stdout and stderr).

        :param args: the CLI arguments, e.g. ``("providers", "list")``.
        :param timeout: seconds.
        """
        return self._airflow(list(args), self.env, timeout)

    def _airflow(self, args: list[str], run_env: dict[str, str], timeout: float) -> tuple[int, str]:
        zygote = self._warm_process(run_env)
        if zygote is not None:
            return zygote.run(["airflow", *args], run_env, timeout)
        proc = subprocess.run(
            [str(BIN / "airflow"), *args], env=run_env, capture_output=True, text=True, timeout=timeout
        )
        return proc.returncode, proc.stdout + "\n" + proc.stderr

    def _warm_process(self, run_env: dict[str, str]) -> Zygote | None:
        """The warm process for a run with ``run_env``, or None for a cold run (not warm, or a run whose
        Airflow configuration differs from the one the warm process imported)."""
        if not self.warm:
            return None
        if self._zygote is None:
            self._zygote = Zygote(self.env, python=str(BIN / "python"))
        return self._zygote if self._zygote.compatible(run_env) else None

    def close(self) -> None:
        """Stop the warm process, if one was started."""
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()

    def _read_back(self, result: DagRunResult) -> None:
        with closing(sqlite3.connect(self.db)) as db:
            row = db.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (result.dag_id,)
            ).fetchone()
            if row is None:
                return
            run_id, result.run_state = row
            for task_id, map_index, state, start, end in db.execute(
                "SELECT task_id, map_index, state, start_date, end_date FROM task_instance WHERE dag_id=? AND run_id=?",
                (result.dag_id, run_id),
            ):
                name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
                result.states[name] = state
                if start and end:
                    result.durations[name] = (_when(end) - _when(start)).total_seconds()
            for task_id, key, map_index, value in db.execute(
                "SELECT task_id, key, map_index, value FROM xcom WHERE dag_id=? AND run_id=?",
                (result.dag_id, run_id),
            ):
                result.xcoms[(task_id, key, map_index)] = _decode(value)

    def task_logs(self, dag_id: str) -> str:
        """Every task log file written for ``dag_id`` (for secret-leak and log-content checks)."""
        parts = []
        for path in sorted((self.home / "logs").rglob("*")):
            if path.is_file() and f"dag_id={dag_id}" in str(path):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _airflow_major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


def airflow_major() -> int:
    return _airflow_major()


def make_env(tmp: Path, dags_folder: Path, *, template: Path | None = None, warm: bool = False) -> AirflowEnv:
    """A fresh ``AIRFLOW_HOME`` under ``tmp`` with a migrated DB (copied from ``template`` when given).

    :param tmp: the parent folder.
    :param dags_folder: the DAGs folder.
    :param template: a migrated ``airflow.db`` (see :func:`migrated_template`).
    :param warm: see :class:`AirflowEnv`.
    """
    home = tmp / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    env = AirflowEnv(home, dags_folder, warm=warm)
    env.migrate(template)
    return env


def migrated_template(shared: Path) -> Path:
    """``shared/airflow-<version>/airflow-home/airflow.db``, migrated by the first caller; callers in other
    processes (pytest-xdist workers) wait for it under a file lock and then reuse it.

    :param shared: a folder every caller of the run sees (e.g. the parent of pytest-xdist's worker temp dirs).
    """
    from importlib.metadata import version

    base = shared / f"airflow-{version('apache-airflow')}"
    base.mkdir(parents=True, exist_ok=True)
    db = base / "airflow-home" / "airflow.db"
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (base / ".migrated").exists():
                env = AirflowEnv(base / "airflow-home", base / "no-dags")
                env.migrate()
                (base / ".migrated").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return db
