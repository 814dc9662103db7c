"""Two reply runs in lockstep (issue 20 item 10): each run posts in its own order, so they meet and one yields.

Two threads post the same 20 drafts through one in-memory store; every gateway call waits for the other
run's call of the same step (a barrier), the worst case of two runs started 0 s apart: both re-read their
case in the same step and both post in the next. In the given order every case got two messages; in each
run's own order, the first case a run re-reads that the other already answered makes it leave the rest.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from helpers.fake_gateway import FakeGateway, make_task
from helpers.reply_drafts import draft_replies

from airflow_provider_debitura.replies import CaseDraft, ReplyReport, post_drafts

CASES = [f"0e0e0e0e-0000-4000-8000-{i:012d}" for i in range(20)]


class Lockstep:
    """A barrier that a party can leave (a run that yielded or finished no longer holds the other back)."""

    def __init__(self, parties: int) -> None:
        self.cond = threading.Condition()
        self.parties, self.waiting, self.generation = parties, 0, 0

    def step(self) -> None:
        with self.cond:
            generation = self.generation
            self.waiting += 1
            if self.waiting >= self.parties:
                self._release()
            else:
                assert self.cond.wait_for(lambda: self.generation != generation, timeout=30)

    def leave(self) -> None:
        with self.cond:
            self.parties -= 1
            if self.waiting and self.waiting >= self.parties:
                self._release()

    def _release(self) -> None:
        self.waiting, self.generation = 0, self.generation + 1
        self.cond.notify_all()


class SteppedGateway:
    """One run's view of the shared store: every call is one lockstep step."""

    def __init__(self, store: FakeGateway, lockstep: Lockstep, lock: threading.Lock) -> None:
        self.store, self.lockstep, self.lock = store, lockstep, lock

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.store, name)

        def stepped(*args: Any, **kwargs: Any) -> Any:
            self.lockstep.step()
            with self.lock:
                return call(*args, **kwargs)

        return stepped


def _drafts(store: FakeGateway) -> list[CaseDraft]:
    return draft_replies(store, [make_task(i, case, minutes=i) for i, case in enumerate(CASES)])[1]


def _race(shuffles: tuple[Any, Any]) -> tuple[int, list[str], list[ReplyReport]]:
    """Two lockstep runs; returns (duplicated cases, the unanswered cases, reports)."""
    store, lockstep, lock = FakeGateway(), Lockstep(2), threading.Lock()
    drafts = _drafts(store)
    reports = [ReplyReport(), ReplyReport()]

    def run(index: int) -> None:
        try:
            gateway = SteppedGateway(store, lockstep, lock)
            post_drafts(gateway, drafts, sender="ops@example.com", report=reports[index], own_order=shuffles[index])
        finally:
            lockstep.leave()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = [len(store.chats.get(case, [])) for case in CASES]
    return sum(max(0, n - 1) for n in counts), [c for c, n in zip(CASES, counts, strict=True) if n == 0], reports


def test_lockstep_runs_in_the_given_order_post_every_case_twice() -> None:
    duplicates, _, _ = _race((False, False))
    assert duplicates == 20  # what issue 20 item 10 measured: neither run ever sees the other


def test_lockstep_runs_in_their_own_order_meet_and_one_yields() -> None:
    duplicated = 0
    for seed in range(10):  # 10 races, 200 case replies
        duplicates, lost, reports = _race((random.Random(2 * seed), random.Random(2 * seed + 1)))
        duplicated += duplicates
        assert lost == []  # the run that goes on answers exactly what the other left
        skipped = [s["reason"] for r in reports for s in r.skipped]
        assert any("left to a concurrent run" in reason for reason in skipped) or duplicates
    assert duplicated <= 1, duplicated  # goal: at most 1 in 100


def test_two_runs_starting_on_the_same_case_post_it_twice_at_most_then_one_leaves() -> None:
    duplicates, lost, reports = _race((random.Random(7), random.Random(7)))  # the same start: the one bad draw
    assert duplicates == 1 and lost == []  # only the first case; then the later message's run leaves the rest
    assert sorted(len(r.replied) for r in reports) == [1, 20]


def test_the_operator_posts_in_its_own_order(monkeypatch) -> None:
    from airflow_provider_debitura.operators import reply_to_chat

    seen: dict[str, Any] = {}

    def fake_post_drafts(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(reply_to_chat, "post_drafts", fake_post_drafts)
    op = reply_to_chat.DebituraReplyToChatTasksOperator(task_id="reply", reply_template="x")
    monkeypatch.setattr(op, "_hook", lambda: _NullHook())
    op.post([], recheck_open_tasks=False)
    assert seen["own_order"] is True


class _NullHook:
    settings: Any = None

    def __enter__(self) -> _NullHook:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def sender_email(self, *_: Any) -> str:
        return "ops@example.com"
