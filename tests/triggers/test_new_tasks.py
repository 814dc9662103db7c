"""DebituraNewTasksTrigger against the sandbox (real HTTP): dedup, restarts, filters, errors, serialization.

Persistence goes through the store seam (MemorySeenTasksStore, shaped like Airflow 3.3's asset state
store); the Airflow-backed store is exercised for real in test_new_tasks_e2e.py. The pure rules of what
is new live in test_seen_tasks.py; queues of 10,000+ tasks and odd listings in test_new_tasks_scale.py.
A "restart" here is what the triggerer does: a new instance built from the first one's serialized kwargs,
finding the state the first one saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from helpers.seen_store import MemorySeenTasksStore
from helpers.watcher import Watch, add_task

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.models import RejectedRecord
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger, Round
from airflow_provider_debitura.triggers.watcher import store as seen_store
from airflow_provider_debitura.triggers.watcher.ids import created_epoch
from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY, SeenState, watcher_key
from airflow_provider_debitura.triggers.watcher.store import AirflowSeenTasksStore
from airflow_provider_debitura.triggers.watcher.tracker import SeenTracker

CLASSPATH = "airflow_provider_debitura.triggers.new_tasks.DebituraNewTasksTrigger"
INTERVAL = 0.15

pytestmark = pytest.mark.usefixtures("no_persist_grace")


def make(store: MemorySeenTasksStore, **kwargs: Any) -> DebituraNewTasksTrigger:
    kwargs.setdefault("poll_interval", INTERVAL)
    return DebituraNewTasksTrigger(store=store, **kwargs)


def restarted(trigger: DebituraNewTasksTrigger, store: MemorySeenTasksStore) -> DebituraNewTasksTrigger:
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    return DebituraNewTasksTrigger(**json.loads(json.dumps(kwargs)), store=store)


def solve(sb, task_id: str) -> None:
    assert sb.control("POST", f"/tasks/{task_id}/solve", {}).status_code == 200


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
    ],
)
def test_bad_parameters_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(DebituraConfigError, match=message):
        DebituraNewTasksTrigger(**kwargs)


def test_max_seen_is_deprecated_ignored_and_not_serialized():
    with pytest.warns(DeprecationWarning, match="max_seen"):
        trigger = DebituraNewTasksTrigger(max_seen=500)
    assert "max_seen" not in trigger.serialize()[1]
    with pytest.warns(DeprecationWarning):  # a trigger row the previous version stored still loads
        DebituraNewTasksTrigger(**{**trigger.serialize()[1], "max_seen": 10_000})


class RecordingLog:
    """Stands in for a trigger's logger: keeps (level, message) pairs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _record(self, level: str, message: str, *args: object) -> None:
        self.lines.append((level, message % args if args else message))

    def info(self, message: str, *args: object) -> None:
        self._record("info", message, *args)

    def warning(self, message: str, *args: object) -> None:
        self._record("warning", message, *args)

    def debug(self, message: str, *args: object) -> None:
        self._record("debug", message, *args)


def api_task(n: int, created: str, type_: str = "ReplyToChat") -> dict[str, Any]:
    return {"id": f"00000000-0000-0000-0000-{n:012d}", "type": type_, "status": "Open", "dateCreated": created}


async def test_records_the_reader_rejected_are_reported_once_and_never_fire(store):
    trigger = make(store, task_types=["ReplyToChat"])
    trigger._log = RecordingLog()
    bad = RejectedRecord("task", "dateCreated: Input should be a valid datetime", id="7f0c", type="ReplyToChat")
    other = RejectedRecord("task", "dateCreated: Input should be a valid datetime", id="8e1d", type="SignContract")
    first = Round(True, [api_task(1, "2026-01-01T00:00:00Z")], rejected=[bad, other])
    assert await trigger._process(first) == []
    new = api_task(2, "2026-01-01T00:05:00Z")
    assert await trigger._process(Round(True, [api_task(1, "2026-01-01T00:00:00Z"), new], rejected=[bad])) == [new]
    warnings = [text for level, text in trigger._log.lines if level == "warning"]
    assert warnings == [  # once, and only the record that may be a task this watcher watches
        "Debitura watcher: skipping a record it cannot use (a task 7f0c the listing could not read "
        "(dateCreated: Input should be a valid datetime)); it never fires"
    ]


