"""Benchmark: N case gates in one event loop, coalesced shared poll vs. naive per-gate polling.

    python bench/gates.py [--interval 1] [--duration 5] [--gates 1,100,1000]

Starts a Debitura sandbox holding 5,000 open tasks (``large:5000``) in a child process (so its CPU
work does not pollute the loop-lag and RSS figures of the "triggerer" side), then for each gate
count runs the triggers exactly as a triggerer would (``trigger.run()`` tasks in one loop) until
their deadline, and prints, per scenario: API requests per interval (from ``/_sandbox/counters``),
peak RSS growth and the worst event-loop lag (a 10 ms ticker measuring its oversleep). Every case
in the scenario is blocked by account-level tasks, so no gate opens and each runs the whole time.
Stops by itself.

"coalesced" is the default trigger (``coalesce=True``): one shared account read per interval, or,
when the gates' own checks cost less than that read (few gates on a large queue), direct checks.
Its first interval is always a shared read (the queue size is not known yet), so besides the
whole-run average the table gives the steady state: requests per poller round after round 2,
counted from a moment when every gate is waiting for the next round (no request in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

# Each gate logs its blockers at INFO on its first check; 1,000 of those through Airflow's console
# logging would measure the terminal, not the triggers. Set before Airflow is imported.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

OPEN_TASKS = 5000
API_KEY = "bench-key-5f0c2e7a"


@dataclass
class Result:
    mode: str
    gates: int
    intervals: float
    requests: int
    rss_growth_mb: float
    worst_lag_ms: float
    events: int
    steady: float | None = None
    """Requests per interval after round 2 (coalesced only; naive gates are uniform from the start)."""
    shared_reads: int = 0
    direct_rounds: int = 0

    @property
    def per_interval(self) -> float:
        return self.requests / self.intervals


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def start_sandbox() -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_debitura.sandbox",
            "--scenario",
            f"large:{OPEN_TASKS}",
            "--api-key",
            API_KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = conn = None
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline and (url is None or conn is None):
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("DEBITURA_SANDBOX_URL="):
            url = line.split("=", 1)[1].strip()
        elif line.startswith("AIRFLOW_CONN_DEBITURA_DEFAULT="):
            conn = line.split("=", 1)[1].strip().strip("'")
    if url is None or conn is None:
        proc.kill()
        raise RuntimeError("sandbox did not start")
    return proc, url, conn


async def run_scenario(control: httpx.AsyncClient, mode: str, gates: int, interval: float, duration: float) -> Result:
    from airflow_provider_debitura.sandbox.scenarios import case_id_for
    from airflow_provider_debitura.triggers.debitura import DebituraCaseUnblockedTrigger

    gc.collect()
    baseline = rss_mb()
    peak = baseline
    worst_lag = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal peak, worst_lag
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - before - 0.01)
            peak = max(peak, rss_mb())

    n_cases = OPEN_TASKS // 5
    end_time = time.time() + duration
    triggers = [
        DebituraCaseUnblockedTrigger(
            case_id_for(f"LRG-{i % n_cases + 1:06d}"),
            poll_interval=interval,
            end_time=end_time,
            coalesce=(mode == "coalesced"),
        )
        for i in range(gates)
    ]
    for attempt in range(5):  # the sandbox may still be shedding the previous scenario's connections
        try:
            await control.delete("/_sandbox/requests")
            break
        except httpx.TransportError:
            await asyncio.sleep(1 + attempt)
    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    tasks = [asyncio.create_task(t.run().__anext__()) for t in triggers]
    sampler = asyncio.create_task(sample_steady(control, gates)) if mode == "coalesced" else None
    done, pending = await asyncio.wait(tasks, timeout=duration + 15)
    elapsed = time.monotonic() - started
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    counters: dict[str, int] = {}
    for attempt in range(5):
        try:
            counters = (await control.get("/_sandbox/counters")).json()
            break
        except httpx.TransportError:
            await asyncio.sleep(1 + attempt)
    stop.set()
    await tick
    steady = None
    shared_reads = direct_rounds = 0
    if sampler is not None:
        sample = sampler.result() if sampler.done() else None  # no quiet moment after round 2: no figure
        sampler.cancel()
        if sample is not None:
            poller, rounds_at, requests_at = sample
            shared_reads, direct_rounds = poller.shared_reads, poller.direct_rounds
            if poller.snapshots > rounds_at:
                steady = (counters.get("total", 0) - requests_at) / (poller.snapshots - rounds_at)
    statuses = [t.result().payload["status"] for t in done if not t.cancelled() and t.exception() is None]
    del triggers, tasks, done
    return Result(
        mode,
        gates,
        elapsed / interval,
        counters.get("total", 0),
        peak - baseline,
        worst_lag * 1000,
        len(statuses),
        steady,
        shared_reads,
        direct_rounds,
    )


async def sample_steady(control: httpx.AsyncClient, gates: int) -> tuple[object, int, int] | None:
    """(poller, rounds, requests) at a quiet moment after round 2: every gate waits for the next
    round, so no request is in flight. Retried if a round started while the counters were read."""
    from airflow_provider_debitura.triggers.shared_poll import active_pollers

    def quiet(poller: object) -> bool:
        return poller.snapshots >= 2 and len(poller._waiters) == poller.subscribers == gates  # type: ignore[attr-defined]

    for _ in range(20_000):
        poller = active_pollers().get("debitura_default")
        if poller is not None and quiet(poller):
            rounds = poller.snapshots
            total = (await control.get("/_sandbox/counters")).json().get("total", 0)
            if poller.snapshots == rounds and quiet(poller):
                return poller, rounds, total
        await asyncio.sleep(0.005)
    return None


def table(results: list[Result], interval: float) -> str:
    target = math.ceil(OPEN_TASKS / 100) + 1
    lines = [
        f"open tasks: {OPEN_TASKS}; interval {interval:g} s; target for coalesced: <= min(2N, {target}) "
        "requests/interval (steady state)",
        "",
        f"{'gates':>6} {'mode':<10} {'req/interval':>12} {'steady':>7} {'target':>6} {'rounds sh/dir':>13}"
        f" {'naive demand':>12} {'RSS +MB':>8} {'worst lag ms':>12} {'events':>6}",
    ]
    for r in results:
        steady = "-" if r.steady is None else f"{r.steady:.1f}"
        rounds = f"{r.shared_reads}/{r.direct_rounds}" if r.mode == "coalesced" else "-"
        goal = str(min(2 * r.gates, target)) if r.mode == "coalesced" else "-"
        lines.append(
            f"{r.gates:>6} {r.mode:<10} {r.per_interval:>12.1f} {steady:>7} {goal:>6} {rounds:>13}"
            f" {2 * r.gates:>12} {r.rss_growth_mb:>8.1f} {r.worst_lag_ms:>12.1f} {r.events:>6}"
        )
    lines += [
        "",
        "naive 'req/interval' is what the naive gates managed to send: on a small machine they fall far",
        "behind their demand (2 per gate per interval), so the request ratio is given against both.",
        "",
        "ratios naive / coalesced:",
    ]
    by = {(r.mode, r.gates): r for r in results}
    for gates in sorted({r.gates for r in results}):
        c, n = by.get(("coalesced", gates)), by.get(("naive", gates))
        if c and n:
            lines.append(
                f"{gates:>6} gates: requests x{2 * gates / max(c.steady or c.per_interval, 1e-9):.2f} by demand "
                f"in the steady state (x{n.per_interval / max(c.per_interval, 1e-9):.2f} measured over the "
                "whole run), "
                f"RSS x{n.rss_growth_mb / max(c.rss_growth_mb, 0.1):.2f}, "
                f"worst lag x{n.worst_lag_ms / max(c.worst_lag_ms, 0.1):.2f}"
            )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Result]:
    proc, url, conn = start_sandbox()
    os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = conn
    results: list[Result] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as control:
            # Warm-up (not reported): first-call imports and connection lookup cost ~0.3 s once per
            # process, which a long-running triggerer has paid long before.
            await run_scenario(control, "coalesced", 1, args.interval, 1.5)
            await run_scenario(control, "naive", 1, args.interval, 1.5)
            if args.gc_freeze:
                gc.collect()
                gc.freeze()  # move the import-time heap out of the collector's way, as long-lived servers do
            for gates in args.gates:
                for mode in ("coalesced", "naive"):
                    result = await run_scenario(control, mode, gates, args.interval, args.duration)
                    print(
                        f"  {mode:<9} {gates:>5} gates: {result.per_interval:7.1f} req/interval "
                        f"(steady {'-' if result.steady is None else f'{result.steady:.1f}'}), "
                        f"RSS +{result.rss_growth_mb:.1f} MB, worst lag {result.worst_lag_ms:.1f} ms",
                        flush=True,
                    )
                    results.append(result)
                    await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds (default 1)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds each scenario runs (default 5)")
    parser.add_argument("--gates", default="1,100,1000", help="comma-separated gate counts (default 1,100,1000)")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after warm-up (see the report)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    args.gates = [int(g) for g in args.gates.split(",")]
    results = asyncio.run(main_async(args))
    print()
    print(table(results, args.interval))
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
