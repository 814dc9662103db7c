"""The watcher's memory as pure rules (no server, no Airflow): what is new, what is backlog, when an id is
dropped, how a filter change and a revert are read, and how the state is encoded.

Tables use literal hours and seconds, not the module's constants, so that changing a threshold (the
watermark lag, the forget window, the sudden-drop guard) makes a row fail: the docs promise these values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest

from airflow_provider_debitura.triggers.watcher.ids import canonical_guid, created_epoch, decode_ids, encode_ids
from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY, Mark, SeenState, WatchFilter, watcher_key
from airflow_provider_debitura.triggers.watcher.store import dumps
from airflow_provider_debitura.triggers.watcher.tracker import SeenTracker

H = 3600.0
T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15): every time below is relative to it
ALL = WatchFilter("debitura_default")
CHAT = WatchFilter("debitura_default", ("ReplyToChat",))
SIGN = WatchFilter("debitura_default", ("SignContract",))
CHAT_OR_SIGN = WatchFilter("debitura_default", ("ReplyToChat", "SignContract"))


def tid(n: int) -> str:
    return str(uuid.UUID(int=n))


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def task(n: int, created: float | None, type_: str = "ReplyToChat", **extra: object) -> dict[str, object]:
    return {
        "id": tid(n),
        "type": type_,
        "status": "Open",
        "caseId": None,
        "dateCreated": iso(created) if created else None,
    } | extra


def tracker(
    watch: WatchFilter = ALL,
    state: SeenState | None = None,
    *,
    now: float = T0,
    poll: float = 60.0,
    replay: bool = False,
) -> SeenTracker:
    return SeenTracker(watch, state or SeenState(), poll_interval=poll, replay_existing=replay, now=now)


def fired(t: SeenTracker, tasks: Sequence[dict[str, object]], now: float, *, complete: bool = True) -> list[str]:
    return [str(x["id"]) for x in t.observe(tasks, complete=complete, now=now).new]


# --------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3F2B8C1E-4D5A-4E6F-8A7B-9C0D1E2F3A4B", "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b"),
        ("{3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b}", "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b"),
        ("3f2b8c1e4d5a4e6f8a7b9c0d1e2f3a4b", "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b"),
        ("INV-1005", None),
        ("", None),
        (12345, None),
        (None, None),
        ("3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4", None),
    ],
)
def test_canonical_guid(value, expected):
    assert canonical_guid(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-01-15T08:00:00Z", T0),
        ("2027-01-15T08:00:00", T0),  # naive means UTC, as everywhere in this provider
        ("2027-01-15T09:00:00+01:00", T0),
        ("2027-01-15T08:00:00.500000Z", T0 + 0.5),
        ("2027-01-15T08:00:00.5000000Z", T0 + 0.5),  # .NET's 7 fractional digits
        ("yesterday", None),
        (None, None),
        ("", None),
        (17, None),
    ],
)
def test_created_epoch(value, expected):
    assert created_epoch(value) == expected


# ---------------------------------------------------------------------------------------------- codec


def test_ids_encode_to_16_bytes_each_and_back():
    ids = [tid(n * 7919) for n in range(1, 1001)]
    text = encode_ids(ids)
    assert len(text) / len(ids) < 21.4  # base64 of 16 raw bytes: 21.3 characters per GUID
    assert decode_ids(text) == sorted(ids)
    assert decode_ids(encode_ids([])) == []
    for bad in ("not base64!", "AAAA", 5):
        with pytest.raises(ValueError):
            decode_ids(bad)


def test_state_round_trips_and_groups_ids_by_hour():
    state = SeenState(
        {tid(1): T0 + 10, tid(2): T0 + 20, tid(3): T0 + H + 1, tid(4): None},
        {CHAT.key: Mark(CHAT, created=T0, saved=T0 + 5, hi=T0 + H, cutoff=T0 - 5 * H)},
    )
    stored = json.loads(dumps(state.to_json()))
    assert stored["v"] == 2 and len(stored["ids"]) == 2  # two hour groups
    back = SeenState.from_json(stored)
    assert back is not None and back.marks == state.marks
    assert set(back.ids) == set(state.ids) and back.ids[tid(4)] is None
    # after a reload an id's age is its hour's end: never earlier than the truth, so never dropped too early
    assert all(back.ids[t] >= state.ids[t] for t in (tid(1), tid(2), tid(3)))  # type: ignore[operator]
    assert SeenState.from_json(dumps(state.to_json())) == back  # a JSON string (Variable) loads too


def test_a_stored_age_does_not_move_when_the_state_is_saved_again():
    """A reloaded id's age is its hour group's end; saving it again once put it in the next group, an hour later
    on every save, so ids saved often were never dropped."""
    state = SeenState({tid(1): T0 + 10}, {ALL.key: Mark(ALL, created=T0, saved=T0)})
    ages = []
    for _ in range(5):
        back = SeenState.from_json(dumps(state.merged_for_save(state, ALL.key, T0).to_json()))
        assert back is not None
        ages.append(back.ids[tid(1)])
        state = back
    assert ages == [T0 + H] * 5


@pytest.mark.parametrize(
    "value",
    [None, "not json", 5, {"v": 99}, {"v": 2, "ids": {"1": "!!"}, "marks": {}}, {"v": 2, "ids": {}, "marks": {"k": 1}}],
)
def test_a_value_this_module_did_not_write_is_no_state(value):
    assert SeenState.from_json(value) is None


def test_a_version_1_state_loads_as_ids_of_unknown_age():
    state = SeenState.from_json({"v": 1, "ids": {tid(1).upper(): 5.0, "junk": 6.0}})
    assert state is not None and state.ids == {tid(1): None} and state.marks == {}


# ------------------------------------------------------------------------------------ first start, new


def test_first_start_records_the_queue_as_backlog_in_one_number_and_the_last_6_hours_as_ids():
    backlog = [task(n, T0 - n * 60) for n in range(1, 20_001)]
    t = tracker()
    outcome = t.observe(backlog, complete=True, now=T0)
    assert (outcome.start, outcome.backlog, outcome.new) == ("first start", 20_000, [])
    assert t.mark.cutoff == T0 - 60 - 6 * H  # 6 hours before the newest task's creation time
    assert set(t.state.ids) == {tid(n) for n in range(1, 361)}  # the 360 tasks created within those 6 hours
    size = len(dumps(t.state.to_json()))
    assert size < 360 * 22 + 300, size  # 20,000 open tasks: one number plus 21.4 bytes per recent one
    for minute in range(1, 4):
        assert fired(t, backlog, T0 + minute * 60) == []
    new = task(99_999, T0 + 30)
    assert fired(t, [*backlog, new], T0 + 240) == [tid(99_999)]
    assert fired(t, [*backlog, new], T0 + 300) == []


def test_first_start_judges_tasks_that_appear_later_within_the_lag_by_id_not_by_timestamp():
    """Issue 20 item 8: the first start's watermark sat on the newest backlog task, so a later task dated at or
    before it never fired (3 of 14 missed, and 1,500 of 1,500 of a bulk import sharing one second)."""
    newest = T0 - 60
    backlog = [task(n, T0 - n * 3600) for n in range(2, 12)]  # 10 tasks, an hour apart
    backlog += [task(n, newest) for n in range(1000, 1010)]  # the newest second already holds 10 tasks
    t = tracker()
    assert t.observe(backlog, complete=True, now=T0).backlog == 20
    later = [
        task(1, T0 + 30),  # an ordinary new task
        task(20, newest - 2),  # the server's clock 2 s behind
        task(21, newest),  # the same timestamp as the newest backlog task
        task(22, newest - 3600),  # backdated an hour
        *(task(n, newest) for n in range(2000, 3500)),  # the rest of a bulk import sharing that second
    ]
    first = fired(t, [*backlog, *later], T0 + 60)
    assert sorted(first) == sorted(str(x["id"]) for x in later)  # all 1,504, none of the 20 backlog tasks
    assert fired(t, [*backlog, *later], T0 + 120) == []  # once
    state = SeenState.from_json(t.snapshot(T0 + 3600).merged_for_save(None, ALL.key, T0 + 3600).to_json())
    restarted = tracker(ALL, state, now=T0 + 7200)  # and not again after a restart
    assert restarted.start == "resumed" and fired(restarted, [*backlog, *later], T0 + 7200) == []


def test_replay_existing_fires_the_backlog_once_oldest_first():
    t = tracker(replay=True)
    assert fired(t, [task(2, T0 - 60), task(1, T0 - 120)], T0) == [tid(1), tid(2)]
    assert fired(t, [task(2, T0 - 60), task(1, T0 - 120)], T0 + 60) == []


def test_new_tasks_fire_once_oldest_first_and_stay_recorded_while_open():
    t = tracker()
    fired(t, [task(1, T0 - H)], T0)
    burst = [task(n, T0 + 250 - n * 0.01) for n in range(10, 20_010)]  # listed newest first
    first = fired(t, burst, T0 + 300)
    assert len(first) == 20_000 and first[0] == tid(20_009) and first[-1] == tid(10)
    for minute in range(6, 10):
        assert fired(t, burst, T0 + minute * 60) == []
    size = len(dumps(t.state.to_json()))
    assert size / 20_000 < 22  # 16 raw bytes per GUID in base64, plus a little per hour group


def test_records_outside_the_filter_or_without_a_guid_never_fire_and_are_reported_once():
    t = tracker(CHAT)
    fired(t, [], T0)
    odd = task(1, T0 + 5) | {"id": "not-a-guid"}
    outcome = t.observe([odd, task(2, T0 + 5, "SignContract"), task(3, T0 + 6)], complete=True, now=T0 + 60)
    assert [x["id"] for x in outcome.new] == [tid(3)]
    assert outcome.unusable == ["a ReplyToChat task whose id 'not-a-guid' is not a GUID"]
    assert t.observe([odd], complete=True, now=T0 + 120).unusable == []  # once


def test_an_incomplete_listing_fires_what_is_new_but_never_starts_moves_or_forgets():
    t = tracker()
    assert t.observe([task(1, T0 - 60)], complete=False, now=T0).start is None
    assert t.start == "first start" and t.state.ids == {}  # no backlog from a listing that may miss tasks
    fired(t, [task(1, T0 - 60)], T0 + 1)
    cutoff = t.mark.cutoff
    assert fired(t, [task(2, T0 + 7 * H)], T0 + 8 * H, complete=False) == [tid(2)]
    assert t.mark.cutoff == cutoff


@pytest.mark.parametrize(("seconds_later", "stored"), [(29.0, False), (31.0, True)])
def test_a_fired_task_is_stored_30_seconds_after_its_event(seconds_later, stored):
    """Airflow may drop an event of a trigger a redeploy replaced: until 30 s have passed, a restart fires it again."""
    t = tracker()
    fired(t, [], T0)
    assert fired(t, [task(1, T0 + 10)], T0 + 60) == [tid(1)]
    assert t.save_due(T0 + 60)  # the mark moved: saved now, without the fresh id
    assert tid(1) not in t.snapshot(T0 + 60).ids
    t.dirty = False
    assert t.save_due(T0 + 60 + seconds_later) is stored
    assert (tid(1) in t.snapshot(T0 + 60 + seconds_later).ids) is stored


def test_a_replayed_backlog_is_not_covered_by_the_stored_watermark_until_it_settled():
    t = tracker(replay=True)
    assert len(fired(t, [task(1, T0 - 60), task(2, T0 - 30), task(3, T0 - 7 * H)], T0)) == 3
    assert t.mark.cutoff == T0 - 30 - 6 * H  # in memory the watermark covers the oldest
    early = t.snapshot(T0 + 1)
    assert early.marks[ALL.key].cutoff is not None and early.marks[ALL.key].cutoff < T0 - 7 * H and not early.ids
    assert t.snapshot(T0 + 31).marks[ALL.key].cutoff == T0 - 30 - 6 * H


# ------------------------------------------------------------------------------- watermark and pruning


@pytest.mark.parametrize(
    ("age_hours", "kept"),
    [(5.9, True), (6.1, False)],
    ids=["younger-than-the-lag", "older-than-the-lag"],
)
def test_a_fired_id_is_dropped_once_the_watermark_passes_its_creation(age_hours, kept):
    """The watermark trails the newest task listed by 6 h; ids behind it are covered by it instead."""
    t = tracker()
    fired(t, [], T0)
    fired(t, [task(1, T0 + 60)], T0 + 120)
    assert tid(1) in t.state.ids
    newest = T0 + 60 + age_hours * H
    fired(t, [task(1, T0 + 60), task(2, newest)], newest + 10)
    assert (tid(1) in t.state.ids) is kept
    assert fired(t, [task(1, T0 + 60), task(2, newest)], newest + 70) == []  # covered or recorded: never again


@pytest.mark.parametrize(
    ("listings", "expected_refires"),
    [
        (["empty"] * 3, 0),
        (["empty"] * 50, 0),
        (["empty", "half", "empty", "full"], 0),
    ],
)
def test_no_listing_makes_a_dated_task_fire_twice(listings, expected_refires):
    """Three well-formed empty listings once re-fired 22 of 22: absence no longer forgets a dated id."""
    t = tracker()
    fired(t, [], T0)
    queue = [task(n, T0 + n) for n in range(1, 23)]
    assert len(fired(t, queue, T0 + 60)) == 22
    refires = 0
    for i, kind in enumerate(listings, start=2):
        shown = {"empty": [], "half": queue[:11], "full": queue}[kind]
        refires += len(fired(t, shown, T0 + i * 0.2))
    refires += len(fired(t, queue, T0 + 10 * H))
    assert refires == expected_refires


def test_the_watermark_ignores_a_task_dated_in_the_future():
    t = tracker()
    fired(t, [task(1, T0 + 365 * 24 * H)], T0)  # an odd record dated next year
    assert t.mark.hi == T0 and t.mark.cutoff == T0 - 6 * H
    assert fired(t, [task(2, T0 + 30)], T0 + 60) == [tid(2)]  # later tasks still fire


UNDATED = [task(n, None) for n in range(1, 23)]


@pytest.mark.parametrize(
    ("absent_at", "gone_after"),
    [
        # one id vanishes (poll 60 s): forgotten after 3 x 60 s of absence, by time, however many rounds
        ([1.0, 1.4, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0], None),
        ([1.0, 150.0, 180.0], None),
        ([1.0, 100.0, 181.0], 181.0),
        ([1.0, 181.0], 181.0),
    ],
)
def test_an_undated_id_is_forgotten_by_time_not_by_rounds(absent_at, gone_after):
    t = tracker(replay=True)
    fired(t, UNDATED, T0)
    for at in absent_at:
        fired(t, UNDATED[1:], T0 + at)
        assert (tid(1) in t.state.ids) is (gone_after is None or at < gone_after), at


@pytest.mark.parametrize(
    ("absent_for", "remembered"),
    [(180.0, True), (1799.0, True), (1801.0, False)],
)
def test_a_sudden_drop_is_not_trusted_for_quick_forgetting(absent_for, remembered):
    """All 22 undated ids vanish at once (an empty 200): they are kept for 30 x poll_interval, not 3."""
    t = tracker(replay=True)
    fired(t, UNDATED, T0)
    fired(t, [], T0 + 1)
    fired(t, [], T0 + 1 + absent_for)
    assert (len(t.state.ids) == 22) is remembered
    assert len(fired(t, UNDATED, T0 + 2 + absent_for)) == (0 if remembered else 22)


def test_an_undated_id_learns_its_age_from_a_later_listing():
    t = tracker(state=SeenState({tid(1): None}, {ALL.key: Mark(ALL, created=0.0, saved=T0)}))
    assert t.start == "resumed"
    assert fired(t, [task(1, T0 - 60)], T0) == []
    assert t.state.ids[tid(1)] == T0 - 60 or tid(1) not in t.state.ids


# ------------------------------------------------------------------------------ filter change, revert


def run_filter(
    watch: WatchFilter, stored: SeenState | None, listings: Sequence[Sequence[dict[str, object]]], at: float
):
    """A deploy of ``watch``: load ``stored``, run its listings one minute apart; returns (fired ids, saved)."""
    state = (
        SeenState.from_json(stored.merged_for_save(None, next(iter(stored.marks)), at).to_json()) if stored else None
    )
    t = tracker(watch, state, now=at)
    out: list[str] = []
    for i, listing in enumerate(listings):
        out += fired(t, listing, at + i * 60)
        t.mark.saved = at + i * 60
    saved = SeenState.from_json(t.state.merged_for_save(None, watch.key, at).to_json())
    assert saved is not None
    return out, saved


def test_a_filter_change_keeps_what_was_fired_and_loses_nothing_created_meanwhile():
    chat_old, sign_old = task(1, T0 - H), task(2, T0 - H, "SignContract")
    chat_x = task(3, T0 + 60)
    fired1, state = run_filter(CHAT, None, [[chat_old, sign_old], [chat_old, sign_old, chat_x]], T0)
    assert fired1 == [tid(3)]
    # while the new DAG version deploys, two tasks appear: one each filter matches, one only the new one does
    chat_deploy, sign_deploy = task(4, T0 + 600), task(5, T0 + 610, "SignContract")
    queue = [chat_old, sign_old, chat_x, chat_deploy, sign_deploy]
    fired2, state = run_filter(CHAT_OR_SIGN, state, [queue, queue], T0 + 900)
    assert fired2 == [tid(4), tid(5)]  # nothing lost; the SignContract already open before is backlog
    assert set(state.marks) == {CHAT.key, CHAT_OR_SIGN.key}


def test_a_revert_fires_nothing_twice_and_nothing_late():
    chat_a, sign_b = task(1, T0 - H), task(2, T0 - H, "SignContract")
    _, state = run_filter(CHAT, None, [[chat_a, sign_b]], T0)
    # the filter becomes SignContract only for a day; a chat task comes and stays unanswered, a SignContract fires
    chat_during, sign_during = task(3, T0 + 2 * H), task(4, T0 + 3 * H, "SignContract")
    queue = [chat_a, sign_b, chat_during, sign_during]
    fired2, state = run_filter(SIGN, state, [queue], T0 + 4 * H)
    assert fired2 == [tid(4)]  # created while the new version deployed: not lost
    state.marks[SIGN.key].listed = state.marks[SIGN.key].saved = T0 + 24 * H  # it ran until the revert
    # revert to chat tasks: the chat task created while chat tasks were not watched is backlog (not fired
    # late); one created during the revert's own deploy fires
    chat_revert = task(5, T0 + 24 * H + 10)
    fired3, state = run_filter(CHAT, state, [[*queue, chat_revert]] * 3, T0 + 24 * H + 600)
    assert fired3 == [tid(5)]
    # and back again: nothing SignContract fired before fires again
    fired4, _ = run_filter(SIGN, state, [[*queue, chat_revert]] * 3, T0 + 48 * H)
    assert fired4 == []


@pytest.mark.parametrize(("minutes_before", "fires"), [(9.0, True), (11.0, False)])
def test_a_filter_change_fires_what_it_newly_watches_from_ten_minutes_before_the_old_filter_stopped(
    minutes_before, fires
):
    """A deploy takes minutes to reach the triggerer: a task created meanwhile must not become backlog."""
    _, state = run_filter(CHAT, None, [[task(1, T0 - H)]] * 2, T0)
    stopped = state.marks[CHAT.key].listed
    assert stopped == T0 + 60
    sign = task(2, stopped - minutes_before * 60, "SignContract")
    fired2, _ = run_filter(SIGN, state, [[task(1, T0 - H), sign]], T0 + 2 * H)
    assert fired2 == ([tid(2)] if fires else [])


def test_a_widened_filter_fires_nothing_the_narrow_one_fired_after_a_revert():
    a, b = task(1, T0 + 60), task(2, T0 + 120, "SignContract")
    _, state = run_filter(CHAT_OR_SIGN, None, [[], [a, b]], T0)
    fired2, state = run_filter(CHAT, state, [[a, b]], T0 + H)
    fired3, _ = run_filter(CHAT_OR_SIGN, state, [[a, b]], T0 + 2 * H)
    assert fired2 == fired3 == []


@pytest.mark.parametrize(
    ("own_saved", "other_created", "start"),
    [
        (T0, T0 - 3600, "resumed"),  # a sibling that was there before: a normal restart
        (T0, T0 - 599, "filter change"),  # replaced at the deploy (the old one saved a moment after)
        (T0, T0 - 601, "resumed"),
        (T0, T0 + 3600, "filter change"),  # replaced later: this is a revert
    ],
)
def test_a_mark_is_superseded_when_another_filter_started_after_its_last_save(own_saved, other_created, start):
    state = SeenState(
        marks={
            CHAT.key: Mark(CHAT, created=T0 - 9 * H, saved=own_saved, hi=T0, cutoff=T0 - 6 * H),
            SIGN.key: Mark(SIGN, created=other_created, saved=T0 + H, hi=T0 + H, cutoff=T0 - 5 * H),
        }
    )
    assert tracker(CHAT, state, now=T0 + 2 * H).start == start


def test_marks_of_another_connection_never_cover_or_supersede():
    other = WatchFilter("other_account")
    state = SeenState(marks={other.key: Mark(other, created=T0, saved=T0, hi=T0 + H, cutoff=T0 + H)})
    t = tracker(ALL, state, now=T0 + 2 * H)
    assert t.start == "first start"
    fired(t, [], T0 + 2 * H)
    assert fired(t, [task(1, T0 + 2 * H + 1)], T0 + 2 * H + 60) == [tid(1)]


# ------------------------------------------------------------------------------- cleanup and merging


@pytest.mark.parametrize(("idle_days", "kept"), [(6.9, True), (7.1, False)])
def test_a_mark_no_watcher_saved_for_a_week_is_removed(idle_days, kept):
    state = SeenState(
        marks={
            SIGN.key: Mark(SIGN, created=T0 - 30 * 24 * H, saved=T0, hi=T0, cutoff=T0 - 6 * H),
            CHAT.key: Mark(CHAT, created=T0, saved=T0, hi=T0, cutoff=T0),
        }
    )
    state.prune(T0 + idle_days * 24 * H, keep=CHAT.key)
    assert (SIGN.key in state.marks) is kept


def test_a_superseded_mark_does_not_hold_ids_back_but_a_sibling_does():
    ids = {tid(1): T0 - 2 * H, tid(2): T0 + 2 * H}
    old = Mark(SIGN, created=T0 - 9 * H, saved=T0 - 10 * H, hi=T0 - 10 * H, cutoff=T0 - 16 * H)
    live = Mark(CHAT, created=T0 - 9 * H, saved=T0, hi=T0 + 5 * H, cutoff=T0 - H)
    replaced = SeenState(dict(ids), {SIGN.key: old, CHAT.key: live})
    assert replaced.prune(T0, keep=CHAT.key) == [tid(1)]
    sibling = SeenState(dict(ids), {SIGN.key: Mark(SIGN, T0 - 20 * H, T0, T0 - 10 * H, T0 - 16 * H), CHAT.key: live})
    assert sibling.prune(T0, keep=CHAT.key) == []


class SharedValue:
    """One asset's stored value, saved into by several running trackers (as the asset state store is)."""

    def __init__(self) -> None:
        self.value: object = None

    def save(self, t: SeenTracker, now: float) -> None:
        t.mark.saved = now
        stored = SeenState.from_json(self.value)
        self.value = json.loads(dumps(t.snapshot(now).merged_for_save(stored, t.watch.key, now).to_json()))

    def load(self) -> SeenState:
        state = SeenState.from_json(self.value)
        assert state is not None
        return state