@pytest.mark.parametrize(
    ("record", "watched"),
    [
        (RejectedRecord("task", "r", type="ReplyToChat", case_id="C1"), True),
        (RejectedRecord("task", "r", type="SignContract"), False),
        (RejectedRecord("task", "r", type_unreadable=True, case_id="C1"), True),
        (RejectedRecord("task", "r", type_unreadable=True), False),  # no case: not this case's
        (RejectedRecord("task", "r", type="ReplyToChat", case_id="C2"), False),
        (RejectedRecord("task", "r", type="ReplyToChat", case_id_unreadable=True), True),
    ],
)
def test_which_rejected_records_a_watcher_reports(record, watched):
    case = "c1"
    trigger = DebituraNewTasksTrigger(task_types=["ReplyToChat"])
    watch = type(trigger.watch)(trigger.watch.conn_id, trigger.watch.types, case)
    assert watch.may_match(record) is watched


async def test_an_incomplete_listing_never_becomes_the_baseline(store):
    trigger = make(store)
    early = api_task(1, "2026-01-01T00:00:00Z")
    assert await trigger._process(Round(True, [early], complete=False)) == []
    assert trigger.tracker is not None and trigger.tracker.start == "first start" and not trigger.tracker.state.ids
    later = api_task(2, "2026-01-01T00:05:00Z")
    assert await trigger._process(Round(True, [early, later])) == []  # the first complete listing: backlog
    third = api_task(3, "2026-01-01T00:06:00Z")
    assert await trigger._process(Round(True, [early, later, third], complete=False)) == [third]


# ------------------------------------------------------------------------------- first start, dedup


@both_modes
async def test_first_start_records_the_queue_then_fires_once_per_new_task(debitura_conn, store, coalesce):
    sb = debitura_conn
    watch = Watch(make(store, coalesce=coalesce))
    try:
        await watch.rounds(2)
        assert watch.events == []  # the existing queue is the baseline, not a backlog to replay
        newest = max(t["dateCreated"] for t in sb.client().get("/tasks", params={"PageSize": 100}).json()["tasks"])
        mark = store.state().marks[watch.trigger.state_key]
        assert mark.cutoff == created_epoch(newest) - 6 * 3600  # the baseline: the documented lag before it

        task = add_task(sb)
        await watch.until(lambda: len(watch.events) == 1)
        await watch.rounds(3)
        assert [e["id"] for e in watch.events] == [task["id"]]
        event = watch.events[0]
        assert event == task  # the task's own camelCase JSON, every field
        assert {"caseId", "solutionUrl", "dateCreated", "typeLabel", "action"} <= set(event)
        assert task["id"] in store.state().ids
    finally:
        await watch.stop()


def iso_shift(stamp: str, seconds: float) -> str:
    created = created_epoch(stamp)
    assert created is not None
    return datetime.fromtimestamp(created + seconds, timezone.utc).isoformat().replace("+00:00", "Z")


@both_modes
async def test_first_start_fires_tasks_that_appear_later_dated_at_or_before_the_newest_backlog_task(
    debitura_conn, store, coalesce
):
    """Issue 20 item 8: the 6-hour lag holds from the first start. A task that appears after it, dated at or
    before the newest backlog task (server clock skew, the same second, backdated), and the rest of a bulk
    import sharing one second with the backlog, each fire once; the backlog does not."""
    sb = debitura_conn
    newest = max(t["dateCreated"] for t in sb.client().get("/tasks", params={"PageSize": 100}).json()["tasks"])
    early_bulk = [sb.state.add_task({"type": "SignContract", "dateCreated": newest}) for _ in range(10)]
    watch = Watch(make(store, coalesce=coalesce))
    try:
        await watch.rounds(2)
        assert watch.events == []  # the backlog, the first ten of the bulk import included
        later = [
            sb.state.add_task({"type": "ReplyToChat", "caseCreditorReference": "INV-1001", "dateCreated": when})
            for when in (iso_shift(newest, -2), newest, iso_shift(newest, -3600))
        ]
        later += [sb.state.add_task({"type": "SignContract", "dateCreated": newest}) for _ in range(300)]
        await watch.until(lambda: len(watch.events) >= len(later), timeout=30)
        await watch.rounds(3)
        assert sorted(e["id"] for e in watch.events) == sorted(t["id"] for t in later)  # each once
        assert not {t["id"] for t in early_bulk} & {e["id"] for e in watch.events}
    finally:
        await watch.stop()
    again = Watch(restarted(watch.trigger, store))
    try:
        await again.rounds(3)
        assert again.events == []  # and not again after a restart
    finally:
        await again.stop()


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
        assert ignored["id"] not in store.state().ids
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


