"""The watcher against the sandbox on large queues, odd listings, fast neighbours and filter changes.

Each test drives the real trigger (``run()``, real HTTP, the shared poll or its own reads) with the
in-memory store shaped like Airflow 3.3's asset state store. The figures a test prints (state bytes per
task) are the ones docs/performance.md quotes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers.seen_store import MemorySeenTasksStore
from helpers.watcher import EMPTY_200, Watch, add_task

from airflow_provider_debitura.triggers import new_tasks, shared_poll
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
from airflow_provider_debitura.triggers.watcher import tracker
from airflow_provider_debitura.triggers.watcher.ids import created_epoch
from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("no_persist_grace")]


def open_ids(sb) -> set[str]:
    return {t["id"] for t in sb.state.list_tasks("Open")}


# ------------------------------------------------------------------------------------------ queue size


@pytest.mark.parametrize("coalesce", [True, False], ids=["shared-poll", "direct"])
async def test_a_backlog_beyond_ten_thousand_tasks_never_fires(debitura_conn, store, coalesce):
    """10,100 unchanged open tasks over four rounds: 0 events (the old 10,000-id cap fired 100 per round)."""
    sb = debitura_conn
    sb.control("POST", "/scenario", {"name": "large:10100"})  # created one a second: all within 6 hours
    watch = Watch(DebituraNewTasksTrigger(poll_interval=0.2, coalesce=coalesce, store=store))
    try:
        await watch.rounds(4, timeout=240)
        assert watch.events == []
        size = store.size()
        # a watermark 6 hours before the newest task, and the ids of the tasks created within those 6 hours
        assert len(store.state().ids) == 10_100 and size / 10_100 < 22.5, size
        print(f"\nbacklog of 10,100 open tasks: state {size} bytes ({size / 10_100:.3f} bytes per task)")
    finally:
        await watch.stop()


async def test_20000_new_open_tasks_fire_exactly_once_and_the_state_stays_compact(debitura_conn, store):
    """20,000 tasks appear after the watcher started: each fires once, never again, and survives a restart."""
    sb = debitura_conn
    sb.control("POST", "/scenario", {"name": "empty"})
    first = Watch(DebituraNewTasksTrigger(poll_interval=0.2, store=store))
    try:
        await first.rounds(1)
        sb.control("POST", "/scenario", {"name": "large:20000"})
        await first.until(lambda: len(first.events) >= 20_000, timeout=300)
        await first.rounds(3, timeout=240)
        ids = [e["id"] for e in first.events]
        assert len(ids) == len(set(ids)) == 20_000 and set(ids) == open_ids(sb)
    finally:
        await first.stop()
    size = store.size()
    per_task = size / 20_000
    assert per_task < 22.5, per_task  # 16 raw bytes per GUID in base64 (21.3) plus the hour groups
    print(f"\n20,000 fired open tasks: state {size} bytes ({per_task:.1f} bytes per task)")

    second = Watch(DebituraNewTasksTrigger(poll_interval=0.2, store=store))  # a restart, at scale
    try:
        await second.rounds(3, timeout=240)
        assert second.events == []
        new = add_task(sb, "ReplyToChat", "LRG-000001")
        await second.until(lambda: len(second.events) == 1, timeout=120)
        assert [e["id"] for e in second.events] == [new["id"]]
    finally:
        await second.stop()


# ------------------------------------------------------------------------------------------ odd listings


async def test_empty_listings_never_make_a_task_fire_twice(debitura_conn, store):
    """Well-formed empty 200s (a proxy, an API hiccup) once made the watcher re-fire its whole queue."""
    sb = debitura_conn
    watch = Watch(DebituraNewTasksTrigger(poll_interval=0.15, replay_existing=True, store=store))
    try:
        await watch.rounds(2)
        before = len(watch.events)
        assert before == len(open_ids(sb)) > 5
        sb.control("PUT", "/faults", {"rules": [EMPTY_200 | {"count": 6}]})
        await watch.rounds(6)
        sb.control("DELETE", "/faults")
        await watch.rounds(4)
        assert len(watch.events) == before
        added = add_task(sb)
        await watch.until(lambda: len(watch.events) == before + 1)
        assert watch.events[-1]["id"] == added["id"]
    finally:
        await watch.stop()


async def test_a_fast_neighbour_on_the_shared_poll_does_not_shorten_a_slow_watchers_memory(debitura_conn, store):
    """A watcher with poll_interval=60 shares the poll with a 0.1 s neighbour. Rounds that reach it at the
    neighbour's pace (the shared poll before it kept each subscriber to its own interval), and the empty
    listings among them, never make it fire again for what it fired. The neighbour's rounds are the clock."""
    sb = debitura_conn
    add_task(sb, "SignContract", None)
    slow = Watch(DebituraNewTasksTrigger(poll_interval=60, replay_existing=True, store=store))
    fast = Watch(DebituraNewTasksTrigger(task_types=["Generic"], poll_interval=0.1, store=MemorySeenTasksStore()))
    try:
        await slow.rounds(1, timeout=60)
        fired = len(slow.events)
        assert fired > 5 and any(e["type"] == "SignContract" for e in slow.events)
        sb.control("PUT", "/faults", {"rules": [EMPTY_200 | {"count": 8}]})
        await fast.rounds(8, timeout=60)
        sb.control("DELETE", "/faults")
        await fast.rounds(5, timeout=60)
        assert len(slow.events) == fired
        assert shared_poll.active_pollers()["debitura_default"].subscribers == 2
    finally:
        await fast.stop()
        await slow.stop()


