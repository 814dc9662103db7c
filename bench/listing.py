"""Listing 10,000 open tasks: ``DebituraHook.list_tasks()`` vs a bare httpx page loop.

Both sides read the same in-process sandbox (``large:10000``, 127.0.0.1 only) in the same run,
alternating, and the figures are ratios hook / bare. The bare loop is the least a client can do:
``GET /tasks?status=Open&Page=n&PageSize=100`` with the ``XApiKey`` header and ``response.json()``,
no models, no retries, no consistency checks. The hook is timed twice: as an operator calls it (no
``pages_hint``: one request more, to learn the size) and as the gates' shared poller calls it (with the
previous listing's ``pages``).

    .venv/bin/python bench/listing.py [--runs N] [--tasks N]

The sandbox server runs in a thread of this process, so wall time includes the server's work on
both sides; main-thread CPU time (``time.thread_time``) isolates the client's own cost. A second
part times the parsing alone (and the hook's other per-page work), on the page bodies already
fetched, including the page model as it was before per-record isolation, so the two compare in
one process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

# Before anything imports Airflow: no metadata DB may be touched.
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "sqlite:////tmp/nonexistent-bench/airflow.db"

import httpx
from pydantic import BeforeValidator
from tenacity import Retrying

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.hooks.retry import retry_kwargs
from airflow_provider_debitura.models import ApiModel, Task, TaskPage
from airflow_provider_debitura.sandbox import SandboxServer

PAGE_SIZE = 100
SIDES = {"bare": "bare httpx page loop", "hook": "list_tasks() (no hint)", "hint": "list_tasks(pages_hint=P)"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bare_listing(client: httpx.Client) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    page = 1
    while True:
        response = client.get("/tasks", params={"status": "Open", "Page": page, "PageSize": PAGE_SIZE})
        response.raise_for_status()
        body = response.json()
        tasks.extend(body["tasks"])
        if page >= body["page"]["totalPages"] or len(body["tasks"]) < PAGE_SIZE:
            return tasks
        page += 1


class GcClock:
    """Wall time spent in the cyclic garbage collector (any thread), via ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.full += info["generation"] == 2


GC = GcClock()


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float, float, int]:
    """(result, wall s, main-thread CPU s, GC s, full GC runs)."""
    gc0, full0 = GC.seconds, GC.full
    w0, c0 = time.perf_counter(), time.thread_time()
    result = fn()
    return result, time.perf_counter() - w0, time.thread_time() - c0, GC.seconds - gc0, GC.full - full0


def retained_mb(build: Callable[[], Any]) -> float:
    """Memory still allocated by ``build()``'s result (tracemalloc; the sandbox is idle meanwhile)."""
    gc.collect()
    tracemalloc.start()
    result = build()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return size / 1e6