async def test_a_queue_that_moves_while_it_is_read_fires_each_new_task_once(debitura_conn, store):
    """Tasks created between the pages of a listing (the core listing completes on a moving queue and may or
    may not include them): each fires exactly once, in that round or the next."""
    sb = debitura_conn
    sb.control("POST", "/scenario", {"name": "large:150"})  # two pages of 100
    watch = Watch(make(store, coalesce=False))
    try:
        await watch.rounds(1)
        before = {t["id"] for t in sb.state.list_tasks("Open")}
        for count in (1, 3, 5, 7):  # a task appears right after a page read, four times
            body = {
                "at": {"afterRequests": {"method": "GET", "path": "/tasks", "count": count}},
                "action": {"type": "addTask", "task": {"type": "SignContract"}},
            }
            assert sb.control("POST", "/events", body).status_code == 201
        added = lambda: {t["id"] for t in sb.state.list_tasks("Open")} - before  # noqa: E731
        await watch.until(lambda: len(added()) == 4 and {e["id"] for e in watch.events} == added(), timeout=30)
        await watch.rounds(3)
        assert sorted(e["id"] for e in watch.events) == sorted(added())  # each once
    finally:
        await watch.stop()


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
        assert task["id"] in store.state().ids  # saved once the store recovered
        assert [e["id"] for e in watch.events] == [task["id"]]
    finally:
        await watch.stop()


# ---------------------------------------------------------------------------------------- sharing


async def test_on_the_shared_poll_the_watcher_reads_only_the_end_of_the_queue(debitura_conn, store):
    """Beside a case gate on the shared poll, the watcher joins the poll (for the full reads it may need) but
    reads the end of the queue on its own: one request per round on the demo queue (one page), never a full
    read while nothing moves."""
    sb = debitura_conn
    gate = DebituraCaseUnblockedTrigger(case_id_for("INV-1001"), poll_interval=0.3, end_time=time.time() + 30)
    gate_task = asyncio.get_running_loop().create_task(gate.run().__anext__())
    trigger = make(store, task_types=["ReplyToChat"], poll_interval=0.3)
    watch = Watch(trigger)
    try:
        await watch.rounds(2)
        pollers = shared_poll.active_pollers()
        assert list(pollers) == ["debitura_default"] and pollers["debitura_default"].subscribers == 2
        source = trigger.source
        assert source is not None and source.full_rounds == 1  # the first round: no trusted order yet
        sb.control("DELETE", "/requests")
        before, tails = pollers["debitura_default"].snapshots, source.tail_rounds
        await watch.rounds(4)
        snapshots = pollers["debitura_default"].snapshots - before
        tail_rounds = source.tail_rounds - tails
        counts = sb.control("GET", "/counters").json()
        assert source.full_rounds == 1 and tail_rounds >= 4
        # the gate's rounds (one page each) and one tail request per watcher round; +1 for a round under way
        assert counts.get("GET /tasks", 0) <= snapshots + tail_rounds + 1, (counts, snapshots, tail_rounds)
        assert not gate_task.done()
    finally:
        await watch.stop()
        gate_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await gate_task
    assert shared_poll.active_pollers() == {}  # the last one out stopped the poll


# ------------------------------------------------------------------------------ Airflow-backed store


class FakeAccessor:
    """Shaped like Airflow 3.3's AssetStateStoreAccessor (values stored as JSON, as the metadata DB does)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = json.loads(json.dumps(value))

    async def adelete(self, key: str) -> None:
        self.values.pop(key, None)


class FakeAccessors:
    """Shaped like Airflow 3.3's AssetStateStoreAccessors for a watcher feeding two assets."""

    def __init__(self, **by_name: FakeAccessor) -> None:
        self._by_name = by_name
        self._by_uri: dict[str, FakeAccessor] = {}


T_A = "0d258f0a-0095-5475-b994-802a390bd8dc"
T_B = "1d258f0a-0095-5475-b994-802a390bd8dc"


