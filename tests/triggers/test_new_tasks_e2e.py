"""End to end in a real Airflow 3: dag-processor + triggerer + scheduler against the sandbox.

Proves that the watcher, run by Airflow's own triggerer from the DAG's ``AssetWatcher``:
- records its first-start baseline in Airflow's metadata (the asset state store), firing nothing;
- turns one task added through the sandbox's control plane into exactly one asset event and one DAG run;
- creates nothing more while nothing new appears;
- after the triggerer is killed and restarted, resumes from the stored state: no second run for the
  task it already fired for, and a run for a task added afterwards;
- at 20,000 open tasks, fires exactly once per matching task, keeps that in the asset state store
  (size and write time measured through the real supervisor channel) and survives a SIGKILL;
- across a redeploy that changes the filter, and its revert, loses nothing created during the
  deploys and fires nothing twice.

Tasks of the created runs are not required to execute (that would need the api-server).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

pytest.importorskip("airflow.sdk", reason="event-driven scheduling (AssetWatcher) needs Airflow 3")
try:
    from airflow.sdk import AssetWatcher  # noqa: F401
except ImportError:  # pragma: no cover - Airflow 2.11
    pytest.skip("AssetWatcher needs Airflow 3", allow_module_level=True)

from helpers.watcher import stored_state, stored_values

from airflow_provider_debitura.triggers.watcher.ids import created_epoch
from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY, WATERMARK_LAG, Mark, SeenState

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = tuple(int(part) for part in version("apache-airflow").split(".")[:2])
"""Airflow 3.3 added the asset state store; before, the watcher keeps its state in a Variable per filter."""
BIN = Path(sys.executable).parent
DAG_ID = "event_new_tasks"


class Airflow:
    """A throwaway AIRFLOW_HOME with the three long-running components as subprocesses."""

    def __init__(self, home: Path, conn_json: str) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "dags" / "event_new_tasks.py", self.dags / "event_new_tasks.py")
        self.db = home / "airflow.db"
        self.logs = home / "proc-logs"
        self.logs.mkdir()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        self.env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # One key for the three components: started together on a home with no airflow.cfg yet, each
                # would otherwise write a config with a key of its own, and the triggerer could not read the
                # trigger arguments the dag-processor encrypted.
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A killed triggerer's triggers move to a live one once it misses heartbeats this long.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_DEBITURA_DEFAULT": conn_json,
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
            }
        )

    def migrate(self, template: Path) -> None:
        """The metadata DB: a copy of the run's migrated one (``migrated_db``)."""
        shutil.copyfile(template, self.db)

    def start(self, component: str) -> None:
        log = open(self.logs / f"{component}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[component] = subprocess.Popen(
            [str(BIN / "airflow"), component],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        log.close()

    def stop(self, component: str, sig: int = signal.SIGTERM, wait: float = 20) -> None:
        self._signal(component, sig)
        self._reap(component, wait)

    def stop_all(self) -> None:
        """SIGTERM to every component at once, then wait for them: one shutdown's time, not three in turn."""
        for component in list(self.procs):
            self._signal(component, signal.SIGTERM)
        for component in list(self.procs):
            self._reap(component, 20)

    def _signal(self, component: str, sig: int) -> None:
        proc = self.procs[component]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def _reap(self, component: str, wait: float) -> None:
        proc = self.procs.pop(component)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def log(self, component: str) -> str:
        path = self.logs / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def set_watched_types(self, types: list[str]) -> None:
        """Deploy a new version of the DAG whose watcher has another ``task_types`` filter."""
        path = self.dags / "event_new_tasks.py"
        text = re.sub(r"task_types=\[[^\]]*\]", f"task_types={types!r}", path.read_text())
        path.write_text(text)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db, timeout=30)) as db:
            return db.execute(sql, args).fetchall()

    def dag_runs(self) -> list[tuple[Any, ...]]:
        return self.query("SELECT run_id, run_type FROM dag_run WHERE dag_id = ? ORDER BY id", DAG_ID)

    def asset_event_payloads(self) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ? ORDER BY e.id",
            "e2e_debitura_new_chat_tasks",
        )
        return [json.loads(extra)["payload"] for (extra,) in rows]

    def asset_event_ids(self) -> list[str]:
        return [payload["id"] for payload in self.asset_event_payloads()]

    def stored_state(self) -> dict[str, Any] | None:
        """What the watcher stored, by key (``helpers.watcher.stored_values``)."""
        return stored_values(self.db, "e2e_debitura_new_chat_tasks", self.env["AIRFLOW__CORE__FERNET_KEY"])

    def explain(self) -> str:
        return "\n".join(f"---- {c} ----\n{self.log(c)[-4000:]}" for c in ("dag-processor", "triggerer", "scheduler"))


def stored_ids(airflow: Airflow) -> set[str]:
    state = stored_state(airflow.db, "e2e_debitura_new_chat_tasks", airflow.env["AIRFLOW__CORE__FERNET_KEY"])
    return set(state.ids) if state is not None else set()


