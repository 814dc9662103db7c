"""The snapshot-source seam: a gate's own reads and the shared poll answer alike; a whole-queue
subscriber gets every open task with its full record."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers.gates import clear_counters, counters

from airflow_provider_debitura.gate import GateSpec, GateState
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.sources import DirectGateSource

REFS = ("INV-1001", "INV-1002", "INV-1003", "INV-1004", "INV-1005")


@pytest.mark.parametrize("types", [None, ["ReplyToChat"], ["ReviewPartner", "AssignBankAccount"]])
async def test_direct_and_shared_sources_give_the_same_verdicts(debitura_conn, types):
    for ref in REFS:
        spec = GateSpec.of(case_id_for(ref), types)
        async with DirectGateSource("debitura_default", spec) as direct:
            mine = await direct.next_snapshot()
        async with shared_poll.subscribe("debitura_default", 0.2, gate=spec) as shared:
            ours = await shared.next_snapshot()
        assert mine is not None and ours is not None
        a, b = mine.verdict_for(spec), ours.verdict_for(spec)
        assert (a.state, a.ids) == (b.state, b.ids), ref
        assert a.state in (GateState.BLOCKED, GateState.UNBLOCKED)
    assert shared_poll.active_pollers() == {}


async def test_a_direct_source_costs_one_or_two_requests_and_keeps_its_time(debitura_conn):
    loop = asyncio.get_running_loop()
    spec = GateSpec.of(case_id_for("INV-1003"), ["ReplyToChat"])  # no account-level type: 1 request
    async with DirectGateSource("debitura_default", spec) as source:
        clear_counters(debitura_conn)
        at = loop.time() + 0.3
        snapshot = await source.next_snapshot(at)
        assert snapshot is not None and snapshot.started >= at - 1e-3
        assert counters(debitura_conn)["total"] == 1
        assert await source.next_snapshot(loop.time() + 5, deadline=time.time() + 0.2) is None  # deadline first
    async with DirectGateSource("debitura_default", GateSpec.of(case_id_for("INV-1003"))) as source:
        clear_counters(debitura_conn)
        await source.next_snapshot()
        assert counters(debitura_conn)["total"] == 2


async def test_a_queue_source_gets_every_open_task_and_its_record(debitura_conn):
    async with shared_poll.subscribe("debitura_default", 0.2, records=True) as source:
        snapshot = await source.next_snapshot()
    assert snapshot is not None and snapshot.ok and snapshot.full
    with debitura_conn.client() as client:
        listed = client.get("/tasks", params={"PageSize": 100}).json()["tasks"]
    assert sorted(t[0] for t in snapshot.tasks) == sorted(t["id"] for t in listed)
    assert sorted(snapshot.records(), key=lambda r: r["id"]) == sorted(listed, key=lambda r: r["id"])
