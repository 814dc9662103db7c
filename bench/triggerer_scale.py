"""Benchmark: a triggerer at 50,000 open tasks: 1,000 blocked case gates and a new-task watcher in one loop.

    python bench/triggerer_scale.py [--tasks 50000] [--gates 1000] [--interval 5] [--rounds 5]
                                    [--profile N] [--heap N] [--trace N] [--freeze] [--no-backoff]

Starts a Debitura sandbox holding ``large:<tasks>`` in a child process (its CPU is not on the measured loop),
then, in this process's one asyncio loop as a triggerer runs them: ``--gates`` ``DebituraCaseUnblockedTrigger``
(``coalesce=True``, every one on a different case, every case blocked, so none opens) and one
``DebituraNewTasksTrigger`` on the shared poll (its state in memory, as ``bench/watcher.py`` keeps it). Until
``--rounds`` shared-poll rounds have been delivered after the first, it measures:

- **loop lag**: a task sleeps 10 ms over and over and records how late it wakes: worst and p99 (whole run,
  start-up included) and worst after the first round (steady state); plus **busy**, the largest CPU time the
  loop's thread spent between two wake-ups (the lag an idle machine would see); and the worst lag after the
  second round (past the start-up: the watcher's first round and the full collection it brings on);
- **RSS** (psutil): before the triggers start (idle) and the peak, and the growth between them;
- **round time**: the shared poll's ``last_duration`` (read, confirm reads and fan-out) per round, and the
  requests each round sent.

``--heap N`` lists, at the end, the N most common types of object the garbage collector tracks and times one
full collection; ``--trace N`` the N source lines holding the most memory allocated since the triggers
started (tracemalloc: much slower) and the traced peak. ``--profile N`` also prints the N functions with the
most cumulative time on the loop (cProfile; slower). ``--freeze`` calls ``gc.freeze()`` once before the triggers
start, as a deployment could at the triggerer's start (the provider never changes the collector's settings):
the collections after it no longer traverse the heap the process had then. ``--no-backoff``: the gates check
every interval instead of backing off, so that a long run (``--rounds 40``) keeps its rounds
coming. Stops by itself; needs at least
one gate (without one, rounds after the watcher's first are tail reads and the shared poll stops reading).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import psutil
from sandbox_process import start_sandbox, stop_sandbox  # bench/ is on sys.path when a script here runs

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

API_KEY = "bench-key-3a7d90e1"


@dataclass
class Figures:
    lags: list[float] = field(default_factory=list)
    steady_lags: list[float] = field(default_factory=list)
    late_lags: list[float] = field(default_factory=list)
    """Lags after the second round: past the watcher's first round and the collection its start-up brings on."""
    worst_busy_ms: float = 0.0
    steady_busy_ms: float = 0.0
    idle_gc_ms: float = 0.0
    """CPU time of one full collection before the triggers start: the floor of any full collection later."""
    idle_objects: int = 0
    gc_ms: list[float] = field(default_factory=list)
    """CPU time of each full (generation 2) collection: it stops the loop for its duration."""
    idle_mb: float = 0.0
    peak_mb: float = 0.0
    rounds_s: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def run(args: argparse.Namespace) -> Figures:
    from watcher import MemorySlot, OneAsset  # bench/watcher.py: the watcher's state in memory

    from airflow_provider_debitura.sandbox.scenarios import case_id_for
    from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger
    from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
    from airflow_provider_debitura.triggers.shared_poll import active_pollers

    figures = Figures()
    process = psutil.Process()
    if args.slow_ms:  # name every callback that holds the loop longer (asyncio debug mode: slower)
        asyncio.get_running_loop().set_debug(True)
        asyncio.get_running_loop().slow_callback_duration = args.slow_ms / 1000
    n_cases = max(1, args.tasks // 5)
    gates = [
        DebituraCaseUnblockedTrigger(
            case_id_for(f"LRG-{i % n_cases + 1:06d}"),
            poll_interval=args.interval,
            end_time=time.time() + 3600,
            checks=1,
            backoff=not args.no_backoff,
        )
        for i in range(args.gates)
    ]
    watcher = DebituraNewTasksTrigger(poll_interval=args.interval)
    watcher.asset_state_store = OneAsset(MemorySlot())  # type: ignore[assignment]
    figures.idle_gc_ms = timed_collection()
    figures.idle_objects = len(gc.get_objects())
    if args.freeze:  # what a deployment could do at the triggerer's start; the provider never does it
        gc.freeze()
    figures.idle_mb = figures.peak_mb = process.memory_info().rss / 2**20
    if args.trace:
        tracemalloc.start(8)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    first_round_done = asyncio.Event()

    async def probe() -> None:
        was_busy = False
        while not stop.is_set():
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(0.01)
            lag = (loop.time() - before - 0.01) * 1000
            busy = (time.thread_time() - cpu) * 1000
            figures.lags.append(lag)
            if first_round_done.is_set():
                figures.steady_lags.append(lag)
                if len(figures.rounds_s) >= 2:
                    figures.late_lags.append(lag)
                figures.steady_busy_ms = max(figures.steady_busy_ms, busy)
            figures.worst_busy_ms = max(figures.worst_busy_ms, busy)
            figures.peak_mb = max(figures.peak_mb, process.memory_info().rss / 2**20)
            poller = active_pollers().get("debitura_default")
            if poller is not None and was_busy and not poller.busy:  # a round just ended
                figures.rounds_s.append(poller.last_duration)
                figures.requests.append(poller.round_requests[-1] if poller.round_requests else 0)
                print(
                    f"  round {len(figures.rounds_s)}: {poller.last_duration:.2f} s, {figures.requests[-1]} requests,"
                    f" worst lag {max(figures.lags):.0f} ms, worst busy {figures.worst_busy_ms:.0f} ms,"
                    f" RSS {figures.peak_mb:.0f} MB",
                    flush=True,
                )
                first_round_done.set()
            was_busy = poller is not None and poller.busy

    async def collect_watcher() -> None:
        async for _ in watcher.run():
            figures.events += 1

    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                gc_started.append(time.thread_time())
            elif gc_started:
                figures.gc_ms.append((time.thread_time() - gc_started.pop()) * 1000)

    gc.callbacks.append(on_gc)
    ticker = asyncio.create_task(probe())
    clock = time.monotonic()
    tasks = [asyncio.create_task(t.run().__anext__()) for t in gates]
    tasks.append(asyncio.create_task(collect_watcher()))
    deadline = time.monotonic() + 300 + args.rounds * max(args.interval, 60)
    try:
        while len(figures.rounds_s) < args.rounds + 1 and time.monotonic() < deadline:
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise RuntimeError(f"a trigger failed: {task.exception()!r}")
            await asyncio.sleep(0.05)
    finally:
        figures.seconds = time.monotonic() - clock
        if args.heap:
            print(heap_census(args.heap), flush=True)
        if args.trace:
            print(memory_census(args.trace), flush=True)
        stop.set()
        await ticker
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gc.callbacks.remove(on_gc)
    return figures


def timed_collection() -> float:
    """One full collection now, and the CPU milliseconds it took (it stops the loop for as long)."""
    started = time.thread_time()
    gc.collect()
    return (time.thread_time() - started) * 1000


def heap_census(top: int) -> str:
    """The objects the collector tracks, by type (the ``top`` most common), and what one full collection costs now.

    :param top: how many types to list.
    """
    counts: dict[str, int] = {}
    snapshots, page_bytes = 0, 0
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
        if name == "AccountSnapshot":
            snapshots += 1
            page_bytes += sum(len(text) for text in obj.pages)
    spent = timed_collection()
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    lines = [
        f"heap: {sum(counts.values()):,} tracked objects; a full collection now takes {spent:.0f} ms CPU;"
        f" {snapshots} snapshot(s) alive holding {page_bytes / 2**20:.0f} MB of page JSON"
    ]
    lines += [f"  {count:>9,}  {name}" for name, count in ranked]
    return "\n".join(lines)


def memory_census(top: int) -> str:
    """Where the memory allocated since the triggers started is held now (tracemalloc, by line; the ``top``
    largest), and the traced peak.

    :param top: how many lines to list.
    """
    current, peak = tracemalloc.get_traced_memory()
    stats = tracemalloc.take_snapshot().statistics("lineno")
    tracemalloc.stop()
    lines = [f"traced: {current / 2**20:.0f} MB held now, peak {peak / 2**20:.0f} MB"]
    lines += [f"  {stat.size / 2**20:>7.1f} MB {stat.count:>9,}  {stat.traceback[0]}" for stat in stats[:top]]
    return "\n".join(lines)


def table(args: argparse.Namespace, f: Figures) -> str:
    steady = f.rounds_s[1:] or f.rounds_s
    rows = [
        f"queue: large:{args.tasks} ({args.tasks // 100} pages), {args.gates} blocked gates + 1 watcher,"
        f" interval {args.interval:g} s, {len(f.rounds_s)} rounds in {f.seconds:.0f} s",
        "",
        f"{'worst lag ms':>12} {'p99 lag ms':>10} {'steady worst':>12} {'steady p99':>10} {'busy ms':>8}"
        f" {'steady busy':>11} {'RSS idle MB':>11} {'RSS peak MB':>11} {'growth MB':>9} {'round 1 s':>9}"
        f" {'later s':>7} {'requests':>14}",
        f"{max(f.lags, default=0):>12.0f} {p99(f.lags):>10.0f} {max(f.steady_lags, default=0):>12.0f}"
        f" {p99(f.steady_lags):>10.0f} {f.worst_busy_ms:>8.0f} {f.steady_busy_ms:>11.0f} {f.idle_mb:>11.0f}"
        f" {f.peak_mb:>11.0f}"
        f" {f.peak_mb - f.idle_mb:>9.0f} {(f.rounds_s or [0])[0]:>9.2f} {sum(steady) / max(len(steady), 1):>7.2f}"
        f" {','.join(map(str, f.requests)):>14}",
    ]
    rows.append(
        f"full GCs: {len(f.gc_ms)}, longest {max(f.gc_ms, default=0):.0f} ms CPU (one before the triggers started:"
        f" {f.idle_gc_ms:.0f} ms over {f.idle_objects:,} tracked objects{', then gc.freeze()' if args.freeze else ''})"
    )
    rows.append(f"after round 2: worst lag {max(f.late_lags, default=0):.0f} ms, p99 {p99(f.late_lags):.0f} ms")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50000, help="open tasks in the sandbox (default 50000)")
    parser.add_argument("--gates", type=int, default=1000, help="blocked gates (default 1000)")
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval in seconds (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds measured after the first (default 5)")
    parser.add_argument("--slow-ms", type=float, default=0, help="log callbacks holding the loop over this")
    parser.add_argument("--heap", type=int, default=0, help="at the end, list the N most common tracked types")
    parser.add_argument("--no-backoff", action="store_true", help="gates check every interval (long runs)")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() before the triggers start")
    parser.add_argument("--trace", type=int, default=0, help="at the end, the N lines holding most memory")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions by cumulative time")
    args = parser.parse_args()
    proc, _url, conn = start_sandbox(f"large:{args.tasks}", API_KEY, timeout=180)
    os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = conn
    profiler = cProfile.Profile() if args.profile else None
    try:
        if profiler is not None:
            profiler.enable()
        figures = asyncio.run(run(args))
        if profiler is not None:
            profiler.disable()
    finally:
        stop_sandbox(proc)
    print()
    print(table(args, figures))
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = []
