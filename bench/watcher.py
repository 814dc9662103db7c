"""Benchmark: the new-task watcher at 20,000 open tasks: time per round, event-loop lag, memory, state size.

    python bench/watcher.py [--tasks 20000] [--rounds 3] [--json]

Starts a Debitura sandbox in a child process (so its CPU does not pollute the figures of the
"triggerer" side) and runs, in one event loop as a triggerer would, these phases:

1. **read only** (the baseline): the full read of the open queue that a shared-poll round makes
   (``DebituraAsyncHook.list_tasks``), and turning its tasks into the JSON a watcher's round carries.
2. **first start**: a ``DebituraNewTasksTrigger`` on the shared poll meets the full queue, records it
   as backlog, then runs ``--rounds`` steady rounds.
3. **burst**: a fresh watcher starts on an empty queue, then ``--tasks`` new tasks appear at once: it
   fires one event per task, then runs ``--rounds`` steady rounds holding every one of them.

Per phase: the requests a round sends (``GET /tasks`` as the sandbox counted them) and the seconds its read
takes (a tail read of the queue's end in steady state, a full read on a first start or a burst; the baseline's
full read is what every round cost before the tail read), the wall time of the watcher's own work on top of it
(deciding what is new, handing the events over, saving the state), the worst event-loop lag (a 10 ms ticker's
largest oversleep), the process's peak RSS growth and the stored state's size. The store is the real
``AirflowSeenTasksStore`` over an in-memory stand-in for one asset's state store. Ratios are against the poll-
only baseline of the same run, and the state size against the version-1 format (``{"v": 1, "ids": {id:
first_seen}}``) of the same ids, encoded in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import httpx
from pydantic import JsonValue
from sandbox_process import start_sandbox, stop_sandbox  # bench/ is on sys.path when a script here runs

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

API_KEY = "bench-key-9d1e4b2c"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemorySlot:
    """Stands in for one asset's ``AssetStateStoreAccessor``: values kept as JSON text, as the metadata DB does."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def aget(self, key: str, default: JsonValue = None) -> JsonValue:
        text = self.values.get(key)
        return default if text is None else json.loads(text)

    async def aset(self, key: str, value: JsonValue) -> None:
        self.values[key] = json.dumps(value)

    async def adelete(self, key: str) -> None:
        self.values.pop(key, None)


class OneAsset:
    """Shaped like ``AssetStateStoreAccessors`` for a watcher feeding one asset."""

    def __init__(self, slot: MemorySlot) -> None:
        self._by_name = {"bench_asset": slot}
        self._by_uri: dict[str, MemorySlot] = {}


@dataclass
class Phase:
    name: str
    rounds: list[float] = field(default_factory=list)
    """The watcher's own seconds per round: from the round's snapshot delivered to its state saved
    (for the baseline: turning the read's tasks into JSON)."""
    reads: list[float] = field(default_factory=list)
    """Seconds of each full read (baseline only)."""
    requests: float = 0.0
    """``GET /tasks`` requests per round (the sandbox's counter over the phase, divided by its rounds)."""
    read_s: list[float] = field(default_factory=list)
    """Seconds of each round's read (the source's ``next_round``)."""
    kinds: list[str] = field(default_factory=list)
    """How each round read the queue: "tail" or "full"."""
    worst_lag_ms: float = 0.0
    rss_growth_mb: float = 0.0
    events: int = 0
    state_bytes: int = 0
    seen_ids: int = 0


class Monitor:
    """A 10 ms ticker in the loop: worst oversleep (overall, and within given windows) and peak RSS."""

    def __init__(self) -> None:
        gc.collect()
        self.base = self.peak = rss_mb()
        self.samples: list[tuple[float, float, float]] = []
        """(start, end, oversleep) of every tick that overslept by more than 1 ms."""
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            after = loop.time()
            if after - before - 0.01 > 0.001:
                self.samples.append((before, after, after - before - 0.01))
            self.peak = max(self.peak, rss_mb())

    async def close(self, phase: Phase, windows: list[tuple[float, float]] | None = None) -> Phase:
        """Fill the phase's lag and RSS; with ``windows``, the lag counts only ticks that started in one
        (a tick that started before is held up by what ran before: the shared read)."""
        self._stop.set()
        await self._task
        lags = [lag for start, _, lag in self.samples if windows is None or any(a <= start < b for a, b in windows)]
        phase.worst_lag_ms = max(lags, default=0.0) * 1000
        phase.rss_growth_mb = self.peak - self.base
        return phase


async def read_only(rounds: int) -> Phase:
    """The baseline: the full read a shared-poll round makes, and the JSON a watcher's round carries."""
    from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook

    phase = Phase("read only (baseline)")
    async with DebituraAsyncHook("debitura_default") as hook:
        listing = await hook.list_tasks(status="Open")  # warm-up: the client, the first read
        monitor = Monitor()
        for _ in range(rounds):
            started = time.monotonic()
            listing = await hook.list_tasks(status="Open", pages_hint=listing.pages)
            phase.reads.append(time.monotonic() - started)
            phase.requests = listing.requests
            started = time.monotonic()
            [task.to_api_dict() for task in listing]
            phase.rounds.append(time.monotonic() - started)
    return await monitor.close(phase)


