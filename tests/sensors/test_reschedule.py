"""Reschedule mode: the check count from Airflow's reschedule count, and the first check's blockers
rebuilt at success (Airflow clears a task's XComs before every rescheduled try)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.sensors import debitura as sensor_module
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

from .conftest import clear_counters, counters


class FakeTI:
    """The bits of a task instance the sensor uses: XCom push, and (Airflow 3) the first try's start."""

    def __init__(self, first_at: datetime | None = None) -> None:
        self.first_at = first_at
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value

    def get_first_reschedule_date(self, context) -> datetime | None:
        return self.first_at


class Row:
    def __init__(self, start_date: datetime) -> None:
        self.start_date = start_date


def sensor(**kwargs) -> DebituraCaseUnblockedSensor:
    kwargs.setdefault("task_id", "gate")
    kwargs.setdefault("poke_interval", 1)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("mode", "reschedule")
    return DebituraCaseUnblockedSensor(**kwargs)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# -- the derivation helpers, without I/O --


def test_reschedule_count_from_airflow3_context():
    assert sensor_module._reschedule_count({"task_reschedule_count": 3}) == 3
    assert sensor_module._reschedule_count({"task_reschedule_count": 0}) == 0


def test_reschedule_count_falls_back_to_airflow2_rows(monkeypatch):
    rows = [Row(datetime(2026, 1, 1, tzinfo=timezone.utc)), Row(datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc))]
    monkeypatch.setattr(sensor_module, "_airflow2_reschedules", lambda context: rows)
    assert sensor_module._reschedule_count({"ti": object()}) == 2
    assert sensor_module._first_try_start({"ti": object()}) == rows[0].start_date


def test_airflow2_lookup_without_a_db_counts_nothing():
    # No metadata DB in unit tests: the lookup fails quietly and the count starts from this check.
    assert sensor_module._airflow2_reschedules({"ti": FakeTI()}) == []
    assert sensor_module._reschedule_count({}) == 0
    assert sensor_module._first_try_start({}) is None


def test_first_try_start_from_airflow3_ti():
    first = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert sensor_module._first_try_start({"task_reschedule_count": 2, "ti": FakeTI(first)}) == first


# -- poke in reschedule mode against the sandbox --


def test_first_try_records_blockers_itself_without_extra_requests(debitura_conn, case_ids):
    op = sensor(case_id=case_ids["INV-1005"])
    debitura_conn.control("POST", f"/tasks/{_account_task(debitura_conn)}/solve", {})
    clear_counters(debitura_conn)
    result = op.poke({"task_reschedule_count": 0, "ti": FakeTI()})
    assert result.is_done
    assert result.xcom_value["checks"] == 1 and result.xcom_value["blocked_by_on_first_check"] == []
    assert counters(debitura_conn)["total"] == 2  # no derivation on the first try


def test_blocked_try_counts_prior_checks(debitura_conn, case_ids):
    op = sensor(case_id=case_ids["INV-1001"])
    ti = FakeTI()
    result = op.poke({"task_reschedule_count": 4, "ti": ti})
    assert not result.is_done
    assert op._checks == 5
    assert ti.pushed  # the solution URL for the "Resolve in Debitura" link


def test_later_try_rebuilds_first_blockers_from_solved_tasks(debitura_conn):
    """Tasks open when the first try started, solved since: the first check's blockers. Tasks solved
    before it or created after it are not. 120 older solved account-level tasks push the relevant one
    past page 1 of the oldest-first account listing."""
    now = datetime.now(timezone.utc)
    long_ago = now - timedelta(days=30)
    scenario = {
        "name": "reschedule-derivation",
        "cases": [{"creditorReference": "GATE"}],
        "tasks": [
            {"id": "00000000-0000-4000-8000-000000000001", "type": "ReplyToChat", "caseCreditorReference": "GATE",
             "status": "Solved", "minutesAgo": 180, "dateSolved": iso(now - timedelta(hours=1))},
            {"id": "00000000-0000-4000-8000-000000000002", "type": "ClientInputRequired",
             "caseCreditorReference": "GATE", "minutesAgo": 90},
            {"id": "00000000-0000-4000-8000-000000000003", "type": "AssignBankAccount", "minutesAgo": 30},
        ]
        + [
            {"type": "SignContract", "status": "Solved", "dateCreated": iso(long_ago + timedelta(minutes=i)),
             "dateSolved": iso(long_ago + timedelta(minutes=i, seconds=30))}
            for i in range(120)
        ],
    }  # fmt: skip
    debitura_conn.control("POST", "/scenario", scenario)
    # The sandbox's clock is anchored at load and can trail this process's by milliseconds; the
    # derivation compares Airflow's time with Debitura's, so leave a margin either side.
    time.sleep(0.2)
    first_at = datetime.now(timezone.utc)
    time.sleep(0.2)
    for task_id in ("00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"):
        debitura_conn.control("POST", f"/tasks/{task_id}/solve", {})
    late = {"id": "00000000-0000-4000-8000-000000000004", "type": "MoreInfoNeeded", "caseCreditorReference": "GATE"}
    debitura_conn.control("POST", "/tasks", late)  # created after the first try started
    debitura_conn.control("POST", f"/tasks/{late['id']}/solve", {})

    op = sensor(creditor_reference="GATE")
    op.resolve_case_id()
    clear_counters(debitura_conn)
    result = op.poke({"task_reschedule_count": 2, "ti": FakeTI(first_at)})
    assert result.is_done
    record = result.xcom_value
    assert record["case_id"] == case_id_for("GATE")
    assert record["checks"] == 3
    assert sorted(t["id"] for t in record["blocked_by_on_first_check"]) == [
        "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003",
    ]
    # The check (2) + the case's solved tasks (1) + every page of solved account-level tasks (2).
    assert counters(debitura_conn)["total"] == 5


def test_derivation_failure_gives_none_but_checks_stay_right(debitura_conn, case_ids):
    from airflow_provider_debitura.exceptions import DebituraTransportError

    debitura_conn.control("POST", f"/tasks/{_account_task(debitura_conn)}/solve", {})
    op = sensor(case_id=case_ids["INV-1005"])
    real = op.hook.get_case_tasks

    def solved_read_fails(case_id, *, status="Open", types=None):
        if status == "Solved":
            raise DebituraTransportError("connection reset", method="GET", path=f"/cases/{case_id}/tasks")
        return real(case_id, status=status, types=types)

    op.hook.get_case_tasks = solved_read_fails
    result = op.poke({"task_reschedule_count": 2, "ti": FakeTI(datetime.now(timezone.utc))})
    assert result.is_done  # the gate's verdict does not depend on the derivation
    assert result.xcom_value["checks"] == 3 and result.xcom_value["blocked_by_on_first_check"] is None


def test_no_first_try_start_gives_none(debitura_conn, case_ids):
    debitura_conn.control("POST", f"/tasks/{_account_task(debitura_conn)}/solve", {})
    result = sensor(case_id=case_ids["INV-1005"]).poke({"task_reschedule_count": 1, "ti": FakeTI(None)})
    assert result.is_done
    assert result.xcom_value["checks"] == 2 and result.xcom_value["blocked_by_on_first_check"] is None


def _account_task(sb) -> str:
    with sb.client() as client:
        return next(t["id"] for t in client.get("/tasks", params={"PageSize": 100}).json()["tasks"] if not t["caseId"])