class ShiftedClock:
    """The watcher's ``time`` module with a wall clock that can be moved forward (its monotonic clock is real)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.monotonic = time.monotonic

    def time(self) -> float:
        return time.time() + self.offset


async def test_a_sibling_whose_filter_matches_nothing_does_not_make_the_state_grow(debitura_conn, store, monkeypatch):
    """Issue 20 item 9: beside a watcher of the same asset whose filter matches nothing, every fired id was kept
    forever (its watermark never moved and held the pruning of the shared state back). Tasks created 7 hours
    apart (the sandbox's and the watcher's clocks moved together): the state keeps what it keeps alone."""
    sb = debitura_conn
    clock = ShiftedClock()
    monkeypatch.setattr(new_tasks, "time", clock)
    main = Watch(DebituraNewTasksTrigger(poll_interval=0.15, store=store))
    sibling = Watch(DebituraNewTasksTrigger(task_types=["SelectQuoteWinner"], poll_interval=0.15, store=store))
    fired: list[str] = []
    try:
        await main.rounds(2)
        await sibling.rounds(2)
        for _ in range(12):
            clock.offset += 7 * 3600
            sb.state.advance_clock(7 * 3600)
            fired.append(add_task(sb)["id"])
            await main.until(lambda: len(main.events) == len(fired))
            await main.rounds(2)
            await sibling.rounds(2)
        assert [e["id"] for e in main.events] == fired and sibling.events == []
        kept = set(store.state().ids)
        assert kept == {fired[-1]}, len(kept)  # was all 12 (+21 bytes a task, forever)
        print(f"\nbeside a sibling matching nothing, after 12 tasks: {len(kept)} id(s), {store.size()} bytes")
    finally:
        await sibling.stop()
        await main.stop()


# ---------------------------------------------------------------------------------------- filter change


async def run_for(trigger: DebituraNewTasksTrigger, rounds: int = 3) -> list[dict[str, Any]]:
    watch = Watch(trigger)
    try:
        await watch.rounds(rounds)
    finally:
        await watch.stop()  # cancelled like a redeploy cancels it: it saves how far it got
    return watch.events


async def test_a_filter_change_and_its_revert_lose_nothing_and_repeat_nothing(debitura_conn, store):
    sb = debitura_conn
    chat = {"task_types": ["ReplyToChat"], "poll_interval": 0.15, "store": store}
    wide = {"task_types": ["ReplyToChat", "SignContract"], "poll_interval": 0.15, "store": store}
    old_sign = sb.control("POST", "/tasks", {"type": "SignContract", "minutesAgo": 60}).json()
    assert await run_for(DebituraNewTasksTrigger(**chat)) == []  # first start: the open queue is backlog

    # deploy 2 widens the filter; while it deploys a chat task and a SignContract appear
    during = [add_task(sb, "ReplyToChat", "INV-1002"), add_task(sb, "SignContract", None)]
    events = await run_for(DebituraNewTasksTrigger(**wide))
    assert [e["id"] for e in events] == [t["id"] for t in during]  # neither is lost in a fresh baseline
    assert old_sign["id"] not in {e["id"] for e in events}  # open an hour before the change: backlog

    # deploy 3 reverts: nothing either filter fired fires again; a task created meanwhile fires
    after = add_task(sb, "ReplyToChat", "INV-1003")
    events = await run_for(DebituraNewTasksTrigger(**chat))
    assert [e["id"] for e in events] == [after["id"]]

    stored = store.state()
    assert {m.watch.types for m in stored.marks.values()} == {("ReplyToChat",), ("ReplyToChat", "SignContract")}
    assert list(store.values) == [ASSET_STATE_KEY] and len(stored.marks) == 2  # one mark each, in one value


async def test_a_watcher_that_stops_saves_how_far_it_got(debitura_conn, store):
    trigger = DebituraNewTasksTrigger(poll_interval=0.15, store=store)
    await run_for(trigger, rounds=2)
    listed = store.state().marks[trigger.state_key].listed
    assert listed is not None and time.time() - listed < 10
    newest = max(created_epoch(t["dateCreated"]) or 0 for t in debitura_conn.client().get("/tasks").json()["tasks"])
    assert store.state().marks[trigger.state_key].cutoff == pytest.approx(newest - 6 * 3600, abs=1e-3)


async def test_a_task_fired_just_before_a_redeploy_fires_again_rather_than_being_lost(
    debitura_conn, store, monkeypatch
):
    """Airflow drops the events of a trigger a redeploy replaced before they were stored; within the grace
    period the watcher has not recorded the task yet, so the next version fires it again (at least once)."""
    monkeypatch.setattr(tracker, "PERSIST_GRACE", 30.0)
    sb = debitura_conn
    first = Watch(DebituraNewTasksTrigger(poll_interval=0.15, store=store))
    try:
        await first.rounds(2)
        task = add_task(sb)
        await first.until(lambda: len(first.events) == 1)
        await first.rounds(2)
    finally:
        await first.stop()
    assert task["id"] not in store.state().ids
    second = Watch(DebituraNewTasksTrigger(task_types=["ReplyToChat"], poll_interval=0.15, store=store))
    try:
        await second.rounds(3)
        assert [e["id"] for e in second.events] == [task["id"]]
    finally:
        await second.stop()
