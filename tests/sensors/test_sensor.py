"""The sensor's poke and deferral logic against the sandbox (no metadata DB)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
from helpers.context import FakeTI
from helpers.sandbox import clear_counters, counters, solve_all_account_tasks

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.links import SOLUTION_URL_XCOM_KEY, DebituraResolveLink
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2
    from airflow.exceptions import TaskDeferred


def sensor(**kwargs) -> DebituraCaseUnblockedSensor:
    kwargs.setdefault("task_id", "gate")
    kwargs.setdefault("poke_interval", 1)
    kwargs.setdefault("timeout", 30)
    return DebituraCaseUnblockedSensor(**kwargs)


# -- parameters --


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"case_id": "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b", "creditor_reference": "INV-1"},
        {"case_id": "INV-1001"},
        {"creditor_reference": "INV-1", "blocking_task_types": ["ReplyToCht"]},
        {"creditor_reference": "INV-1", "poll_interval": 0},
        {"creditor_reference": "INV-1", "poke_interval": 0},
    ],
)
def test_bad_parameters_fail_at_parse_time(kwargs):
    with pytest.raises(DebituraConfigError):
        sensor(**kwargs)


def test_templated_values_are_checked_after_rendering():
    op = sensor(case_id="{{ params.case }}", blocking_task_types="{{ params.types }}")
    assert set(op.template_fields) >= {"case_id", "creditor_reference", "case_reference", "blocking_task_types"}
    op.case_id = "not-a-guid"
    with pytest.raises(DebituraConfigError):
        op.poke({})


def test_example_dag_xcom_pull_template_is_checked_after_rendering():
    # example_dags/example_debitura_case_gate.py passes exactly this.
    op = sensor(case_id="{{ ti.xcom_pull(task_ids='lookup_case')['id'] }}", deferrable=True)
    assert op.case_id.startswith("{{")
    op.case_id = "INV-1001"  # what a bad lookup could render to: caught at the first check
    with pytest.raises(DebituraConfigError, match="case_id"):
        op.execute({})


def test_xcomarg_is_checked_after_resolution():
    import pendulum

    try:
        from airflow.sdk import DAG, task
    except ImportError:  # Airflow 2
        from airflow import DAG
        from airflow.decorators import task

    with DAG("xcomarg_gate", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):

        @task
        def lookup_case() -> dict:
            return {"id": "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b"}

        op = sensor(case_id=lookup_case()["id"], blocking_task_types=lookup_case()["types"])
    assert not isinstance(op.case_id, str)  # left for Airflow to resolve
    op.case_id, op.blocking_task_types = "not-a-guid", None
    with pytest.raises(DebituraConfigError):
        op.poke({})


def test_two_templated_selectors_may_leave_one_empty():
    op = sensor(case_id="{{ params.case_id }}", creditor_reference="{{ params.ref }}", include_account_tasks=False)
    op.case_id, op.creditor_reference = "", "INV-1"
    assert op._selector().creditor_reference == "INV-1"
    op.case_id = "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b"
    with pytest.raises(DebituraConfigError, match="exactly one"):
        op._selector()


def test_extra_link_declared():
    assert any(isinstance(link, DebituraResolveLink) for link in DebituraCaseUnblockedSensor.operator_extra_links)


# -- poke against the sandbox --


def test_account_level_blocker_then_clears_with_two_requests_per_check_and_three_to_open(debitura_conn, case_ids):
    op = sensor(creditor_reference="INV-1001")
    ti = FakeTI()
    op.resolve_case_id()  # the one-time lookup, not part of a check
    clear_counters(debitura_conn)
    first = op.poke({"ti": ti})
    assert not first.is_done
    assert counters(debitura_conn)["total"] == 2
    assert ti.xcom[SOLUTION_URL_XCOM_KEY].startswith("https://")

    solve_all_account_tasks(debitura_conn)
    clear_counters(debitura_conn)
    done = op.poke({"ti": ti})
    assert done.is_done
    # The opening check also reads page 1 of the whole queue: no caseless task of a type the provider does not know
    # is open (docs/gates-unknown-types.md).
    assert counters(debitura_conn)["total"] == 3
    record = done.xcom_value
    assert json.loads(json.dumps(record)) == record
    assert record["case_id"] == case_ids["INV-1001"]
    assert record["checks"] == 2
    assert [t["type"] for t in record["blocked_by_on_first_check"]] == ["AssignBankAccount"]


def test_reference_resolved_once(debitura_conn):
    op = sensor(creditor_reference="INV-1003", include_account_tasks=False)
    for _ in range(3):
        op.poke({})
    lookups = [n for key, n in counters(debitura_conn).items() if key.startswith("GET /cases/by-creditor-reference")]
    assert lookups == [1]


@pytest.fixture
def logs(caplog, capsys):
    """Everything logged so far: Airflow 3 logs through structlog to stdout, Airflow 2 through logging."""
    caplog.set_level("INFO")
    return lambda: caplog.text + capsys.readouterr().out


def test_a_transient_lookup_error_is_still_blocked_not_a_failure(debitura_conn, monkeypatch, logs):
    """Issue 16: five 503s on the reference lookup failed the task; a 503 on a check is "still blocked"."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT",
        json.dumps(json.loads(debitura_conn.conn_json()) | {"extra": {"max_attempts": 1}}),
    )
    rule = {"kind": "status", "status": 503, "count": 2, "path": "/cases/by-creditor-reference"}
    debitura_conn.control("PUT", "/faults", {"rules": [rule]})
    op = sensor(creditor_reference="INV-1005", include_account_tasks=False)
    assert not op.poke({}).is_done and not op.poke({}).is_done
    assert "could not look the case up" in logs()
    done = op.poke({})
    assert done.is_done and done.xcom_value["checks"] == 3


