"""A watcher's filter on a compact task (the shared poll's form) and on the task's JSON: the same answer; and a
watcher on the shared poll hands Airflow plain JSON events."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from helpers.seen_store import MemorySeenTasksStore
from helpers.watcher import Watch

from airflow_provider_debitura.gate import CompactTask
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
from airflow_provider_debitura.triggers.watcher.state import WatchFilter

CASE = "5f0c2b8e-4d1a-4c3e-9a7b-2e6f8d9c0a11"
OTHER = "6a1d3c9f-5e2b-4d4f-8b8c-3f7a9e0d1b22"

pytestmark = pytest.mark.usefixtures("no_persist_grace")


def as_json(task: CompactTask) -> dict[str, Any]:
    """The task's API JSON as far as a filter reads it (an open task)."""
    return {"id": task.id, "type": task.type, "caseId": task.case_id, "status": "Open"}


FILTERS = [
    WatchFilter(conn, types, case)
    for conn, types, case in itertools.product(
        ["debitura_default"], [None, ("ReplyToChat",), ("SignContract", "SomethingNew")], [None, CASE]
    )
]
TASKS = [
    CompactTask(f"t{n}", type_, case_id, "title", None, None, lead)
    for n, (type_, case_id, lead) in enumerate(
        itertools.product(
            ["ReplyToChat", "SignContract", "SomethingNew", None],
            [CASE, CASE.upper(), OTHER, None, ""],
            [None, "lead-1"],
        )
    )
]


@pytest.mark.parametrize("watch", FILTERS, ids=lambda w: f"types={w.types},case={'yes' if w.case_id else 'any'}")
def test_a_compact_task_matches_exactly_when_its_json_does(watch: WatchFilter) -> None:
    matched = [t.id for t in TASKS if watch.matches_compact(t)]
    assert matched == [t.id for t in TASKS if watch.matches(as_json(t))]
    everything = watch.types is None and watch.case_id is None
    assert len(matched) == len(TASKS) if everything else 0 < len(matched) < len(TASKS)  # the cases tell apart


async def test_events_from_the_shared_polls_full_read_are_plain_json(debitura_conn) -> None:
    """The first round on the shared poll is a full read (compact tasks, filtered by name): with
    replay_existing every open task of the watched types fires once, as the API's own JSON object."""
    store = MemorySeenTasksStore()
    trigger = DebituraNewTasksTrigger(
        task_types=["ReplyToChat", "SignContract"], replay_existing=True, poll_interval=0.15, store=store
    )
    watch = Watch(trigger)
    try:
        await watch.rounds(1)
        assert trigger.source is not None and trigger.source.full_rounds == 1
        listed = debitura_conn.client().get("/tasks", params={"PageSize": 100}).json()["tasks"]
        wanted = [t for t in listed if t["type"] in ("ReplyToChat", "SignContract")]
        assert wanted and len(wanted) < len(listed)
        assert sorted(watch.events, key=lambda e: e["id"]) == sorted(wanted, key=lambda t: t["id"])
        for payload in watch.events:
            assert type(payload) is dict and json.loads(json.dumps(payload)) == payload
    finally:
        await watch.stop()
