"""The watcher's tail read (``triggers/watcher/tail.py``), table-driven, then as a property over arbitrary churn.

The queue is an in-memory list served in pages of 3, oldest first, as ``GET /tasks`` serves it; changes can
happen between rounds and between the page reads of a round. Each row states the requests, whether the
tail read is verified (else: a full read), and the oracle: a verified read's order is the queue's.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_debitura.models import TaskPage
from airflow_provider_debitura.triggers.watcher.tail import QueueOrder, TailRead, TailResult

SIZE = 3
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


@dataclass
class Queue:
    """Tasks oldest first; ``total_lie`` and ``swap`` model a server that lies about its count or its order."""

    items: list[dict[str, Any]] = field(default_factory=list)
    clock: itertools.count = field(default_factory=lambda: itertools.count(1))
    total_lie: Callable[[int], int] | None = None
    swap: bool = False
    unreadable: str | None = None
    requests: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, n: int) -> Queue:
        queue = cls()
        for _ in range(n):
            queue.append()
        return queue

    def append(self) -> str:
        n = next(self.clock)
        created = (T0 + timedelta(seconds=n)).isoformat()
        self.items.append({"id": f"00000000-0000-0000-0000-{n:012d}", "type": "Generic", "dateCreated": created})
        return self.items[-1]["id"]

    def insert(self, index: int) -> str:
        """A task dated like its neighbours, listed at ``index`` (what the API never does: a backdated task)."""
        n = next(self.clock)
        created = self.items[index]["dateCreated"] if index < len(self.items) else T0.isoformat()
        self.items.insert(index, {"id": f"00000000-0000-0000-0000-{n:012d}", "type": "Generic", "dateCreated": created})
        return self.items[index]["id"]

    def solve(self, index: int) -> None:
        del self.items[index]

    def order(self) -> QueueOrder:
        return QueueOrder(tuple(t["id"] for t in self.items))

    def serve(self, page: int) -> TaskPage:
        self.requests.append(page)
        rows = list(self.items)
        if self.swap and len(rows) > SIZE:
            rows[SIZE - 1], rows[SIZE] = rows[SIZE], rows[SIZE - 1]
        chunk = [dict(r) for r in rows[(page - 1) * SIZE : page * SIZE]]
        if self.unreadable is not None:
            chunk = [r | {"dateCreated": "soon"} if r["id"] == self.unreadable else r for r in chunk]
        total = self.total_lie(len(rows)) if self.total_lie else len(rows)
        body = {"page": {"totalResults": total, "pageSize": SIZE, "currentPage": page}, "tasks": chunk}
        return TaskPage.from_api(body)


def tail(queue: Queue, known: QueueOrder, between: Callable[[int], None] | None = None) -> TailResult:
    """One tail read; ``between(k)`` runs after the k-th answer (1-based)."""
    read = TailRead(known, page_size=SIZE)
    while calls := read.next_calls():
        [call] = calls  # one page at a time
        page = int(dict(call.params)["Page"])
        read.feed(call, queue.serve(page))
        if between is not None:
            between(len(queue.requests))
    return read.result()


def new_ids(result: TailResult, known: QueueOrder) -> list[str]:
    return [t.id for t in result.tasks if t.id not in known.index]


# ------------------------------------------------------------------------------------------ steady state


@pytest.mark.parametrize(("size", "pages"), [(0, [1]), (2, [1]), (7, [3]), (8, [3]), (9, [4, 3]), (12, [5, 4])])
def test_steady_state_costs_one_request_or_two_when_the_last_page_is_full(size, pages):
    queue = Queue.of(size)
    known = queue.order()
    result = tail(queue, known)
    assert result.verified and result.order == known and result.new == 0
    assert queue.requests == pages  # the page after a full last page is read too: a total capped there shows


@pytest.mark.parametrize(
    ("size", "added", "pages"),
    [
        (7, 1, [3]),  # fits the last page
        (7, 2, [3, 4]),  # fills it: the empty page after it is read too
        (7, 3, [3, 4, 3]),  # spills onto the next page: the first answer only told the size, the pass is 4, 3
        (9, 1, [4, 3]),  # the last page was full
        (9, 3, [4, 3, 5]),  # a page of news, and the empty page after it
        (9, 4, [4]),  # more than 3 requests: a full read at once
    ],
)
def test_appended_tasks_are_found_at_the_end(size, added, pages):
    queue = Queue.of(size)
    known = queue.order()
    fresh = [queue.append() for _ in range(added)]
    result = tail(queue, known)
    assert queue.requests == pages
    if added == 4:
        assert not result.verified and "more than 3 page reads" in (result.doubt or "")
        return
    assert result.verified and result.order == queue.order() and result.new == added
    assert new_ids(result, known) == fresh


def test_a_task_solved_on_the_last_page_is_explained():
    queue = Queue.of(8)
    known = queue.order()
    queue.solve(7)
    fresh = queue.append()
    result = tail(queue, known)
    assert result.verified and result.order == queue.order() and new_ids(result, known) == [fresh]


# ------------------------------------------------------------------------------------------ doubts


@pytest.mark.parametrize(
    ("change", "doubt"),
    [
        (lambda q: q.solve(1), "position 6 no longer holds"),  # solved before the end: the pages shift
        (lambda q: (q.solve(1), q.append()), "position 6 no longer holds"),  # the count is unchanged
        (lambda q: q.insert(2), "position 6 no longer holds"),  # a backdated task before the end
        (lambda q: (q.solve(6), q.append()), "position 6 no longer holds"),  # the window's first task solved
        (lambda q: [q.solve(0) for _ in range(5)], "the queue shrank"),
    ],
    ids=["solved-before-the-end", "solved-and-created", "inserted-before-the-end", "anchor-solved", "shrank"],
)
def test_what_the_end_does_not_explain_is_a_full_read(change, doubt):
    queue = Queue.of(8)
    known = queue.order()
    change(queue)
    result = tail(queue, known)
    assert not result.verified and doubt in (result.doubt or ""), result.doubt
    assert len(queue.requests) <= 2


@pytest.mark.parametrize(
    ("lie", "doubt"),
    [
        (lambda n: 0, "the queue shrank"),
        (lambda n: min(n, 9), "totals cannot be trusted"),  # capped on a page boundary
        (lambda n: n - 1, "totals cannot be trusted"),  # lagging
        (lambda n: n + 1, "totals cannot be trusted"),  # over-reported
        (lambda n: n + 3, "page reads"),  # over-reported by a page: more pages than a tail reads
    ],
    ids=["zero", "capped-on-a-boundary", "lagging", "over-by-one", "over-by-a-page"],
)
def test_a_lying_total_is_a_full_read(lie, doubt):
    queue = Queue.of(9)
    known = queue.order()
    queue.append()  # the capped total hides exactly this task
    queue.total_lie = lie
    result = tail(queue, known)
    assert not result.verified and doubt in (result.doubt or ""), result.doubt


def test_a_lying_total_of_an_empty_queue_on_one_page():
    queue = Queue.of(2)
    known = queue.order()
    queue.append()
    queue.total_lie = lambda n: 0
    result = tail(queue, known)
    assert not result.verified and "totals cannot be trusted" in (result.doubt or "")
    assert {t.id for t in result.tasks} == set(queue.order().ids)  # what was read directly is kept for the full read


def test_an_unstable_order_at_the_window_is_a_full_read():
    queue = Queue.of(4)
    known = queue.order()
    queue.swap = True  # the tasks either side of the first page boundary trade places
    result = tail(queue, known)
    assert not result.verified and "position 3 no longer holds" in (result.doubt or "")


def test_an_unreadable_record_on_the_last_page_is_a_full_read():
    queue = Queue.of(7)
    known = queue.order()
    queue.unreadable = queue.append()
    result = tail(queue, known)
    assert not result.verified and "could not be read" in (result.doubt or "")


@pytest.mark.parametrize(
    ("change", "doubt"),
    [
        (lambda q: q.append(), "totalResults moved"),
        (lambda q: q.solve(0), "totalResults moved"),
        (lambda q: (q.solve(0), q.append()), "position 6 no longer holds"),
        (lambda q: (q.solve(7), q.append()), None),  # the created task is on the page read next: explained
    ],
    ids=["created", "solved", "solved-before-the-end-and-created", "solved-on-the-window-and-created"],
)
def test_a_change_between_the_two_page_reads(change, doubt):
    queue = Queue.of(9)
    known = queue.order()
    result = tail(queue, known, between=lambda k: change(queue) if k == 1 else None)
    assert queue.requests == [4, 3]  # the empty page after the full last page, then the last page
    if doubt is None:
        assert result.verified and result.order == queue.order() and result.new == 1
    else:
        assert not result.verified and doubt in (result.doubt or ""), result.doubt


def test_a_queue_of_one_page_is_read_whole_whatever_changed():
    queue = Queue.of(2)
    known = queue.order()
    queue.solve(0)
    fresh = queue.insert(0)  # even a task listed first: the window is the whole queue
    result = tail(queue, known)
    assert result.verified and result.order == queue.order() and new_ids(result, known) == [fresh]


# ------------------------------------------------------------------------------------------ property


def _watch(queue: Queue, rounds: list[list[tuple[str, int]]], rng: random.Random) -> tuple[set[str], QueueOrder | None]:
    """Rounds of a watcher: a tail read against the last trusted order, a full read (the queue itself) on a
    doubt. Changes happen between rounds and after any page read. Returns the ids seen and the trusted order."""
    known: QueueOrder | None = None
    seen: set[str] = set()

    def apply(op: tuple[str, int]) -> None:
        kind, at = op
        if kind == "create":
            queue.append()
        elif queue.items:
            queue.solve(at % len(queue.items))

    for ops in rounds:
        pending = list(ops)
        if known is not None:
            result = tail(queue, known, between=lambda _k, ops=pending: _maybe(ops, apply, rng))
            seen |= {t.id for t in result.tasks}
            if result.verified:
                known = result.order
                for op in pending:
                    apply(op)
                continue
        seen |= set(queue.order().ids)
        known = queue.order()
        for op in pending:
            apply(op)
    return seen, known


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    size=st.integers(0, 14),
    rounds=st.lists(
        st.lists(st.tuples(st.sampled_from(["create", "solve"]), st.integers(0, 50)), max_size=4), max_size=12
    ),
    seed=st.integers(0, 1000),
)
def test_under_any_churn_no_open_task_is_missed(size, rounds, seed):
    """Creates at the end and solves anywhere, between rounds and between page reads: after a last quiet round,
    every open task has been seen (by a tail read or a full read), and a quiet round never reads the whole queue."""
    queue = Queue.of(size)
    seen, known = _watch(queue, [*rounds, []], random.Random(seed))
    assert set(queue.order().ids) <= seen
    assert known is not None
    before = len(queue.requests)
    quiet = tail(queue, known)
    assert quiet.verified and quiet.order == queue.order() and quiet.new == 0
    assert len(queue.requests) - before <= 2


def _maybe(ops: list[tuple[str, int]], apply: Callable[[tuple[str, int]], None], rng: random.Random) -> None:
    """Half the time, one pending change right after a page read."""
    if ops and rng.random() < 0.5:
        apply(ops.pop())