def listings(sb: SandboxServer, args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: warm-up and request counts per side, then alternating timed runs."""
    hook = DebituraHook()
    bare = httpx.Client(base_url=sb.url, headers={"XApiKey": sb.api_key, "Accept": "application/json"})
    pages = -(-args.tasks // PAGE_SIZE)
    sides: dict[str, Callable[[], Any]] = {
        "bare": lambda: bare_listing(bare),
        "hook": hook.list_tasks,
        "hint": lambda: hook.list_tasks(pages_hint=pages),
    }
    counts: dict[str, dict[str, int]] = {}
    ids: dict[str, list[str]] = {}
    for name, fn in sides.items():
        sb.control("DELETE", "/_sandbox/requests").raise_for_status()
        result = fn()
        counts[name] = sb.control("GET", "/_sandbox/counters").json()
        ids[name] = [t["id"] if isinstance(t, dict) else t.id for t in result]
    same = all(sorted(v) == sorted(ids["bare"]) and len(set(v)) == args.tasks for v in ids.values())
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name in sides}
    order = list(sides.items())
    for i in range(args.runs):
        for name, fn in order[i % len(order) :] + order[: i % len(order)]:
            result, *figures = timed(fn)
            assert len(result) == args.tasks, (name, len(result))
            samples[name].append(tuple(figures))
            del result
    bodies = [
        bare.get("/tasks", params={"status": "Open", "Page": page, "PageSize": PAGE_SIZE}).content
        for page in range(1, pages + 1)
    ]
    settings = hook.settings
    hook.close()
    bare.close()
    return {"counts": counts, "same": same, "samples": samples, "bodies": bodies, "settings": settings}


def print_listings(part: dict[str, Any], args: argparse.Namespace) -> None:
    samples = part["samples"]

    def med(name: str, k: int) -> float:
        return statistics.median(s[k] for s in samples[name])

    print()
    print(f"1. Listing {args.tasks:,} tasks, {args.runs} runs per side, rotating order; medians")
    print(f"{'':28} {'wall s':>8} {'client CPU s':>13} {'in GC s':>8} {'full GCs':>9} {'tasks/s (wall)':>15}")
    for name, label in SIDES.items():
        print(
            f"{label:28} {med(name, 0):8.3f} {med(name, 1):13.3f} {med(name, 2):8.3f} {med(name, 3):9.0f} "
            f"{args.tasks / med(name, 0):15,.0f}"
        )
    for name in ("hook", "hint"):
        print(
            f"{'ratio ' + name + ' / bare':28} {med(name, 0) / med('bare', 0):8.2f} "
            f"{med(name, 1) / med('bare', 1):13.2f} {med(name, 2) / max(med('bare', 2), 1e-9):8.1f}"
        )
    for name, label in SIDES.items():
        walls = [s[0] for s in samples[name]]
        c = part["counts"][name]
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(c.items()) if k != "total")
        print(
            f"{label}: wall min-max {min(walls):.3f}-{max(walls):.3f} s; requests per listing {c['total']} ({detail})"
        )
    print(f"same {args.tasks:,} task ids from every side: {'PASS' if part['same'] else 'FAIL'}")


class _PageDataBefore(ApiModel):
    """``PageData`` as it was before per-record isolation (ints defaulting to 0)."""

    total_results: int = 0
    page_size: int = 0
    current_page: int = 0
    response_count: int = 0
    total_pages: int = 0


class _TaskPageBefore(ApiModel):
    """``TaskPage`` as it was before per-record isolation: one ``model_validate`` of the whole page."""

    page: _PageDataBefore
    tasks: Annotated[list[Task], BeforeValidator(lambda v: [] if v is None else v)] = []


class _PlainDatesTask(Task):
    """What-if: the same Task without the per-value Python ``_as_utc`` AfterValidator."""

    deadline: datetime | None = None
    date_created: datetime
    date_solved: datetime | None = None


class _PlainDatesPage(TaskPage):
    tasks: list[_PlainDatesTask] = []


def parsing_variants(part: dict[str, Any]) -> list[tuple[str, Callable[[], Any], bool]]:
    bodies = part["bodies"]
    parsed = [json.loads(b) for b in bodies]
    with_bad = [p | {"tasks": [*p["tasks"][:-1], p["tasks"][-1] | {"dateCreated": "garbage"}]} for p in parsed]
    pre_validated = [TaskPage.from_api(p) for p in parsed]
    call = endpoints.get_tasks_page(page=1)

    def bookkeeping() -> None:
        listing = TaskListing(status="Open", pages_hint=len(pre_validated))
        while next_calls := listing.next_calls():
            [next_call] = next_calls
            listing.feed(next_call, pre_validated[int(dict(next_call.params)["Page"]) - 1])

    def retry_setup() -> None:
        for _ in bodies:
            for attempt in Retrying(**retry_kwargs(call, part["settings"])):
                with attempt:
                    pass

    return [
        ("json.loads (what the bare loop does)", lambda: [json.loads(b) for b in bodies], True),
        ("TaskPage.from_api (record isolation)", lambda: [TaskPage.from_api(p) for p in parsed], True),
        ("  before isolation: one model_validate", lambda: [_TaskPageBefore.model_validate(p) for p in parsed], True),
        ("  from_api, 1 bad record on every page", lambda: [TaskPage.from_api(p) for p in with_bad], True),
        ("  from_api with the cyclic GC paused", lambda: [TaskPage.from_api(p) for p in parsed], False),
        ("  what-if: without the _as_utc validator", lambda: [_PlainDatesPage.model_validate(p) for p in parsed], True),
        ("TaskPage.model_validate_json on the bytes", lambda: [TaskPage.model_validate_json(b) for b in bodies], True),
        ("TaskListing bookkeeping (next_calls/feed)", bookkeeping, True),
        ("tenacity Retrying set-up, one per page", retry_setup, True),
    ]


def parsing(part: dict[str, Any], repeat: int) -> dict[str, float]:
    """Part 2: best main-thread CPU time of each variant, round-robin so load hits every variant alike."""
    import logging

    logging.getLogger("airflow_provider_debitura.models").setLevel(logging.ERROR)  # the bad records, once each
    variants = parsing_variants(part)
    best = {label: float("inf") for label, _, _ in variants}
    for _ in range(repeat):
        for label, fn, with_gc in variants:
            if not with_gc:
                gc.disable()
            try:
                c0 = time.thread_time()
                fn()
                best[label] = min(best[label], time.thread_time() - c0)
            finally:
                gc.enable()
    return best


def print_parsing(part: dict[str, Any], best: dict[str, float], args: argparse.Namespace) -> None:
    bodies = part["bodies"]
    n = len(bodies)
    labels = list(best)
    t_json = best[labels[0]]
    print()
    print(f"2. Parsing only, on the {n} page bodies already fetched ({sum(map(len, bodies)) / 1e6:.1f} MB); "
          f"CPU, best of {args.parse_repeat}")  # fmt: skip
    print(f"{'':44} {'ms total':>9} {'µs/page':>8} {'x json.loads':>13}")
    for label in labels:
        seconds = best[label]
        print(f"{label:44} {seconds * 1000:9.1f} {seconds / n * 1e6:8.0f} {seconds / t_json:13.2f}")
    after, before = best[labels[1]], best[labels[2]]
    print(f"record isolation, all records good: from_api / before = {after / before:.2f}")
    print(f"one bad record on every page: {best[labels[3]] / after:.2f} x the all-good cost")
    mb_dicts = retained_mb(lambda: [t for b in bodies for t in json.loads(b)["tasks"]])
    mb_models = retained_mb(lambda: [t for b in bodies for t in TaskPage.model_validate_json(b).tasks])
    print(f"memory held by the {args.tasks:,} parsed tasks: dicts {mb_dicts:.1f} MB, Task models {mb_models:.1f} MB "
          f"(ratio {mb_models / mb_dicts:.2f})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed listings per side (default 7)")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the sandbox (default 10000)")
    parser.add_argument("--parse-repeat", type=int, default=7, help="rounds of the parsing-only timings (default 7)")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    rss_start = peak_rss_mb()
    with SandboxServer(scenario=f"large:{args.tasks}", api_key="k") as sb:
        os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = sb.conn_json()
        rss_sandbox = peak_rss_mb()
        part = listings(sb, args)
    print_listings(part, args)
    print(f"peak RSS: {rss_start:.0f} MB at start, {rss_sandbox:.0f} MB with the sandbox, {peak_rss_mb():.0f} MB after")
    print_parsing(part, parsing(part, args.parse_repeat), args)
    return 0 if part["same"] else 1


if __name__ == "__main__":
    sys.exit(main())