async def test_airflow_store_keeps_one_value_per_asset_and_merges_every_watched_asset():
    trigger = DebituraNewTasksTrigger(task_types=["ReplyToChat"])
    store = AirflowSeenTasksStore(trigger)
    assert store.backend == "variable"  # outside an asset watcher
    a, b = FakeAccessor({}), FakeAccessor({})
    trigger.asset_state_store = FakeAccessors(a=a, b=b)
    assert store.backend == "asset_state_store"
    assert await store.load(trigger.watch) is None
    other = DebituraNewTasksTrigger(task_types=["SignContract"])
    await AirflowSeenTasksStore(FakeHolder(FakeAccessors(a=a))).save(
        other.watch, SeenState({T_A: 5.0}, {other.state_key: mark(other)}), now=10.0
    )
    b.values[ASSET_STATE_KEY] = SeenState({T_B: 6.0}, {trigger.state_key: mark(trigger)}).to_json()
    merged = await store.load(trigger.watch)
    assert merged is not None and set(merged.ids) == {T_A, T_B}  # a newly added asset replays nothing
    await store.save(trigger.watch, merged, now=11.0)
    assert set(a.values) == set(b.values) == {ASSET_STATE_KEY}  # one key per asset, whatever the filter
    for accessor in (a, b):
        saved = SeenState.from_json(accessor.values[ASSET_STATE_KEY])
        assert saved is not None and set(saved.marks) == {trigger.state_key, other.state_key}


async def test_airflow_store_migrates_a_version_1_state_and_deletes_its_old_key():
    trigger = DebituraNewTasksTrigger(task_types=["ReplyToChat"])
    accessor = FakeAccessor({trigger.state_key: {"v": 1, "ids": {T_A: 5.0}}})
    trigger.asset_state_store = FakeAccessors(a=accessor)
    store = AirflowSeenTasksStore(trigger)
    state = await store.load(trigger.watch)
    assert state is not None and state.ids == {T_A: None} and trigger.state_key in state.marks  # resumes
    await store.save(trigger.watch, state, now=20.0)
    assert set(accessor.values) == {ASSET_STATE_KEY}  # the old per-filter key is gone


class FakeHolder:
    def __init__(self, stores: FakeAccessors) -> None:
        self.asset_state_store = stores


def mark(trigger: DebituraNewTasksTrigger):
    tracker = SeenTracker(trigger.watch, SeenState(), poll_interval=60, replay_existing=False, now=1.0)
    return tracker.mark


async def test_airflow_store_falls_back_to_a_variable_off_the_event_loop(monkeypatch):
    calls: list[tuple[str, Any]] = []
    loop_thread = threading.get_ident()

    def fake_get(key: str) -> Any:
        assert threading.get_ident() != loop_thread  # never a sync SDK call on the loop
        calls.append(("get", key))
        return json.dumps({"v": 1, "ids": {T_A: 1}})

    def fake_set(key: str, value: str) -> None:
        assert threading.get_ident() != loop_thread
        calls.append(("set", json.loads(value)))

    monkeypatch.setattr(seen_store, "_variable_get", fake_get)
    monkeypatch.setattr(seen_store, "_variable_set", fake_set)
    trigger = DebituraNewTasksTrigger()
    store = AirflowSeenTasksStore(trigger)
    state = await store.load(trigger.watch)
    assert state is not None and state.ids == {T_A: None} and trigger.state_key in state.marks
    await store.save(trigger.watch, state, now=5.0)
    assert [c[0] for c in calls] == ["get", "set"] and calls[0][1] == trigger.state_key  # one Variable per filter
    assert SeenState.from_json(calls[1][1]) == state


async def test_only_a_round_a_started_watcher_judged_becomes_the_next_tail_reads_basis(store):
    """The trusted order (what a tail read compares with) comes only from rounds the watcher judged: never from a
    round whose state did not load, an incomplete first listing, or a tail read before the first start."""
    trigger = make(store)
    early = api_task(1, "2026-01-01T00:00:00Z")
    store.fail_loads = 1
    assert await trigger._process(Round(True, [early])) == [] and not trigger._accepted  # the state did not load
    assert await trigger._process(Round(True, [early], complete=False)) == [] and not trigger._accepted
    assert await trigger._process(Round(True, [early], tail=True)) == [] and not trigger._accepted
    assert await trigger._process(Round(True, [early])) == [] and trigger._accepted  # the first start
    later = api_task(2, "2026-01-01T00:05:00Z")
    assert await trigger._process(Round(True, [early, later], tail=True)) == [later] and trigger._accepted