def run_beside(sibling: WatchFilter | None, n: int) -> SeenState:
    """A watcher of every type fires ``n`` tasks created 7 hours apart, each listed a minute after its creation;
    ``sibling`` (if any) watches the same asset all along. Returns the stored state."""
    shared = SharedValue()
    main = tracker(ALL, now=T0)
    other = tracker(sibling, now=T0) if sibling is not None else None
    for i in range(n):
        at = T0 + i * 7 * H + 60
        listing = [task(i + 1, at - 60)] if i else []  # the task before it was solved
        assert len(fired(main, listing, at)) == (1 if i else 0)
        if other is not None:
            fired(other, listing, at)
            shared.save(other, at + 31)
        shared.save(main, at + 31)
    return shared.load()


def test_a_sibling_whose_filter_matches_nothing_does_not_keep_the_others_ids_forever():
    """Issue 20 item 9: beside a sibling matching nothing, 2,001 fired ids were kept (43 kB, +21 bytes a task,
    forever) against 1 without it: the sibling's watermark never moved, and pruning took the lowest one."""
    alone = run_beside(None, 201)
    beside = run_beside(WatchFilter("debitura_default", ("AssignBankAccount",)), 201)
    assert len(alone.ids) == 1
    assert len(beside.ids) == 1, len(beside.ids)  # was 200
    assert len(dumps(beside.to_json())) < len(dumps(alone.to_json())) + 400  # one more mark, no more ids


