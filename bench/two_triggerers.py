"""Benchmark: two real triggerers on one API key, the request budget split between them (issue 24, item 4).

    .venv/bin/python bench/two_triggerers.py [--processes 2] [--limit 20] [--observe 90]

Starts the sandbox with its minute limited to ``--limit`` requests (its 429 answers are the key being broken),
then ``airflow standalone`` (scheduler, api-server, dag-processor and a triggerer) and a second ``airflow
triggerer`` on the same metadata database, both with ``[triggerer] capacity`` 4, so the eight deferred gates of
``bench/dags/two_triggerers.py`` split four and four. The connection's extras give the deployment the whole
``--limit`` a minute and ``budget_processes`` = ``--processes``: each triggerer may send ``limit / processes``.
Every gate checks each second (``backoff=False``): unbudgeted, each triggerer's shared poll would send about 60
requests a minute. After ``--observe`` seconds with all eight deferred on two triggerers it reports the
sandbox's requests, its peak minute and its 429 answers, and each process's "request budget is tight" lines;
then it clears the one account-level task that blocks every gate and times the gates' opening.

``--processes 2`` is the documented setting for two triggerers; ``--processes 1`` is the mistake it guards
against (each process takes the whole share, together twice the key). Stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.airflow_harness import migrated_template  # noqa: E402
from helpers.standalone import BIN, StandaloneAirflow  # noqa: E402
from helpers.waiting import free_port, wait_until  # noqa: E402

from airflow_provider_debitura.sandbox import SandboxServer  # noqa: E402

KEY = "two-triggerers-key-5e1b"
GATES = 8
TIGHT = "request budget is tight"


def scenario() -> dict[str, Any]:
    """Eight cases and one open account-level task (AssignBankAccount), which blocks every gate."""
    cases = [{"creditorReference": f"TT-{i}", "grossAmount": 100.0 * i} for i in range(1, GATES + 1)]
    return {"name": "two-triggerers", "cases": cases, "tasks": [{"type": "AssignBankAccount"}]}


def assignments(db: Path) -> dict[int, int]:
    """Triggers per triggerer job id, from Airflow's metadata database."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute(
            "SELECT triggerer_id, COUNT(*) FROM trigger WHERE triggerer_id IS NOT NULL GROUP BY triggerer_id"
        ).fetchall()
    return {int(job): int(n) for job, n in rows}


def tight_lines(*paths: Path) -> list[int]:
    """'Request budget is tight' lines in each log (a folder: every file under it)."""
    counts = []
    for path in paths:
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        counts.append(sum(f.read_text(errors="replace").count(TIGHT) for f in files if f.exists()))
    return counts


def run(processes: int, limit: int, observe: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="two-triggerers-"))
    home, dags = work / "home", work / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(ROOT / "bench" / "dags" / "two_triggerers.py", dags)
    shutil.copyfile(migrated_template(work / "shared"), home / "airflow.db")
    with SandboxServer(scenario(), api_key=KEY) as sb:
        sb.control("PUT", "/config", json={"rateLimitPerMinute": limit})
        blocker = next(t for t in sb.state.dump()["tasks"] if t["type"] == "AssignBankAccount")
        conn = sb.conn_dict()
        conn["extra"].update({"budget_per_minute": limit, "budget_processes": processes})
        config = {
            "AIRFLOW_CONN_DEBITURA_DEFAULT": json.dumps(conn),
            "AIRFLOW__TRIGGERER__CAPACITY": str(GATES // 2),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        }
        with StandaloneAirflow(home, dags, config=config, parallelism=4) as airflow:
            second_log = work / "second-triggerer.log"
            env = {**airflow.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
            with second_log.open("wb") as out:
                second = subprocess.Popen(
                    [str(BIN / "airflow"), "triggerer", "--capacity", str(GATES // 2), "--skip-serve-logs"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            try:
                return watch(airflow, sb, second_log, blocker["id"], observe) | {"processes": processes, "limit": limit}
            finally:
                second.terminate()
                try:
                    second.wait(60)
                except subprocess.TimeoutExpired:
                    second.kill()
                shutil.rmtree(work, ignore_errors=True)


def watch(airflow: StandaloneAirflow, sb: SandboxServer, second_log: Path, blocker: str, observe: float) -> dict:
    airflow.wait_for_dag("two_triggerers")
    run_id = airflow.trigger("two_triggerers")
    db = airflow.home / "airflow.db"
    wait_until(lambda: sorted(assignments(db).values()) == [4, 4], 300, "8 triggers on two triggerers", 1.0)
    held = assignments(db)
    sb.control("DELETE", "/rate-limits")  # count from here: both triggerers polling, every gate deferred
    time.sleep(observe)  # a benchmark's observation window, not a test's wait
    spend = sb.control("GET", "/rate-limits").json()["keys"]["configured"]
    sb.control("POST", f"/tasks/{blocker}/solve", json={})
    cleared = time.monotonic()
    tasks = [f"gate_{i}" for i in range(1, GATES + 1)]

    def states() -> list[str | None]:
        return [airflow.task_state("two_triggerers", run_id, t) for t in tasks]

    wait_until(lambda: all(s in ("success", "failed") for s in states()), 600, "every gate to end", 1.0)
    opened_after = time.monotonic() - cleared
    return {
        "triggers_per_triggerer": held,
        "requests": spend["requests"],
        "refused_429": spend["refused"],
        "peak_minute": spend["minute"]["peak"],
        "observe_s": observe,
        "tight_lines_standalone_second_tasklogs": tight_lines(airflow.log_path, second_log, airflow.home / "logs"),
        "gate_states": states(),
        "all_open_after_s": round(opened_after, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="the budget_processes extra")
    parser.add_argument("--limit", type=int, default=20, help="the sandbox's minute and the deployment's share")
    parser.add_argument("--observe", type=float, default=90.0, help="seconds to count requests")
    args = parser.parse_args()
    result = run(args.processes, args.limit, args.observe)
    print(json.dumps(result, indent=2))
    ok = result["gate_states"] == ["success"] * GATES and (args.processes < 2 or result["refused_429"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