class Timed:
    """Runs a watcher's ``run()`` and records, per round, the read and the watcher's own time."""

    def __init__(self, slot: MemorySlot, **kwargs: object) -> None:
        from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger

        self.trigger = DebituraNewTasksTrigger(poll_interval=0.5, **kwargs)  # type: ignore[arg-type]
        self.trigger.asset_state_store = OneAsset(slot)
        self.events = 0
        self.work: list[float] = []
        self.windows: list[tuple[float, float]] = []
        """Loop-time windows of the watcher's own work (for the lag attributable to it)."""
        process, persist = self.trigger._process, self.trigger._persist
        loop = asyncio.get_running_loop()
        state: dict[str, float] = {}

        self.busy = True

        async def timed_process(listing):  # type: ignore[no-untyped-def]
            state["start"] = loop.time()
            return await process(listing)

        async def timed_persist() -> None:
            await persist()
            self.windows.append((state["start"], loop.time()))
            self.work.append(loop.time() - state["start"])
            self.busy = False

        self.trigger._process = timed_process  # type: ignore[method-assign]
        self.trigger._persist = timed_persist  # type: ignore[method-assign]
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for _ in self.trigger.run():
            self.events += 1

    async def idle(self) -> None:
        """Until the watcher is between rounds (its pause), so a phase counts whole rounds."""
        while self.busy:
            await asyncio.sleep(0.005)

    async def rounds(self, n: int) -> list[float]:
        target = len(self.work) + n
        while len(self.work) < target:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        return self.work[target - n : target]

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


ROUNDS: list[tuple[str, float]] = []
"""(kind, seconds) of every round's read, in order."""


def record_reads() -> None:
    """Time every watcher round's read (``QueueRounds.next_round``)."""
    from airflow_provider_debitura.triggers.watcher.rounds import QueueRounds, Round

    original = QueueRounds.next_round

    async def timed(self: QueueRounds) -> Round:
        started = time.monotonic()
        result = await original(self)
        ROUNDS.append((result.kind, time.monotonic() - started))
        return result

    QueueRounds.next_round = timed  # type: ignore[method-assign]


async def tasks_requests(control: httpx.AsyncClient) -> int:
    return int((await control.get("/_sandbox/counters")).json().get("GET /tasks", 0))


async def watcher_phase(
    name: str,
    watch: Timed,
    slot: MemorySlot,
    rounds: int,
    control: httpx.AsyncClient,
    since: tuple[int, int] | None = None,
) -> Phase:
    """``rounds`` rounds of ``watch``, counted from ``since`` (the sandbox's request counter and the round log's
    length), by default from the end of the round under way."""
    from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY

    monitor = Monitor()
    events_before = watch.events
    phase = Phase(name)
    if since is None:
        await watch.idle()
        since = (await tasks_requests(control), len(ROUNDS))
    requests, first = since
    phase.rounds.extend(await watch.rounds(rounds))
    phase.requests = (await tasks_requests(control) - requests) / rounds
    phase.kinds = [kind for kind, _ in ROUNDS[first : first + rounds]]
    phase.read_s = [seconds for _, seconds in ROUNDS[first : first + rounds]]
    phase.events = watch.events - events_before
    phase.state_bytes = len(slot.values.get(ASSET_STATE_KEY, ""))
    assert watch.trigger.tracker is not None
    phase.seen_ids = len(watch.trigger.tracker.state.ids)
    return await monitor.close(phase, watch.windows)


def state_memory(ids: int) -> tuple[float, float, float]:
    """What a tracker keeps between rounds (tracemalloc, MB) for ``ids`` open tasks recorded as backlog and
    for ``ids`` fired ones; and the version-1 format's bytes per id, for the same ids."""
    import uuid
    from datetime import datetime, timezone

    from airflow_provider_debitura.triggers.watcher.state import SeenState, WatchFilter
    from airflow_provider_debitura.triggers.watcher.tracker import SeenTracker

    def held(first_start_on: int) -> tuple[float, list[str]]:
        gc.collect()
        tracemalloc.start()
        tracker = SeenTracker(WatchFilter("bench"), SeenState(), poll_interval=60, replay_existing=False, now=2e9)
        tracker.observe([make(n) for n in range(first_start_on)], complete=True, now=2e9)
        tracker.observe([make(n) for n in range(ids)], complete=True, now=2e9 + 60)  # every id listed again
        tracker.snapshot(2e9 + 120)  # past the grace: the bookkeeping of fresh events is gone
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return size / 2**20, list(tracker.state.ids)

    def make(n: int) -> dict[str, object]:
        created = datetime.fromtimestamp(2e9 - 3600 + n * 0.1, timezone.utc).isoformat()
        return {"id": str(uuid.UUID(int=n + 1)), "type": "ReplyToChat", "status": "Open", "dateCreated": created}

    backlog, _ = held(ids)
    fired, keys = held(0)
    return backlog, fired, len(json.dumps({"v": 1, "ids": dict.fromkeys(keys, 1.8e9)}, separators=(",", ":"))) / ids