def test_a_sibling_that_lists_an_id_it_matches_keeps_it_until_its_own_watermark_passes_it():
    """Per-mark pruning must not drop an id a sibling still needs: SIGN starts after ALL fired a SignContract,
    lists it (as seen) for days while only chat tasks come; ALL's watermark passes it, SIGN's does not."""
    shared = SharedValue()
    every = tracker(ALL, now=T0)
    fired(every, [], T0)
    sign = task(1, T0 + 60, "SignContract")
    assert fired(every, [sign], T0 + 120) == [tid(1)]
    shared.save(every, T0 + 200)
    signs = tracker(SIGN, shared.load(), now=T0 + 300)
    assert signs.start == "filter change" and fired(signs, [sign], T0 + 300) == []
    shared.save(signs, T0 + 300)
    for day in range(1, 4):  # chat tasks a day apart: ALL's watermark moves past the SignContract
        at = T0 + day * 24 * H
        chat = task(100 + day, at - 60)
        fired(every, [sign, chat], at)
        shared.save(every, at)
        assert fired(signs, [sign, chat], at) == []
        shared.save(signs, at)
    assert tid(1) in shared.load().ids  # SIGN listed it: its own watermark must pass it first
    again = tracker(SIGN, shared.load(), now=T0 + 4 * 24 * H)
    assert again.start == "resumed" and fired(again, [sign], T0 + 4 * 24 * H) == []


