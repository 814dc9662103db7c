"""DebituraNewTasksTrigger against the sandbox (real HTTP): dedup, restarts, filters, errors, serialization.

Persistence goes through the store seam (MemorySeenTasksStore); the Airflow-backed store is exercised
for real in test_new_tasks_e2e.py. A "restart" here is what the triggerer does: a new instance built
from the first one's serialized kwargs, finding the state the first one saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers.seen_store import MemorySeenTasksStore

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.seen_tasks import AirflowSeenTasksStore, SeenState, watcher_key
from airflow_provider_debitura.triggers import new_tasks, shared_poll
from airflow_provider_debitura.triggers.debitura import DebituraCaseUnblockedTrigger
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger

CLASSPATH = "airflow_provider_debitura.triggers.new_tasks.DebituraNewTasksTrigger"
INTERVAL = 0.15


class Watch:
    """Runs a trigger's ``run()`` in the background and records its events."""

    def __init__(self, trigger: DebituraNewTasksTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def rounds(self, n: int = 1, timeout: float = 15) -> None:
        """Wait until ``n`` more rounds have been processed (and their state saved)."""
        target = self.trigger.rounds + n
        await self.until(lambda: self.trigger.rounds >= target and not self.trigger._dirty, timeout)

    async def until(self, condition: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.task.done():
                self.task.result()  # surface a crash
                raise AssertionError("the trigger stopped")
            assert time.monotonic() < deadline, f"timed out; events={self.events} rounds={self.trigger.rounds}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        assert not self.task.done() or self.task.cancelled() or self.task.exception() is None


def make(store: MemorySeenTasksStore, **kwargs: Any) -> DebituraNewTasksTrigger:
    kwargs.setdefault("poll_interval", INTERVAL)
    return DebituraNewTasksTrigger(store=store, **kwargs)


def restarted(trigger: DebituraNewTasksTrigger, store: MemorySeenTasksStore) -> DebituraNewTasksTrigger:
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    return DebituraNewTasksTrigger(**json.loads(json.dumps(kwargs)), store=store)


def add_task(sb, type_: str = "ReplyToChat", ref: str | None = "INV-1005") -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_}
    if ref is not None:
        body["caseCreditorReference"] = ref
    response = sb.control("POST", "/tasks", body)
    assert response.status_code == 201, response.text
    return response.json()


def solve(sb, task_id: str) -> None:
    assert sb.control("POST", f"/tasks/{task_id}/solve", {}).status_code == 200


@pytest.fixture
def store() -> MemorySeenTasksStore:
    return MemorySeenTasksStore()


both_modes = pytest.mark.parametrize("coalesce", [True, False], ids=["shared-poll", "direct"])


# ------------------------------------------------------------------------------------ serialization


def test_serialize_round_trips_and_identity_is_stable():
    trigger = DebituraNewTasksTrigger(
        "debitura_default",
        task_types=["ReplyToChat", "SignContract"],
        case_id=case_id_for("INV-1005").upper(),
        poll_interval=30,
        replay_existing=True,
        coalesce=False,
        max_seen=500,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in kwargs.values())
    try:
        from airflow.sdk import serde

        restored = serde.deserialize(serde.serialize(kwargs))
    except ImportError:  # Airflow 2 stores trigger kwargs as JSON
        restored = json.loads(json.dumps(kwargs))
    assert restored == kwargs
    again = DebituraNewTasksTrigger(**restored)
    assert again.serialize() == (classpath, kwargs)
    assert again.state_key == trigger.state_key
    assert kwargs["case_id"] == case_id_for("INV-1005")  # normalised, so the key does not depend on spelling


def test_event_trigger_hash_is_stable_across_instances():
    base = pytest.importorskip("airflow.triggers.base")
    if not hasattr(base, "BaseEventTrigger"):
        pytest.skip("Airflow 2 has no event triggers")
    assert issubclass(DebituraNewTasksTrigger, base.BaseEventTrigger)
    a = DebituraNewTasksTrigger(task_types="ReplyToChat, MoreInfoNeeded")
    b = DebituraNewTasksTrigger(task_types=["ReplyToChat", "MoreInfoNeeded"])
    assert base.BaseEventTrigger.hash(*a.serialize()) == base.BaseEventTrigger.hash(*b.serialize())


def test_state_key_follows_the_filter_not_the_interval():
    a = DebituraNewTasksTrigger(task_types=["SignContract", "ReplyToChat"], poll_interval=10)
    b = DebituraNewTasksTrigger(task_types=["ReplyToChat", "SignContract"], poll_interval=99, coalesce=False)
    c = DebituraNewTasksTrigger(task_types=["ReplyToChat"])
    assert a.state_key == b.state_key != c.state_key
    assert a.state_key == watcher_key("debitura_default", ["ReplyToChat", "SignContract"], None)
    assert len(a.state_key) < 250  # fits an Airflow Variable key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_types": ["ReplyTochat"]}, "did you mean 'ReplyToChat'"),
        ({"task_types": []}, "task_types is empty"),
        ({"case_id": "INV-1005"}, "is not a Debitura case id"),
        ({"poll_interval": 0}, "positive number of seconds"),
        ({"debitura_conn_id": ""}, "must name an Airflow connection"),
        ({"max_seen": 0}, "max_seen"),
    ],
)
def test_bad_parameters_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(DebituraConfigError, match=message):
        DebituraNewTasksTrigger(**kwargs)