async def main_async(args: argparse.Namespace) -> list[Phase]:
    from airflow_provider_debitura.triggers.watcher import tracker

    # Fired tasks enter the stored state 30 s after their event (crash safety); the phases here are a few
    # seconds long, so store them at once to measure the state they make.
    tracker.PERSIST_GRACE = 0.0
    record_reads()
    proc, url, conn = start_sandbox(f"large:{args.tasks}", API_KEY)
    os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = conn
    phases: list[Phase] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as control:
            phases.append(await read_only(args.rounds))
            print(f"  {phases[-1].name}: {median(phases[-1].reads):.2f} s", flush=True)

            slot = MemorySlot()
            since = (await tasks_requests(control), len(ROUNDS))
            watch = Timed(slot)
            phases.append(await watcher_phase("first start (backlog)", watch, slot, 1, control, since))
            phases.append(await watcher_phase("steady, backlog only", watch, slot, args.rounds, control))
            await watch.stop()

            await control.post("/_sandbox/scenario", json={"name": "empty"})
            slot = MemorySlot()
            watch = Timed(slot)
            await watch.rounds(1)
            await watch.idle()
            since = (await tasks_requests(control), len(ROUNDS))
            await control.post("/_sandbox/scenario", json={"name": f"large:{args.tasks}"})
            phases.append(await watcher_phase(f"burst of {args.tasks:,} new", watch, slot, 1, control, since))
            phases.append(await watcher_phase(f"steady, {args.tasks:,} seen ids", watch, slot, args.rounds, control))
            await watch.stop()
            for phase in phases[1:]:
                print(
                    f"  {phase.name}: {phase.requests:g} requests and {median(phase.read_s):.3f} s to read a round "
                    f"({', '.join(phase.kinds)}), the watcher's own work {median(phase.rounds):.2f} s, "
                    f"{phase.events} events",
                    flush=True,
                )
    finally:
        stop_sandbox(proc)
    return phases


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def table(phases: list[Phase], tasks: int, memory: tuple[float, float, float]) -> str:
    base = phases[0]
    read = median(base.reads)
    lines = [
        f"open tasks: {tasks:,}; medians over the phase's rounds; full read (baseline) {base.requests:g} requests, "
        f"{read:.2f} s",
        "",
        f"{'phase':<28} {'req/round':>9} {'read s':>7} {'watcher s':>9} {'x read':>7} {'lag ms':>7}"
        f" {'RSS +MB':>8} {'events':>7} {'seen ids':>8} {'state B':>8} {'B/task':>7}",
    ]
    for p in phases[1:]:
        own = median(p.rounds)
        lines.append(
            f"{p.name:<28} {p.requests:>9g} {median(p.read_s):>7.3f} {own:>9.3f} {own / read:>7.3f}"
            f" {p.worst_lag_ms:>7.1f} {p.rss_growth_mb:>8.1f}"
            f" {p.events:>7} {p.seen_ids:>8} {p.state_bytes:>8} {p.state_bytes / tasks:>7.2f}"
        )
    backlog_mb, fired_mb, v1_per_id = memory
    burst = phases[3]
    per_fired = burst.state_bytes / max(burst.seen_ids, 1)
    lines += [
        "",
        f"state bytes per fired task: {per_fired:.1f} (version-1 format of the same ids: {v1_per_id:.1f}, "
        f"x{v1_per_id / per_fired:.1f})",
        f"before (every round a full read, as the watcher did until the tail read): {base.requests:g} requests "
        f"and {read:.2f} s a round",
        f"baseline: the full read {read:.2f} s (worst loop lag during it {base.worst_lag_ms:.0f} ms, RSS "
        f"+{base.rss_growth_mb:.0f} MB); its {tasks:,} tasks as JSON (what a round carries when every task "
        f"matches; the shared-poll adapter's work, before the watcher's own): {median(base.rounds):.3f} s",
        f"memory a watcher keeps between rounds (tracemalloc): {backlog_mb:.1f} MB for {tasks:,} tasks of "
        f"backlog, {fired_mb:.1f} MB for {tasks:,} fired ones",
        "'watcher s' is the watcher's own time per round, after the read: deciding what is new (in a worker",
        "thread), handing the events to the consumer, saving the state. 'x read' divides it by the baseline",
        "read. 'lag ms' is the worst oversleep of a 10 ms ticker that started during the watcher's own work.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000, help="open tasks (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="steady rounds per phase (default 3)")
    parser.add_argument("--json", action="store_true", help="also print the phases as JSON")
    args = parser.parse_args()
    phases = asyncio.run(main_async(args))
    memory = state_memory(args.tasks)
    print()
    print(table(phases, args.tasks, memory))
    if args.json:
        print(json.dumps([p.__dict__ for p in phases]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
