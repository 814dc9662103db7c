"""What a read's task costs as a plain tuple (``gate.records.PackedTask``, what a read keeps) against the same
fields as a ``typing.NamedTuple`` (``gate.records.CompactTask``, what reads kept until 2026-12-07, and what a
verdict's log line still reads): memory per task, and what the cyclic garbage collector makes of a queue of them.

    .venv/bin/python bench/compact_task.py [--tasks 50000] [--rounds 40] [--heap 1000000]

Prints, for each shape: ``sys.getsizeof`` of one task, the bytes ``tracemalloc`` sees for ``--tasks`` of them
(built by ``gate.records.compact`` from parsed models, as a read builds them, and named by ``gate.records.view``
for the named tuple: the bytes asked for), the RSS they
add (measured in a fresh interpreter: what the allocator hands out, in 16-byte size classes), and how many the
collector still tracks after a collection. Then a triggerer's rounds: a long-lived heap of ``--heap``
tracked objects (Airflow's own), and per round a full read's ``--tasks`` compact tasks built anew (the shared
poll rebuilds them every read) while the previous round's are dropped; it counts the full (oldest-generation)
collections and their CPU time (``gc.callbacks``). ``reused`` passes the previous read's tasks to ``compact``
(``known=``), which keeps the same object for a task that did not change (the named tuples' remedy before).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from airflow_provider_debitura.gate.records import CompactTask, compact, view
from airflow_provider_debitura.models import Task

TYPES = ("ReplyToChat", "MoreInfoNeeded", "SignContract", "ReviewPartner")


def parsed_tasks(n: int) -> list[Task]:
    """``n`` open tasks as a read parses them (every field a string; one in four caseless)."""
    return [
        Task.model_validate(
            {
                "id": str(uuid.UUID(int=i)),
                "type": TYPES[i % 4],
                "title": f"Task {i}",
                "status": "Open",
                "caseId": None if i % 4 == 2 else str(uuid.UUID(int=10**9 + i)),
                "caseReference": f"REF-{i}",
                "solutionUrl": f"https://app.debitura.com/t/{i}",
                "dateCreated": "2026-01-01T00:00:00Z",
            }
        )
        for i in range(n)
    ]


def plain(task: Task) -> tuple[Any, ...]:
    """What a read keeps: a plain 7-tuple (``gate.records.compact``)."""
    return compact(task)


def named(task: Task, known: dict[str, Any] | None = None) -> CompactTask:
    """The same fields as a named tuple (reads kept these until 2026-12-07)."""
    return view(compact(task, known))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def resident(shape: str, n: int) -> float:
    """RSS bytes per task that ``n`` tasks of this shape add, in a fresh interpreter (no freed arenas to reuse)."""
    code = (
        "import gc, sys; sys.path.insert(0, 'bench'); import compact_task as b; "
        f"tasks = b.parsed_tasks({n}); build = b.{shape}; gc.disable(); before = b.rss(); "
        "held = [build(t) for t in tasks]; print((b.rss() - before - 8 * len(held)) / len(held))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def memory(name: str, build: Callable[[Task], tuple[Any, ...]], tasks: list[Task]) -> None:
    holder: list[Any] = [None] * len(tasks)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i, task in enumerate(tasks):
        holder[i] = build(task)
    after = tracemalloc.take_snapshot()
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    tracemalloc.stop()
    gc.enable()
    gc.collect()
    tracked = sum(gc.is_tracked(t) for t in holder)
    n = len(tasks)
    per_task = resident("plain" if build is plain else "named", n)
    print(
        f"{name:12} getsizeof {sys.getsizeof(holder[0])} B; tracemalloc {traced:,} B for {n:,} "
        f"({traced / n:.0f} B each); RSS +{per_task:.0f} B each; tracked by the GC after a collection: {tracked:,}"
    )


def rounds(name: str, tasks: list[Task], count: int, heap: int, *, as_named: bool, reuse: bool) -> None:
    gc.collect()
    airflow_heap = [{"k": i} for i in range(heap)]
    gc.collect()
    full: list[float] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.process_time()
            else:
                full.append(time.process_time() - started[0])

    gc.callbacks.append(on_gc)
    previous: dict[str, Any] = {}
    try:
        for _ in range(count):
            snapshot: list[Any] = []
            for task in tasks:
                snapshot.append(named(task, previous if reuse else None) if as_named else plain(task))
                _garbage = {"a page's": "transient objects"}
            previous = {t.id: t for t in snapshot} if reuse else {}
    finally:
        gc.callbacks.remove(on_gc)
    del airflow_heap
    worst = max(full, default=0.0) * 1000
    print(
        f"{name:12} {len(full)} full collection(s) in {count} rounds of {len(tasks):,} tasks over a heap of "
        f"{heap:,}: worst {worst:.0f} ms, total {sum(full) * 1000:.0f} ms CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--heap", type=int, default=1_000_000)
    args = parser.parse_args()
    tasks = parsed_tasks(args.tasks)
    print(f"Python {sys.version.split()[0]}")
    memory("tuple", plain, tasks)
    memory("CompactTask", named, tasks)
    rounds("tuple", tasks, args.rounds, args.heap, as_named=False, reuse=False)
    rounds("CompactTask", tasks, args.rounds, args.heap, as_named=True, reuse=False)
    rounds("reused", tasks, args.rounds, args.heap, as_named=True, reuse=True)


if __name__ == "__main__":
    main()