@pytest.mark.parametrize(
    ("listed_hours_after", "hi", "kept"),
    [
        (5.9, None, True),  # listed less than the lag after the task's creation: it might still list it
        (6.1, None, False),  # matches nothing, listed 6 hours after: done
        (6.1, -2.5, False),  # the newest task it listed is older than this one (by more than two hour groups)
        (6.1, -1.5, True),  # ... or not clearly older: it may have listed this one
        (6.1, 0.0, True),  # it listed something as new: its watermark must pass it
    ],
)
def test_a_mark_releases_an_id_by_its_watermark_or_by_having_listed_the_queue_without_it(listed_hours_after, hi, kept):
    newest = None if hi is None else T0 + hi * H
    cutoff = None if newest is None else newest - 6 * H
    sibling = Mark(SIGN, T0 - 9 * H, saved=T0, hi=newest, cutoff=cutoff, listed=T0 + listed_hours_after * H)
    live = Mark(CHAT, created=T0 - 9 * H, saved=T0, hi=T0 + 7 * H, cutoff=T0 + H, listed=T0 + 7 * H)
    state = SeenState({tid(1): T0}, {SIGN.key: sibling, CHAT.key: live})
    state.prune(T0 + 7 * H, keep=CHAT.key)
    assert (tid(1) in state.ids) is kept


def test_saving_merges_other_watchers_of_the_asset_and_keeps_forgotten_ids_forgotten():
    stored = SeenState(
        {tid(1): T0, tid(2): None},
        {SIGN.key: Mark(SIGN, created=T0 - H, saved=T0, hi=T0, cutoff=T0 - 6 * H)},
    )
    mine = SeenState({tid(3): T0}, {CHAT.key: Mark(CHAT, created=T0 - H, saved=T0 + 1, hi=T0, cutoff=T0 - 6 * H)})
    mine.forgotten.add(tid(2))
    merged = mine.merged_for_save(stored, CHAT.key, T0 + 1)
    assert set(merged.marks) == {SIGN.key, CHAT.key}
    assert set(merged.ids) == {tid(1), tid(3)}


def test_keys():
    assert ASSET_STATE_KEY == "debitura_new_tasks"
    assert CHAT.key == watcher_key("debitura_default", ["ReplyToChat"], None)
    assert CHAT_OR_SIGN.key == WatchFilter("debitura_default", ("SignContract", "ReplyToChat")).key
    assert len(CHAT.key) < 250  # fits an Airflow Variable key