# ------------------------------------------------------------------------------- first start, dedup


@both_modes
async def test_first_start_records_the_queue_then_fires_once_per_new_task(debitura_conn, store, coalesce):
    sb = debitura_conn
    watch = Watch(make(store, coalesce=coalesce))
    try:
        await watch.rounds(2)
        assert watch.events == []  # the existing queue is the baseline, not a backlog to replay
        baseline = set(store.values[watch.trigger.state_key]["ids"])
        assert len(baseline) >= 5

        task = add_task(sb)
        await watch.until(lambda: len(watch.events) == 1)
        await watch.rounds(3)
        assert [e["id"] for e in watch.events] == [task["id"]]
        event = watch.events[0]
        assert event == task  # the task's own camelCase JSON, every field
        assert {"caseId", "solutionUrl", "dateCreated", "typeLabel", "action"} <= set(event)
        assert task["id"] in store.values[watch.trigger.state_key]["ids"]
    finally:
        await watch.stop()


async def test_replay_existing_fires_for_the_open_queue_once(debitura_conn, store):
    watch = Watch(make(store, replay_existing=True, task_types=["ReplyToChat", "SignContract"]))
    try:
        await watch.rounds(3)
        open_ids = {
            t["id"]
            for t in debitura_conn.client().get("/tasks", params={"PageSize": 100}).json()["tasks"]
            if t["type"] in ("ReplyToChat", "SignContract")
        }
        assert open_ids and sorted(e["id"] for e in watch.events) == sorted(open_ids)
    finally:
        await watch.stop()


@both_modes
async def test_restart_fires_nothing_already_seen_and_new_tasks_once(debitura_conn, store, coalesce):
    sb = debitura_conn
    first = Watch(make(store, coalesce=coalesce))
    try:
        await first.rounds(2)
        seen_before = add_task(sb)
        await first.until(lambda: len(first.events) == 1)
        await first.rounds(1)
    finally:
        await first.stop()

    # Tasks added while no trigger runs are new to the restarted one; the ones already fired are not.
    while_down = add_task(sb, "MoreInfoNeeded", "INV-1002")
    second = Watch(restarted(first.trigger, store))
    try:
        await second.rounds(3)
        assert [e["id"] for e in second.events] == [while_down["id"]]
        after = add_task(sb, "ReplyToChat", "INV-1001")
        await second.until(lambda: len(second.events) == 2)
        await second.rounds(3)
        assert [e["id"] for e in second.events] == [while_down["id"], after["id"]]
        assert seen_before["id"] not in {e["id"] for e in second.events}
    finally:
        await second.stop()


async def test_several_new_tasks_in_one_round_fire_in_creation_order(debitura_conn, store):
    sb = debitura_conn
    watch = Watch(make(store, poll_interval=0.5))
    try:
        await watch.rounds(1)
        added = [add_task(sb, "ReplyToChat", ref) for ref in ("INV-1001", "INV-1002", "INV-1003")]
        await watch.until(lambda: len(watch.events) == 3)
        await watch.rounds(2)
        assert [e["id"] for e in watch.events] == [t["id"] for t in added]
    finally:
        await watch.stop()


async def test_solved_tasks_are_forgotten_after_a_few_rounds_so_the_state_stays_small(debitura_conn, store):
    sb = debitura_conn
    watch = Watch(make(store))
    try:
        await watch.rounds(1)
        task = add_task(sb)
        await watch.until(lambda: len(watch.events) == 1)
        solve(sb, task["id"])
        await watch.rounds(new_tasks.PRUNE_AFTER_ROUNDS + 1)
        assert task["id"] not in store.values[watch.trigger.state_key]["ids"]
        assert len(watch.events) == 1
    finally:
        await watch.stop()


def test_state_cap_drops_the_oldest_ids():
    state = SeenState({f"t{i}": float(i) for i in range(10)})
    assert state.cap(4) == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert sorted(state.ids) == ["t6", "t7", "t8", "t9"]
    assert SeenState.from_json(json.dumps(state.to_json())).ids == state.ids
    assert SeenState.from_json({"v": 99, "ids": {}}) is None  # a foreign value is "no state", not a crash
    assert SeenState.from_json("not json") is None


