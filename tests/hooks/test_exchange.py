"""The two exchange drivers (``hooks.exchange``) against the real sandbox: what they send, in which order, how
many at once, what they feed back, and when they stop."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_provider_debitura.exceptions import (
    DebituraBudgetError,
    DebituraError,
    DebituraNotFoundError,
)
from airflow_provider_debitura.gate import DirectReads
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.async_hook import UnexpectedReadError
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook, DebituraHook
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import Exchange, Upcoming

MISSING = "00000000-0000-0000-0000-000000000404"


class Batches(Exchange[list[object]]):
    """Sends the given batches in turn and records every answer, and how many calls were in flight at most."""

    def __init__(self, *batches: Sequence[ApiCall[Any]], skip: frozenset[str] = frozenset()) -> None:
        self.batches = list(batches)
        self.skip = skip
        self.answers: list[object] = []
        self.asked: list[str] = []
        self.in_flight = self.most_in_flight = 0

    def next_calls(self) -> Sequence[ApiCall[Any]]:
        return self.batches.pop(0) if self.batches else []

    def still_wanted(self, call: ApiCall[Any]) -> bool:
        self.asked.append(call.path)
        if call.path in self.skip:
            return False
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return True

    def feed(self, call: ApiCall[Any], answer: object) -> None:
        self.in_flight -= 1
        self.answers.append(answer)

    def result(self) -> list[object]:
        return self.answers


def counters(sandbox: Any) -> dict[str, int]:
    return sandbox.control("GET", "/_sandbox/counters").json()


def faults(sandbox: Any, *rules: dict[str, Any]) -> None:
    response = sandbox.control("PUT", "/_sandbox/faults", json={"seed": 1, "rules": list(rules)})
    assert response.status_code == 200, response.text


@pytest.fixture
def case_ids(debitura_conn: Any) -> list[str]:
    """The five case ids of the sandbox's demo (one request, forgotten before the test)."""
    with DebituraHook() as hook:
        cases = hook.run(endpoints.get_cases_page(page_size=10)).cases
    debitura_conn.control("DELETE", "/_sandbox/requests")
    assert len(cases) == 5
    return [case.id for case in cases]


def case_calls(ids: Sequence[str]) -> list[ApiCall[Any]]:
    return [endpoints.get_case_tasks(case_id) for case_id in ids]


# -- the sync driver ------------------------------------------------------------------------------------------


def test_sync_sends_each_batch_in_order_and_feeds_a_debitura_error_as_the_answer(debitura_conn, case_ids):
    exchange = Batches(case_calls([*case_ids[:2], MISSING]), [endpoints.get_me()])
    with DebituraHook(max_attempts=1) as hook:
        answers = hook.exchange(exchange)
    assert exchange.asked == [f"/cases/{c}/tasks" for c in [*case_ids[:2], MISSING]] + ["/me"]
    assert isinstance(answers[2], DebituraNotFoundError)  # fed, not raised: the exchange decides
    assert not isinstance(answers[3], DebituraError) and exchange.most_in_flight == 1
    assert counters(debitura_conn)["total"] == 4


def test_sync_drops_a_call_that_is_no_longer_wanted_unsent_and_unfed(debitura_conn, case_ids):
    skipped = f"/cases/{case_ids[1]}/tasks"
    exchange = Batches(case_calls(case_ids[:3]), skip=frozenset({skipped}))
    with DebituraHook() as hook:
        assert len(hook.exchange(exchange)) == 2
    assert counters(debitura_conn)["total"] == 2
    assert skipped not in [r["path"] for r in debitura_conn.control("GET", "/_sandbox/requests").json()]


def test_sync_stops_at_the_error_feed_raises(debitura_conn, case_ids):
    class Strict(Batches):
        def feed(self, call: ApiCall[Any], answer: object) -> None:
            if isinstance(answer, DebituraError):
                raise answer
            super().feed(call, answer)

    with DebituraHook(max_attempts=1) as hook, pytest.raises(DebituraNotFoundError):
        hook.exchange(Strict([endpoints.get_case_tasks(MISSING)], case_calls(case_ids[:2])))
    assert counters(debitura_conn)["total"] == 1  # nothing after the abort