def test_check_lines_name_the_reference_and_the_guid(debitura_conn, case_ids, logs):
    sensor(creditor_reference="INV-1001").poke({})
    assert f"Case INV-1001 ({case_ids['INV-1001']}), check 1: blocked by" in logs()


def test_a_guid_is_named_from_its_tasks_or_one_case_read(debitura_conn, case_ids, logs):
    clear_counters(debitura_conn)
    sensor(case_id=case_ids["INV-1003"], include_account_tasks=False).poke({})  # its tasks carry the reference
    assert f"Case INV-1003 ({case_ids['INV-1003']}), check 1" in logs()
    assert counters(debitura_conn)["total"] == 1
    solve_all_account_tasks(debitura_conn)
    clear_counters(debitura_conn)
    op = sensor(case_id=case_ids["INV-1005"])  # no open task names it: one case read, once
    op.poke({})
    op.poke({})
    assert f"Case INV-1005 ({case_ids['INV-1005']}), check 1" in logs()
    assert counters(debitura_conn)["GET /cases/{id}"] == 1


def test_the_missing_case_error_is_one_short_line(debitura_conn):
    with pytest.raises(AirflowFailException) as info:
        sensor(case_id="3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b").poke({})
    message = str(info.value)
    assert message.startswith("Cannot find Debitura case 3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b: ") and "404" in message
    assert "\n" not in message and info.value.__cause__ is None
    with pytest.raises(AirflowFailException) as info:
        sensor(creditor_reference="INV-404").poke({})
    assert str(info.value).startswith("Cannot find Debitura case creditor_reference='INV-404': ")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(("types", "include"), [(["SignContract"], False), ([], True)])
def test_a_gate_that_could_never_block_is_refused_at_construction(types, include):
    with pytest.raises(DebituraConfigError, match="blocking_task_types"):
        sensor(creditor_reference="INV-1", blocking_task_types=types, include_account_tasks=include)


def test_the_link_records_the_last_blocker_and_nothing_without_one(debitura_conn, case_ids):
    solve_all_account_tasks(debitura_conn)
    ti = FakeTI()
    assert sensor(case_id=case_ids["INV-1005"]).poke({"ti": ti}).is_done
    assert ti.xcom == {}  # no blocker, nothing recorded (and the link reads no XCom for it)
    blocked = sensor(case_id=case_ids["INV-1002"])
    blocked.poke({"ti": ti})
    blocked.poke({"ti": ti})
    assert ti.xcom[SOLUTION_URL_XCOM_KEY].startswith("https://app.debitura.com/")


def test_case_tasks_and_type_filter(debitura_conn, case_ids):
    blocked = sensor(case_id=case_ids["INV-1003"], include_account_tasks=False).poke({})
    assert not blocked.is_done
    clear_counters(debitura_conn)
    op = sensor(case_id=case_ids["INV-1003"], include_account_tasks=False, blocking_task_types=["ReviewPartner"])
    done = op.poke({})
    assert done.is_done and done.xcom_value["blocked_by_on_first_check"] == []
    assert counters(debitura_conn)["total"] == 1  # account listing skipped when excluded


def test_unknown_case_fails_fast(debitura_conn):
    with pytest.raises(AirflowFailException, match="INV-404"):
        sensor(creditor_reference="INV-404").poke({})
    with pytest.raises(AirflowFailException, match="404"):
        sensor(case_id="3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b").poke({})


def test_wrong_api_key_fails_fast(sandbox, monkeypatch, case_ids):
    conn = json.loads(sandbox.conn_json()) | {"password": "wrong-key-123456"}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    with pytest.raises(AirflowFailException, match="401"):
        sensor(case_id=case_ids["INV-1005"]).poke({})