# --------------------------------------------------------------------------------------- filtering


async def test_type_filter(debitura_conn, store):
    sb = debitura_conn
    watch = Watch(make(store, task_types=["ReplyToChat", "SignContract"]))
    try:
        await watch.rounds(1)
        ignored = add_task(sb, "MoreInfoNeeded", "INV-1001")
        chat = add_task(sb, "ReplyToChat", "INV-1002")
        account = add_task(sb, "SignContract", None)
        await watch.until(lambda: len(watch.events) == 2)
        await watch.rounds(2)
        assert {e["id"] for e in watch.events} == {chat["id"], account["id"]}
        assert ignored["id"] not in store.values[watch.trigger.state_key]["ids"]
        account_event = next(e for e in watch.events if e["id"] == account["id"])
        assert account_event == account  # full JSON, not the shared snapshot's compact form
        assert account_event["caseId"] is None and account_event["solutionUrl"]
    finally:
        await watch.stop()


@both_modes
async def test_case_filter(debitura_conn, store, coalesce):
    sb = debitura_conn
    watch = Watch(make(store, case_id=case_id_for("INV-1005"), coalesce=coalesce))
    try:
        await watch.rounds(1)
        add_task(sb, "ReplyToChat", "INV-1001")
        add_task(sb, "SignContract", None)  # account-level: no case, never matches a case filter
        mine = add_task(sb, "MoreInfoNeeded", "INV-1005")
        await watch.until(lambda: len(watch.events) == 1)
        await watch.rounds(2)
        assert [e["id"] for e in watch.events] == [mine["id"]]
    finally:
        await watch.stop()


async def test_caseless_tasks_fire_once_over_many_rounds(debitura_conn, store):
    """A lead task (no case, not account-level) is outside the gates' per-case index; it still fires, and
    only once however many rounds pass (it once re-fired every ~11 rounds, when it was read only now and then)."""
    sb = debitura_conn
    watch = Watch(make(store))
    try:
        await watch.rounds(1)
        lead = add_task(sb, "SomeFutureType", None)
        await watch.until(lambda: len(watch.events) == 1)
        await watch.rounds(16)
        assert watch.events == [lead]
    finally:
        await watch.stop()


# -------------------------------------------------------------------------------------- resilience


@pytest.fixture
def fail_fast(debitura_conn, monkeypatch):
    """One attempt per request: a failed read costs one request, not the hook's whole retry budget."""
    conn = json.loads(debitura_conn.conn_json())
    conn["extra"] = {**conn.get("extra", {}), "max_attempts": 1}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    return debitura_conn


@both_modes
async def test_api_errors_fire_nothing_and_do_not_stop_the_watcher(fail_fast, store, coalesce):
    sb = fail_fast
    watch = Watch(make(store, coalesce=coalesce))
    try:
        await watch.rounds(1)
        sb.control("PUT", "/faults", {"rules": [{"kind": "status", "status": 503, "method": "GET", "path": "/"}]})
        task = add_task(sb)
        await watch.rounds(3)
        assert watch.events == []
        sb.control("DELETE", "/faults")
        await watch.until(lambda: len(watch.events) == 1)
        await watch.rounds(2)
        assert [e["id"] for e in watch.events] == [task["id"]]
    finally:
        await watch.stop()


async def test_auth_errors_are_logged_and_retried_not_raised(sandbox, store, monkeypatch):
    conn = json.loads(sandbox.conn_json())
    conn["password"] = "wrong-key"
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    watch = Watch(make(store))
    try:
        await watch.rounds(3)
        assert watch.events == [] and not watch.task.done()
        assert store.values == {}  # never read a queue, so never recorded a baseline
    finally:
        await watch.stop()


async def test_malformed_pages_fire_nothing(fail_fast, store):
    sb = fail_fast
    watch = Watch(make(store))
    try:
        await watch.rounds(1)
        sb.control("PUT", "/faults", {"rules": [{"kind": "malformedJson", "method": "GET", "path": "/tasks"}]})
        task = add_task(sb)
        await watch.rounds(2)
        assert watch.events == []
        sb.control("DELETE", "/faults")
        await watch.until(lambda: len(watch.events) == 1)
        assert watch.events == [task]
    finally:
        await watch.stop()


async def test_a_listing_that_keeps_drifting_is_a_failed_round_with_no_events(debitura_conn, store):
    """The queue changes between pages on every re-read: no consistent listing, so no events, no state change."""
    from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook

    sb = debitura_conn
    sb.control("POST", "/scenario", {"name": "large:150"})  # two pages of 100
    for count in (1, 3, 5, 7):  # a task appears right after every page 1: page 2 disagrees every time
        body = {
            "at": {"afterRequests": {"method": "GET", "path": "/tasks", "count": count}},
            "action": {"type": "addTask", "task": {"type": "SignContract"}},
        }
        assert sb.control("POST", "/events", body).status_code == 201
    trigger = make(store, coalesce=False)
    trigger._state = SeenState({"already": 1.0})
    async with DebituraAsyncHook("debitura_default") as hook:
        listing = await new_tasks.read_direct(hook, trigger)
    assert not listing.ok and "kept changing" in (listing.error or "")
    assert await trigger._process(listing) == []
    assert trigger._state.ids == {"already": 1.0} and not trigger._dirty


async def test_store_failures_never_replay_and_never_lose_a_fired_task(debitura_conn, store):
    sb = debitura_conn
    store.fail_loads = 2
    watch = Watch(make(store))
    try:
        await watch.rounds(3)  # two rounds without state: no events (a replay would be the risk)
        assert watch.events == [] and store.saves == 1  # third round: first start, baseline saved
        store.fail_saves = 2
        task = add_task(sb)
        await watch.until(lambda: len(watch.events) == 1)
        await watch.rounds(3)
        assert task["id"] in store.values[watch.trigger.state_key]["ids"]  # saved once the store recovered
        assert [e["id"] for e in watch.events] == [task["id"]]
    finally:
        await watch.stop()


# ---------------------------------------------------------------------------------------- sharing


async def test_shares_the_case_gates_poll(debitura_conn, store):
    sb = debitura_conn
    gate = DebituraCaseUnblockedTrigger(case_id_for("INV-1001"), poll_interval=0.3, end_time=time.time() + 30)
    gate_task = asyncio.get_running_loop().create_task(gate.run().__anext__())
    watch = Watch(make(store, task_types=["ReplyToChat"], poll_interval=0.3))
    try:
        await watch.rounds(2)
        pollers = shared_poll.active_pollers()
        assert list(pollers) == ["debitura_default"] and pollers["debitura_default"].subscribers == 2
        sb.control("DELETE", "/requests")
        before = pollers["debitura_default"].snapshots
        await watch.rounds(4)
        snapshots = pollers["debitura_default"].snapshots - before
        counts = sb.control("GET", "/counters").json()
        # One account read per snapshot (the demo queue fits one page); the watcher adds none.
        assert counts.get("GET /tasks", 0) <= snapshots + 1, (counts, snapshots)
        assert not gate_task.done()
    finally:
        await watch.stop()
        gate_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await gate_task
    assert shared_poll.active_pollers() == {}  # the last one out stopped the poll


# ------------------------------------------------------------------------------ Airflow-backed store


class FakeAccessor:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = json.loads(json.dumps(value))


class FakeAccessors:
    """Shaped like Airflow 3.3's AssetStateStoreAccessors for a watcher feeding two assets."""

    def __init__(self, **by_name: FakeAccessor) -> None:
        self._by_name = by_name
        self._by_uri: dict[str, FakeAccessor] = {}


async def test_airflow_store_uses_every_watched_assets_state_and_merges_them():
    trigger = DebituraNewTasksTrigger()
    store = AirflowSeenTasksStore(trigger)
    assert store.backend == "variable"  # outside an asset watcher
    a, b = FakeAccessor({}), FakeAccessor({})
    trigger.asset_state_store = FakeAccessors(a=a, b=b)
    assert store.backend == "asset_state_store"
    assert await store.load("k") is None
    a.values["k"] = {"v": 1, "ids": {"t1": 5}}
    b.values["k"] = {"v": 1, "ids": {"t2": 6}}
    merged = await store.load("k")
    assert merged is not None and merged.ids == {"t1": 5.0, "t2": 6.0}  # a newly added asset replays nothing
    await store.save("k", merged)
    assert a.values["k"] == b.values["k"] == {"v": 1, "ids": {"t1": 5.0, "t2": 6.0}}


async def test_airflow_store_falls_back_to_a_variable_off_the_event_loop(monkeypatch):
    from airflow_provider_debitura import seen_tasks

    calls: list[tuple[str, Any]] = []
    loop_thread = threading.get_ident()

    def fake_get(key: str) -> Any:
        assert threading.get_ident() != loop_thread  # never a sync SDK call on the loop
        calls.append(("get", key))
        return json.dumps({"v": 1, "ids": {"t": 1}})

    def fake_set(key: str, value: str) -> None:
        assert threading.get_ident() != loop_thread
        calls.append(("set", json.loads(value)))

    monkeypatch.setattr(seen_tasks, "_variable_get", fake_get)
    monkeypatch.setattr(seen_tasks, "_variable_set", fake_set)
    store = AirflowSeenTasksStore(DebituraNewTasksTrigger())
    state = await store.load("key")
    assert state is not None and state.ids == {"t": 1.0}
    await store.save("key", state)
    assert calls == [("get", "key"), ("set", {"v": 1, "ids": {"t": 1.0}})]
