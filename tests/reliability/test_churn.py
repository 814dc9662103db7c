"""Listing a live queue that keeps moving: 3,000 open tasks, tasks created and solved every N page reads.

Each row registers ``afterRequests`` events on ``GET /tasks`` (a create and/or a solve every N page reads)
and then lists the queue five times in a row, each listing passing the previous one's ``pages`` as its
``pages_hint`` (as the gates' shared poller does). Oracle, per listing, from the sandbox's own state:
every task open before and after the listing (so open throughout: the sandbox never re-opens a task)
must be listed, nothing twice, nothing that was never open. The rows are the churn table of
docs/reliability.md (``tests/reliability/render_churn.py`` prints it).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_debitura.hooks.debitura import DebituraHook

OPEN_TASKS = 3_000
LISTINGS = 5
SEED = 20261127

# (row label, one change every N page reads or 0, the changes each time)
ROWS: list[tuple[str, int, tuple[str, ...]]] = [
    ("no churn", 0, ()),
    ("1 task created per 100 page reads", 100, ("create",)),
    ("1 task created per 25 page reads", 25, ("create",)),
    ("1 task created per 10 page reads", 10, ("create",)),
    ("1 task solved per 10 page reads", 10, ("solve",)),
    ("1 solved + 1 created per 10 page reads (count unchanged)", 10, ("solve", "create")),
    ("1 solved + 1 created every 2 page reads", 2, ("solve", "create")),
]

RESULTS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def churn_sb():
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="empty", api_key="churn-key-3f9a2c") as server:
        yield server
    out = os.environ.get("DEBITURA_CHURN_JSON")
    if out:
        Path(out).write_text(json.dumps({"open_tasks": OPEN_TASKS, "listings": LISTINGS, "rows": RESULTS}, indent=1))


def _register_churn(sb: Any, every: int, changes: tuple[str, ...], reads: int, rng: random.Random) -> int:
    """Events at page reads every, 2 x every, ...: solves of random tasks that were open at the start."""
    if not every:
        return 0
    victims = rng.sample([t["id"] for t in sb.state.list_tasks("Open")], k=reads // every * changes.count("solve"))
    for k in range(1, reads // every + 1):
        for change in changes:
            action = (
                {"type": "solveTask", "taskId": victims.pop()}
                if change == "solve"
                else {"type": "addTask", "task": {"type": "SignContract"}}
            )
            at = {"afterRequests": {"method": "GET", "path": "/tasks", "count": k * every}}
            assert sb.control("POST", "/_sandbox/events", json={"at": at, "action": action}).status_code == 201
    return reads // every * len(changes)


def _open_ids(sb: Any) -> set[str]:
    return {t["id"] for t in sb.state.list_tasks("Open")}


def run_row(sb: Any, every: int, changes: tuple[str, ...]) -> dict[str, Any]:
    """Five listings under the given churn; what each returned, cost and missed."""
    assert sb.control("POST", "/_sandbox/reset", json={"scenario": f"large:{OPEN_TASKS}"}).status_code == 200
    events = _register_churn(sb, every, changes, reads=LISTINGS * 32, rng=random.Random(SEED))
    listings, hint = [], None
    started = time.monotonic()
    with DebituraHook(max_attempts=1) as hook:
        for _ in range(LISTINGS):
            before, requests_before = _open_ids(sb), sb.control("GET", "/_sandbox/counters").json().get("GET /tasks", 0)
            result = hook.list_tasks(pages_hint=hint)
            after, requests_after = _open_ids(sb), sb.control("GET", "/_sandbox/counters").json()["GET /tasks"]
            ids = [t.id for t in result]
            listings.append(
                {
                    "requests": requests_after - requests_before,
                    "tasks": len(ids),
                    "duplicates": len(ids) - len(set(ids)),
                    "missed": len((before & after) - set(ids)),
                    "phantoms": len(set(ids) - (before | after)),
                    "verified": result.verified,
                    "total": result.total,
                    "repeats_dropped": result.duplicates,
                    "moved": len(before ^ after),
                }
            )
            hint = result.pages
    fired = sum(1 for e in sb.control("GET", "/_sandbox/events").json() if e["fired"])
    return {
        "listings": listings,
        "events": events,
        "fired": fired,
        "seconds": round(time.monotonic() - started, 2),
    }


@pytest.mark.parametrize(("every", "changes"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_listing_completes_exactly_under_churn(churn_sb, monkeypatch, every, changes):
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", churn_sb.conn_json())
    record = run_row(churn_sb, every, changes)
    RESULTS[next(r[0] for r in ROWS if r[1:] == (every, changes))] = record
    listings = record["listings"]
    assert all(x["missed"] == 0 for x in listings), listings
    assert all(x["duplicates"] == 0 and x["phantoms"] == 0 for x in listings), listings
    if every and every <= 32:
        assert sum(x["moved"] for x in listings) > 0  # the queue really moved during the listings
    pages = -(-OPEN_TASKS // 100)
    if "solve" in changes and "create" in changes:
        # One total throughout, yet repeats and unread tasks: by the counts, that is what an unstable order of
        # equal timestamps looks like (issue 20, item 2). The listing reads again, and says when it still cannot
        # tell; it never misses a task open throughout either way.
        assert all(x["requests"] <= 2 * pages + 3 for x in listings), listings  # + the page after a full last one
        return
    assert all(x["verified"] for x in listings), listings
    # No hint yet: page 1 tells the size; and the page after the last when the total fills it (3,000: 30 + 1 + 1).
    assert listings[0]["requests"] == pages + 1 + (listings[0]["total"] % 100 == 0)
    assert all(x["requests"] <= pages + 3 for x in listings[1:]), listings  # the hint, +1 when the queue grew past it