def only_mark(stored: dict[str, Any]) -> Mark:
    state = SeenState.from_json(stored[ASSET_STATE_KEY])
    assert state is not None and len(state.marks) == 1, stored
    return next(iter(state.marks.values()))


def wait_for(what: str, condition: Callable[[], Any], airflow: Airflow, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except sqlite3.OperationalError:  # table not there yet / locked
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{airflow.explain()}")
        time.sleep(0.5)


@pytest.fixture
def airflow(tmp_path: Path, sandbox, migrated_db: Path) -> Iterator[Airflow]:
    env = Airflow(tmp_path / "home", sandbox.conn_json())
    env.migrate(migrated_db)
    try:
        yield env
    finally:
        env.stop_all()


def test_one_new_task_starts_exactly_one_dag_run_and_a_restart_replays_nothing(airflow: Airflow, sandbox):
    started = time.monotonic()
    for component in ("dag-processor", "triggerer", "scheduler"):
        airflow.start(component)

    # The triggerer runs the watcher; its first round stores the baseline in the asset state store.
    state = wait_for("the watcher's first-start baseline", airflow.stored_state, airflow, timeout=120)
    stages = {"baseline stored": time.monotonic() - started}
    assert list(state) == [ASSET_STATE_KEY]  # one key per asset, whatever the filter
    mark = only_mark(state)
    listed = sandbox.client().get("/tasks", params={"PageSize": 100, "type": "ReplyToChat"}).json()["tasks"]
    newest_chat = max(t["dateCreated"] for t in listed)
    # The baseline: a watermark the documented lag before the newest backlog task, the backlog's ids after it.
    assert mark.cutoff is not None and mark.cutoff >= created_epoch(newest_chat) - WATERMARK_LAG
    assert airflow.dag_runs() == []  # first start replays nothing

    task = sandbox.control("POST", "/tasks", {"type": "ReplyToChat", "caseCreditorReference": "INV-1005"}).json()
    added_at = time.monotonic()
    runs = wait_for("a DAG run for the new task", airflow.dag_runs, airflow, timeout=60)
    reaction = time.monotonic() - added_at
    assert [run_type for _, run_type in runs] == ["asset_triggered"]
    payloads = airflow.asset_event_payloads()
    assert [p["id"] for p in payloads] == [task["id"]]
    assert payloads[0] == task  # the task's camelCase JSON travels as the asset event's payload

    # Nothing new: no second run (the queue is polled every second, so ~6 rounds pass here).
    time.sleep(6)
    assert len(airflow.dag_runs()) == 1 and len(airflow.asset_event_payloads()) == 1
    # stored 30 s after its event (triggers/watcher/tracker.py, PERSIST_GRACE), so a crash before that fires it again
    wait_for("the fired task in the stored state", lambda: task["id"] in stored_ids(airflow), airflow, 90)

    # Kill the triggerer hard (no graceful shutdown) and start a new one: it resumes from the stored state.
    airflow.stop("triggerer", signal.SIGKILL)
    airflow.start("triggerer")
    wait_for(
        "the restarted watcher resuming",
        lambda: airflow.log("triggerer").count("resumed with") >= 1,
        airflow,
        timeout=90,
    )
    stages["restarted watcher resumed"] = time.monotonic() - started
    time.sleep(5)
    assert len(airflow.dag_runs()) == 1, airflow.explain()
    assert len(airflow.asset_event_payloads()) == 1

    second = sandbox.control("POST", "/tasks", {"type": "ReplyToChat", "caseCreditorReference": "INV-1001"}).json()
    wait_for(
        "an asset event for the task added after the restart",
        lambda: len(airflow.asset_event_payloads()) == 2,
        airflow,
        60,
    )
    assert [p["id"] for p in airflow.asset_event_payloads()] == [task["id"], second["id"]]
    assert (
        "resumed with" in airflow.log("triggerer")
        and "first start" not in airflow.log("triggerer").split("resumed with")[-1]
    )
    stages["whole test"] = time.monotonic() - started
    print(f"e2e: new task -> DAG run in {reaction:.1f} s; " + ", ".join(f"{k} at {v:.0f} s" for k, v in stages.items()))


def open_ids(sandbox, type_: str) -> set[str]:
    return {t["id"] for t in sandbox.state.list_tasks("Open") if t["type"] == type_}


SAVED = re.compile(r"state saved \((\d+) seen id\(s\), (\d+) byte\(s\), (\d+) ms\)")


@pytest.mark.scale
@pytest.mark.timeout(900)
def test_20000_open_tasks_each_fire_once_and_the_asset_store_holds_the_state(airflow: Airflow, sandbox):
    """The watcher reads all 20,000 open tasks every round and fires for the ~2,000 it watches. (Watching
    the 6,000 chat tasks measured the same bytes per task; Airflow persists events at ~25/s on this
    machine, so that run took 9 minutes, most of it Airflow's.)"""
    sandbox.control("POST", "/scenario", {"name": "empty"})
    airflow.set_watched_types(["ClientInputRequired"])
    for component in ("dag-processor", "triggerer", "scheduler"):
        airflow.start(component)
    wait_for("the watcher's first-start baseline", airflow.stored_state, airflow, timeout=180)

    sandbox.control("POST", "/scenario", {"name": "large:20000"})
    loaded = time.monotonic()
    expected = open_ids(sandbox, "ClientInputRequired")
    assert len(expected) > 1_000
    wait_for("an event per watched task", lambda: len(airflow.asset_event_ids()) >= len(expected), airflow, 600)
    fired_in = time.monotonic() - loaded
    wait_for("the fired ids in the asset store", lambda: stored_ids(airflow) >= expected, airflow, 120)
    time.sleep(15)  # several more rounds of 200 pages each
    ids = airflow.asset_event_ids()
    assert len(ids) == len(set(ids)) and set(ids) == expected

    value = airflow.stored_state()[ASSET_STATE_KEY]
    size = len(json.dumps(value, separators=(",", ":")))
    assert size / len(expected) < 23, size
    writes = [(int(n), int(b), int(ms)) for n, b, ms in SAVED.findall(airflow.log("triggerer")) if int(n) >= 1_000]
    assert writes, airflow.explain()

    airflow.stop("triggerer", signal.SIGKILL)
    airflow.start("triggerer")
    wait_for("the restarted watcher resuming", lambda: "resumed with" in airflow.log("triggerer"), airflow, 180)
    time.sleep(15)
    assert len(airflow.asset_event_ids()) == len(expected)
    body = {"type": "ClientInputRequired", "caseCreditorReference": "LRG-000001"}
    new = sandbox.control("POST", "/tasks", body).json()
    wait_for("the task added after the restart", lambda: new["id"] in airflow.asset_event_ids(), airflow, 180)
    assert len(airflow.asset_event_ids()) == len(expected) + 1
    print(
        f"\ne2e at 20,000 open tasks: {len(expected)} watched tasks fired once each in {fired_in:.0f} s; "
        f"state {size} bytes ({size / len(expected):.1f} per fired task); asset-store writes of "
        f"{max(b for _, b, _ in writes)} bytes took {min(ms for *_, ms in writes)}-{max(ms for *_, ms in writes)} ms"
    )


@pytest.mark.skipif(
    AIRFLOW < (3, 3),
    reason="Before Airflow 3.3 the state is a Variable per filter: a filter change starts fresh, with first-start "
    "semantics (docs/event-driven.md)",
)
@pytest.mark.timeout(600)
def test_a_filter_change_and_its_revert_lose_nothing_and_fire_nothing_twice(airflow: Airflow, sandbox):
    for component in ("dag-processor", "triggerer", "scheduler"):
        airflow.start(component)
    wait_for("the watcher's first-start baseline", airflow.stored_state, airflow, timeout=180)
    assert airflow.asset_event_ids() == []

    # deploy 2 widens the filter; a chat task and a SignContract appear while it deploys
    airflow.set_watched_types(["ReplyToChat", "SignContract"])
    during = [
        sandbox.control("POST", "/tasks", {"type": "ReplyToChat", "caseCreditorReference": "INV-1002"}).json(),
        sandbox.control("POST", "/tasks", {"type": "SignContract"}).json(),
    ]
    during_ids = {t["id"] for t in during}
    wait_for("both tasks created during the deploy", lambda: set(airflow.asset_event_ids()) >= during_ids, airflow, 180)
    wait_for("two filters in the state", lambda: len(marks(airflow)) == 2, airflow, 60)
    # deploys are minutes apart in real life: let the fired tasks settle into the state (30 s grace)
    wait_for("the fired tasks in the state", lambda: stored_ids(airflow) >= during_ids, airflow, 120)

    # deploy 3 reverts to chat tasks only; a chat task appears afterwards
    revert_from = max(m.created for m in marks(airflow))
    airflow.set_watched_types(["ReplyToChat"])
    wait_for(
        "the reverted watcher running",
        lambda: marks(airflow)[0].created > revert_from if marks(airflow) else False,
        airflow,
        180,
    )
    after = sandbox.control("POST", "/tasks", {"type": "ReplyToChat", "caseCreditorReference": "INV-1003"}).json()
    wait_for("the chat task after the revert", lambda: after["id"] in airflow.asset_event_ids(), airflow, 120)
    time.sleep(6)
    ids = airflow.asset_event_ids()
    assert set(ids) == during_ids | {after["id"]}  # nothing lost, no backlog fired
    assert ids.count(after["id"]) == ids.count(during[1]["id"]) == 1
    # The chat task was fired by the old version as the new one was deploying. Airflow drops the events
    # of a trigger it has just replaced, so the new version fires such a task again unless the old one
    # had stored it (30 s grace): it arrives once, or twice when Airflow did keep the first event.
    assert ids.count(during[0]["id"]) in (1, 2), ids
    assert list(airflow.stored_state()) == [ASSET_STATE_KEY]  # nothing left behind under other keys


def marks(airflow: Airflow) -> list[Mark]:
    """The chat-only filter's mark first."""
    state = SeenState.from_json((airflow.stored_state() or {}).get(ASSET_STATE_KEY))
    found = list(state.marks.values()) if state is not None else []
    return sorted(found, key=lambda m: len(m.watch.types or ()))