def test_transient_error_is_still_blocked_never_unblocked(debitura_conn, case_ids, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT",
        json.dumps(json.loads(debitura_conn.conn_json()) | {"extra": {"max_attempts": 1}}),
    )
    solve_all_account_tasks(debitura_conn)
    debitura_conn.control(
        "PUT", "/faults", {"rules": [{"kind": "status", "status": 503, "count": 1, "path": "/tasks"}]}
    )
    op = sensor(case_id=case_ids["INV-1005"])  # INV-1005 has no tasks: only the failure could block it
    assert not op.poke({}).is_done
    assert op.poke({}).is_done


def test_deferrable_defers_with_serialisable_trigger_and_timeout(debitura_conn, case_ids):
    op = sensor(case_id=case_ids["INV-1002"], deferrable=True, timeout=120, poll_interval=5)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, DebituraCaseUnblockedTrigger)
    assert info.value.timeout == timedelta(seconds=120)
    assert info.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["case_id"] == case_ids["INV-1002"] and kwargs["checks"] == 1 and kwargs["poll_interval"] == 5
    assert before + 119 < kwargs["end_time"] < time.time() + 121
    assert [t["type"] for t in kwargs["first_blockers"]] == ["AssignBankAccount", "ReplyToChat"] or {
        t["type"] for t in kwargs["first_blockers"]
    } == {"AssignBankAccount", "ReplyToChat"}


def test_deferrable_returns_at_once_when_unblocked(debitura_conn, case_ids):
    solve_all_account_tasks(debitura_conn)
    record = sensor(case_id=case_ids["INV-1005"], deferrable=True).execute({})
    assert record["checks"] == 1 and record["blocked_by_on_first_check"] == []


def test_deferrable_unknown_case_fails_or_skips(debitura_conn):
    with pytest.raises(AirflowFailException):
        sensor(creditor_reference="INV-404", deferrable=True).execute({})
    with pytest.raises(AirflowSkipException):
        sensor(creditor_reference="INV-404", deferrable=True, soft_fail=True).execute({})
    with pytest.raises(AirflowSkipException, match="never_fail"):
        sensor(creditor_reference="INV-404", deferrable=True, never_fail=True).execute({})
    with pytest.raises(AirflowSkipException, match="never_fail"):
        sensor(case_id="3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b", deferrable=True, never_fail=True).execute({})


def test_deferrable_honours_exponential_backoff_and_max_wait(debitura_conn, case_ids):
    op = sensor(case_id=case_ids["INV-1002"], deferrable=True, exponential_backoff=True, max_wait=timedelta(minutes=5))
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["exponential_backoff"] is True and kwargs["max_wait"] == 300
    assert kwargs["case_label"] == "INV-1002" and kwargs["solution_url"].startswith("https://")


def test_a_deferrable_gate_whose_lookup_failed_defers_with_the_reference(debitura_conn, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT",
        json.dumps(json.loads(debitura_conn.conn_json()) | {"extra": {"max_attempts": 1}}),
    )
    debitura_conn.control("PUT", "/faults", {"rules": [{"kind": "drop", "count": 1, "path": "/cases/by-creditor"}]})
    with pytest.raises(TaskDeferred) as info:
        sensor(creditor_reference="INV-1002", deferrable=True).execute({})
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["case_id"] is None and kwargs["creditor_reference"] == "INV-1002" and kwargs["checks"] == 1


def test_execute_complete_events():
    op = sensor(case_id="3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b")
    record = {"case_id": "x", "unblocked_at": "2026-01-01T00:00:00+00:00", "checks": 4, "blocked_by_on_first_check": []}
    assert op.execute_complete({}, {"status": "success", **record}) == record
    with pytest.raises(AirflowFailException, match="boom"):
        op.execute_complete({}, {"status": "error", "message": "boom"})
    with pytest.raises(AirflowSensorTimeout):
        op.execute_complete({}, {"status": "timeout", "message": "late"})
    with pytest.raises(AirflowFailException):
        op.execute_complete({}, None)
    ti = FakeTI()
    op.execute_complete({"ti": ti}, {"status": "success", **record, "solution_url": "https://app.debitura.com/x"})
    assert ti.xcom[SOLUTION_URL_XCOM_KEY] == "https://app.debitura.com/x"  # the link after the trigger's run
    op.soft_fail = True
    with pytest.raises(AirflowSkipException):
        op.execute_complete({}, {"status": "timeout", "message": "late"})
    never = sensor(case_id="3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b", never_fail=True)
    with pytest.raises(AirflowSkipException, match="never_fail"):
        never.execute_complete({}, {"status": "error", "message": "Cannot find Debitura case x"})
    with pytest.raises(AirflowSensorTimeout):  # as in poke mode, a timeout is not a failed check
        never.execute_complete({}, {"status": "timeout", "message": "late"})
