"""Listing 10,000 open tasks: ``DebituraHook.list_tasks()`` vs a bare httpx page loop.

Both sides read the same in-process sandbox (``large:10000``, 127.0.0.1 only) in the same run,
alternating, and the figures are ratios hook / bare. The bare loop is the least a client can do:
``GET /tasks?status=Open&Page=n&PageSize=100`` with the ``XApiKey`` header and ``response.json()``,
no models, no retries, no consistency checks.

    .venv/bin/python bench/listing.py [--runs N] [--tasks N]

The sandbox server runs in a thread of this process, so wall time includes the server's work on
both sides; main-thread CPU time (``time.thread_time``) isolates the client's own cost. A second
part times the parsing alone (and the hook's other per-page work), on the page bodies already
fetched, to show where the hook's extra time goes.
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
from typing import Any

# Before anything imports Airflow: no metadata DB may be touched.
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "sqlite:////tmp/nonexistent-bench/airflow.db"

import httpx
from tenacity import Retrying

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.hooks.retry import retry_kwargs
from airflow_provider_debitura.models import Task, TaskPage
from airflow_provider_debitura.sandbox import SandboxServer

PAGE_SIZE = 100


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
    """Memory still allocated by ``build()``'s result (tracemalloc; this thread's work only, since the
    sandbox is idle while it runs)."""
    gc.collect()
    tracemalloc.start()
    result = build()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return size / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed listings per side (default 7)")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the sandbox (default 10000)")
    parser.add_argument("--parse-repeat", type=int, default=7, help="rounds of the parsing-only timings (default 7)")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs")
    rss_start = peak_rss_mb()
    t0 = time.perf_counter()
    with SandboxServer(scenario=f"large:{args.tasks}", api_key="k") as sb:
        print(
            f"sandbox large:{args.tasks} at {sb.url} (in-process thread), started in {time.perf_counter() - t0:.1f} s"
        )
        os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = sb.conn_json()
        rss_sandbox = peak_rss_mb()

        hook = DebituraHook()
        bare = httpx.Client(base_url=sb.url, headers={"XApiKey": sb.api_key, "Accept": "application/json"})

        # Warm-up, one each (connection, connection lookup, pydantic validators, caches), and the
        # request counts per listing, read from the sandbox's counters.
        counts: dict[str, dict[str, int]] = {}
        results: dict[str, Any] = {}
        for name, fn in (("bare", lambda: bare_listing(bare)), ("hook", hook.list_tasks)):
            sb.control("DELETE", "/_sandbox/requests").raise_for_status()
            results[name] = fn()
            counts[name] = sb.control("GET", "/_sandbox/counters").json()

        hook_ids = [t.id for t in results["hook"]]
        bare_ids = [t["id"] for t in results["bare"]]
        same = set(hook_ids) == set(bare_ids) and len(hook_ids) == len(bare_ids) == len(set(hook_ids)) == args.tasks
        del results

        samples: dict[str, list[tuple[float, ...]]] = {"hook": [], "bare": []}
        for i in range(args.runs):
            order = [("bare", lambda: bare_listing(bare)), ("hook", hook.list_tasks)]
            for name, fn in order if i % 2 == 0 else reversed(order):
                result, *figures = timed(fn)
                assert len(result) == args.tasks, (name, len(result))
                samples[name].append(tuple(figures))
                del result
        rss_after = peak_rss_mb()

        # The parsing alone, on the 100 bodies already fetched: where does the hook's time go?
        bodies: list[bytes] = []
        for page in range(1, args.tasks // PAGE_SIZE + 1):
            response = bare.get("/tasks", params={"status": "Open", "Page": page, "PageSize": PAGE_SIZE})
            bodies.append(response.content)
        settings = hook.settings
        hook.close()
        bare.close()

    def med(name: str, k: int) -> float:
        return statistics.median(s[k] for s in samples[name])

    def requests_line(c: dict[str, int]) -> str:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(c.items()) if k != "total")
        return f"{c.get('total', 0)} ({detail})"

    print()
    print(f"1. Listing {args.tasks:,} tasks, {args.runs} runs per side alternating; medians")
    print(f"{'':26} {'wall s':>8} {'client CPU s':>13} {'in GC s':>8} {'full GCs':>9} {'tasks/s (wall)':>15}")
    for name, label in (("bare", "bare httpx page loop"), ("hook", "DebituraHook.list_tasks")):
        print(
            f"{label:26} {med(name, 0):8.3f} {med(name, 1):13.3f} {med(name, 2):8.3f} {med(name, 3):9.0f} "
            f"{args.tasks / med(name, 0):15,.0f}"
        )
    print(
        f"{'ratio hook / bare':26} {med('hook', 0) / med('bare', 0):8.2f} {med('hook', 1) / med('bare', 1):13.2f} "
        f"{med('hook', 2) / max(med('bare', 2), 1e-9):8.1f}"
    )
    spread = {n: (min(s[0] for s in samples[n]), max(s[0] for s in samples[n])) for n in samples}
    print(
        f"(wall min-max: bare {spread['bare'][0]:.3f}-{spread['bare'][1]:.3f} s, "
        f"hook {spread['hook'][0]:.3f}-{spread['hook'][1]:.3f} s)"
    )
    print(f"requests per listing: bare {requests_line(counts['bare'])}")
    print(f"                      hook {requests_line(counts['hook'])}")
    print(f"same {args.tasks:,} task ids from both: {'PASS' if same else 'FAIL'}")
    print(
        f"peak RSS of this process: {rss_start:.0f} MB at start, {rss_sandbox:.0f} MB with the sandbox loaded, "
        f"{rss_after:.0f} MB after all listings (sandbox, client and server share the process)"
    )

    # -- 2. parsing only -------------------------------------------------------------------------
    parsed = [json.loads(b) for b in bodies]
    call = endpoints.get_tasks_page(page=1)

    def bookkeeping() -> None:
        listing = TaskListing(status="Open")
        for page in pre_validated:
            listing.next_call()
            listing.feed(page)

    def retry_setup() -> None:
        for _ in bodies:
            for attempt in Retrying(**retry_kwargs(call, settings)):
                with attempt:
                    pass

    pre_validated = [TaskPage.from_api(p) for p in parsed]
    variants: list[tuple[str, Callable[[], Any], bool]] = [
        ("json.loads (what the bare loop does)", lambda: [json.loads(b) for b in bodies], True),
        ("TaskPage.from_api on the loaded dicts", lambda: [TaskPage.from_api(p) for p in parsed], True),
        ("  the same with the cyclic GC paused", lambda: [TaskPage.from_api(p) for p in parsed], False),
        ("  what-if: without the _as_utc validator", lambda: [_PlainDatesPage.model_validate(p) for p in parsed], True),
        ("TaskPage.model_validate_json on the bytes", lambda: [TaskPage.model_validate_json(b) for b in bodies], True),
        ("TaskListing bookkeeping (next_call/feed)", bookkeeping, True),
        ("tenacity Retrying set-up, one per page", retry_setup, True),
    ]
    # Round-robin so load from elsewhere hits every variant alike; the minimum CPU time of each is
    # the figure least disturbed by it.
    best = {label: float("inf") for label, _, _ in variants}
    for _ in range(args.parse_repeat):
        for label, fn, with_gc in variants:
            if not with_gc:
                gc.disable()
            try:
                c0 = time.thread_time()
                fn()
                best[label] = min(best[label], time.thread_time() - c0)
            finally:
                gc.enable()
    n = len(bodies)
    t_json = best[variants[0][0]]
    t_from_api = best[variants[1][0]]
    size_mb = sum(map(len, bodies)) / 1e6
    print()
    print(
        f"2. Parsing only, on the {n} page bodies already fetched ({size_mb:.1f} MB); CPU, best of {args.parse_repeat}"
    )
    print(f"{'':44} {'ms total':>9} {'µs/page':>8} {'x json.loads':>13}")
    for label, _, _ in variants:
        seconds = best[label]
        print(f"{label:44} {seconds * 1000:9.1f} {seconds / n * 1e6:8.0f} {seconds / t_json:13.2f}")
    hook_extra_cpu = med("hook", 1) - med("bare", 1)
    extra_gc = med("hook", 2) - med("bare", 2)
    overhead = best[variants[5][0]] + best[variants[6][0]]
    print(
        f"hook's extra client CPU per listing (median, part 1): {hook_extra_cpu * 1000:.0f} ms. Measured parts: "
        f"validation {t_from_api * 1000:.0f} ms, extra GC during the listing {extra_gc * 1000:.0f} ms "
        f"(part 1, incl. full collections of the whole heap), bookkeeping + retry set-up {overhead * 1000:.0f} ms"
    )
    mb_dicts = retained_mb(lambda: [t for b in bodies for t in json.loads(b)["tasks"]])
    mb_models = retained_mb(lambda: [t for b in bodies for t in TaskPage.model_validate_json(b).tasks])
    print(
        f"memory held by the {args.tasks:,} parsed tasks: dicts {mb_dicts:.1f} MB, Task models {mb_models:.1f} MB "
        f"(ratio {mb_models / mb_dicts:.2f})"
    )
    return 0 if same else 1


class _PlainDatesTask(Task):
    """What-if model for the parsing table: the same Task without the per-value Python ``_as_utc``
    AfterValidator (plain pydantic datetimes). Not a drop-in: naive timestamps would stay naive."""

    deadline: datetime | None = None
    date_created: datetime
    date_solved: datetime | None = None


class _PlainDatesPage(TaskPage):
    tasks: list[_PlainDatesTask] = []


if __name__ == "__main__":
    sys.exit(main())