def test_sync_checks_what_is_still_to_come_against_the_budget_before_the_bulk(sandbox, monkeypatch, case_ids):
    class Announcing(Batches):
        def upcoming(self) -> Upcoming | None:
            return Upcoming(50, "the rest of this run (50 reads)") if len(self.answers) == 1 else None

    conn = json.loads(sandbox.conn_json())
    conn.setdefault("extra", {}).update(budget_per_minute=10, budget_max_wait=0)
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    with DebituraHook() as hook, pytest.raises(DebituraBudgetError) as err:
        hook.exchange(Announcing([endpoints.get_me()], case_calls(case_ids)))
    assert "the rest of this run (50 reads) needs about 50 requests" in str(err.value)
    assert counters(sandbox)["total"] == 1  # failed after the first answer, before the bulk


# -- the async driver -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("slots", "most"), [(2, 2), (None, 5)])
async def test_async_sends_a_batch_concurrently_within_the_slots(debitura_conn, case_ids, slots, most):
    faults(debitura_conn, {"kind": "latency", "latencyMs": 60, "path": "/cases", "count": None})
    exchange = Batches(case_calls(case_ids), [endpoints.get_me()])
    async with DebituraAsyncHook() as hook:
        answers = await hook.exchange(exchange, slots=asyncio.Semaphore(slots) if slots else None)
    assert exchange.most_in_flight == most  # concurrent, and never more than the slots
    assert len(answers) == 6 and not any(isinstance(a, DebituraError) for a in answers)
    assert exchange.asked[-1] == "/me"  # the next batch only after the whole batch
    assert counters(debitura_conn)["total"] == 6


async def test_async_asks_still_wanted_inside_the_slot_so_direct_reads_stop_after_three_failures(
    debitura_conn, case_ids
):
    faults(debitura_conn, {"kind": "status", "status": 503, "path": "/cases", "count": None})
    reads = DirectReads(case_ids)
    async with DebituraAsyncHook(max_attempts=1) as hook:
        assert await hook.exchange(reads, slots=asyncio.Semaphore(1)) is reads
    assert reads.failures == 3 and reads.requests == 3 and counters(debitura_conn)["total"] == 3
    assert sum("skipped" in (p.reason or "") for p in reads.cases.values()) == 2
    assert isinstance(reads.cases[case_ids[0]].reason, str) and "503" in reads.cases[case_ids[0]].reason


async def test_async_answers_an_unexpected_error_as_a_transient_one_and_logs_it(debitura_conn, case_ids, caplog):
    def broken(body: object) -> object:
        raise KeyError("a parser bug")

    bad = ApiCall("GET", f"/cases/{case_ids[0]}/tasks", broken)
    exchange = Batches([bad, *case_calls(case_ids[1:3])])
    with caplog.at_level(logging.ERROR):
        async with DebituraAsyncHook() as hook:
            answers = await hook.exchange(exchange)
    [unexpected] = [a for a in answers if isinstance(a, DebituraError)]
    assert isinstance(unexpected, UnexpectedReadError) and unexpected.transient and "KeyError" in str(unexpected)
    assert "Unexpected error reading GET /cases/" in caplog.text and "Traceback" in caplog.text
    assert len(answers) == 3 and counters(debitura_conn)["total"] == 3  # the round went on


async def test_async_an_abort_in_a_batch_cancels_the_calls_still_running(debitura_conn, case_ids):
    faults(debitura_conn, {"kind": "latency", "latencyMs": 1000, "path": f"/cases/{case_ids[1]}", "count": None})

    class Strict(Batches):
        def feed(self, call: ApiCall[Any], answer: object) -> None:
            if isinstance(answer, DebituraError):
                raise answer
            super().feed(call, answer)

    exchange = Strict([endpoints.get_case_tasks(MISSING), endpoints.get_case_tasks(case_ids[1])])
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with DebituraAsyncHook(max_attempts=1) as hook:
        with pytest.raises(DebituraNotFoundError):
            await hook.exchange(exchange)
    assert loop.time() - started < 0.8  # the slow sibling was cancelled, not waited for
    assert exchange.answers == []


async def test_a_write_is_refused_by_the_async_hook_as_an_answer(debitura_conn, case_ids):
    exchange = Batches([endpoints.post_chat(case_ids[0], "hello", "ops@example.com")])
    async with DebituraAsyncHook() as hook:
        [answer] = await hook.exchange(exchange)
    assert isinstance(answer, DebituraError) and "writes run in workers" in str(answer)
    assert counters(debitura_conn)["total"] == 0
