"""A slow connection never holds up gates on a healthy one (issue 16): limits are per connection.

Two real sandboxes, two Airflow connections. The slow one answers every request after 5 s; ten gates on it
check on their own (``coalesce=False``), so they fill any shared limit of 8 concurrent reads for seconds.
A gate on the healthy connection must still get its answer at once.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers.gates import first_event, stop
from helpers.reliability import REL_KEY

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger


@pytest.fixture
def slow_sb(monkeypatch):
    with SandboxServer(scenario="demo", api_key=REL_KEY) as server:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_SLOW", server.conn_json())
        yield server


@pytest.mark.parametrize("coalesce", [False, True])
async def test_a_slow_connection_does_not_hold_up_a_healthy_one(rel_sb, slow_sb, monkeypatch, coalesce):
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", rel_sb.conn_json())
    rel_sb.control("POST", "/reset", {"scenario": "demo"})
    slow_sb.control("PUT", "/faults", {"rules": [{"kind": "latency", "latencyMs": 5000}]})
    deadline = time.time() + 60
    slow = [
        DebituraCaseUnblockedTrigger(
            case_id_for(f"INV-100{i % 5 + 1}"), debitura_conn_id="debitura_slow", poll_interval=0.2,
            end_time=deadline, coalesce=False,
        )
        for i in range(10)
    ]  # fmt: skip
    slow_tasks = [first_event(t) for t in slow]
    await asyncio.sleep(1.5)  # the slow gates are in their first check, each holding a request open
    healthy = DebituraCaseUnblockedTrigger(
        case_id_for("INV-1005"), include_account_tasks=False, poll_interval=0.2, end_time=deadline, coalesce=coalesce
    )
    started = time.monotonic()
    event = await asyncio.wait_for(first_event(healthy), 15)
    took = time.monotonic() - started
    await stop(slow_tasks)
    assert event["status"] == "success"
    assert took < 2.0, f"the healthy gate waited {took:.1f} s behind the slow connection"
    assert shared_poll.active_pollers() == {}
