"""Benchmark: N deferred case gates in one event loop, this tree against a baseline git ref, same run.

    python bench/gates.py [--gates 1,10,100,1000] [--interval 2] [--rounds 8] [--baseline main]

Starts a Debitura sandbox holding 5,000 open tasks (``large:5000``, 50 pages) in a child process, then
for each gate count and each code version runs a fresh child process that behaves like a triggerer:
one ``trigger.run()`` task per gate (``DebituraCaseUnblockedTrigger``, ``coalesce=True``), in Airflow's
default triggerer configuration (no ``gc.freeze``). Every case is blocked by account-level tasks, so no
gate opens. Each child reports:

- **requests per round** from the sandbox's ``/_sandbox/counters``, read at a quiet moment after each
  round (every gate waiting for the next one, no request in flight): the first round, and the largest
  and mean of the later ones, against the bound ``min(N + 1, P)`` (``min(N + 2, P)`` for the first);
- **worst event-loop lag**: the largest oversleep of a 10 ms ticker in the same loop, from the moment the
  gates start (so the start-up of N triggers is included); and **busy**: the largest CPU time the loop's
  thread spent between two ticks, which is what the lag would be on an idle machine (on a loaded one the
  wall-clock figure also counts time the process was not scheduled);
- **full garbage collections** during the run and the CPU time of the longest (``gc.callbacks``): a
  collection of the whole heap stops the loop for its duration;
- peak RSS growth.

The baseline is the same package at ``--baseline`` (default ``main``), exported with ``git archive`` into a
temporary directory and put first on ``PYTHONPATH`` of its children. Ratios baseline / this tree are printed
per gate count. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox_process import start_sandbox, stop_sandbox  # bench/ is on sys.path when a script here runs

# Each gate logs its blockers at INFO on its first check; 1,000 of those through Airflow's console logging
# would measure the terminal, not the triggers. Set before Airflow is imported.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

OPEN_TASKS = 5000
PAGES = OPEN_TASKS // 100
API_KEY = "bench-key-5f0c2e7a"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: str
    gates: int
    rounds: list[int] = field(default_factory=list)
    """Requests of each round, in order."""
    worst_lag_ms: float = 0.0
    """Largest wall-clock oversleep of the 10 ms ticker (inflated when the machine is loaded)."""
    worst_busy_ms: float = 0.0
    """Largest CPU time the loop's thread spent between two ticks: the lag an idle machine would see."""
    steady_busy_ms: float = 0.0
    """The same after round 2 (the start-up of N triggers excluded)."""
    full_gcs: int = 0
    longest_full_gc_ms: float = 0.0
    """CPU time of the longest full collection."""
    rss_growth_mb: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    @property
    def first(self) -> int | None:
        return self.rounds[0] if self.rounds else None

    @property
    def later_max(self) -> int | None:
        return max(self.rounds[1:]) if len(self.rounds) > 1 else None

    @property
    def later_mean(self) -> float | None:
        return sum(self.rounds[1:]) / len(self.rounds[1:]) if len(self.rounds) > 1 else None


# ------------------------------------------------------------------------------------- the child


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _waiting(poller: Any) -> int:
    if hasattr(poller, "waiting"):
        return int(poller.waiting)
    return len(poller._waiters)  # the baseline's poller has no public count


async def child(url: str, gates: int, interval: float, rounds: int) -> Result:
    """Run ``gates`` triggers until ``rounds`` rounds were delivered; measure as documented above."""
    import httpx

    from airflow_provider_debitura.sandbox.scenarios import case_id_for
    from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger
    from airflow_provider_debitura.triggers.shared_poll import active_pollers

    result = Result(os.environ.get("BENCH_CODE", "?"), gates)
    pauses: list[float] = []
    started_at: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started_at["t"] = time.thread_time()
            else:
                pauses.append(time.thread_time() - started_at.pop("t", time.thread_time()))

    async with httpx.AsyncClient(base_url=url, timeout=60) as control:
        await _warm_up(case_id_for, DebituraCaseUnblockedTrigger)
        await _settled(control)  # a request the warm-up left in flight must not land in round 1
        await control.delete("/_sandbox/requests")
        triggers = [
            DebituraCaseUnblockedTrigger(
                case_id_for(f"LRG-{i % (OPEN_TASKS // 5) + 1:06d}"),
                poll_interval=interval,
                end_time=time.time() + 600,
                checks=1,  # as the sensor defers it: after the worker's first check
            )
            for i in range(gates)
        ]
        gc.collect()
        baseline_rss, peak = rss_mb(), rss_mb()
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal peak
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                before, cpu = loop.time(), time.thread_time()
                await asyncio.sleep(0.01)
                busy = (time.thread_time() - cpu) * 1000
                result.worst_lag_ms = max(result.worst_lag_ms, (loop.time() - before - 0.01) * 1000)
                result.worst_busy_ms = max(result.worst_busy_ms, busy)
                if len(result.rounds) >= 2:
                    result.steady_busy_ms = max(result.steady_busy_ms, busy)
                peak = max(peak, rss_mb())

        gc.callbacks.append(on_gc)
        tick = asyncio.create_task(ticker())
        clock = time.monotonic()
        tasks = [asyncio.create_task(t.run().__anext__()) for t in triggers]
        sampled_rounds = [0]
        try:
            sampled_rounds[0] = await _sample_rounds(control, active_pollers, gates, rounds, result)
        except Exception as exc:  # report, do not hide
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.monotonic() - clock
        poller = active_pollers().get("debitura_default")
        exact = list(getattr(poller, "round_requests", []))[: sampled_rounds[0]]
        if exact and sum(exact) == sum(result.rounds):
            result.rounds = exact[:rounds]  # this tree counts each round itself; the sandbox's total agrees
        stop.set()
        await tick
        gc.callbacks.remove(on_gc)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.full_gcs = len(pauses)
    result.longest_full_gc_ms = max(pauses, default=0.0) * 1000
    result.rss_growth_mb = peak - baseline_rss
    return result


async def _warm_up(case_id_for: Any, trigger_class: Any) -> None:
    """One gate for one round, not measured: first-call imports, the connection read and the TLS context cost
    some 50 ms once per process, which a long-running triggerer paid long ago."""
    trigger = trigger_class(case_id_for("LRG-000001"), poll_interval=60, end_time=time.time() + 60, checks=0)
    task = asyncio.create_task(trigger.run().__anext__())
    await asyncio.sleep(3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _settled(control: Any) -> None:
    last = None
    for _ in range(60):
        total = (await control.get("/_sandbox/counters")).json().get("total", 0)
        if total == last:
            return
        last = total
        await asyncio.sleep(0.5)


async def _sample_rounds(control: Any, active_pollers: Any, gates: int, rounds: int, result: Result) -> int:
    """Counters at a quiet moment after each round: the requests each round cost (two rounds in one sample
    when the next one started before a quiet moment came). Returns the rounds the samples cover."""
    deadline = time.monotonic() + rounds * 60
    last_total, last_round = 0, 0
    while len(result.rounds) < rounds:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(result.rounds)} rounds")
        poller = active_pollers().get("debitura_default")
        quiet = (
            poller is not None
            and poller.snapshots > last_round
            and _waiting(poller) == gates
            and not getattr(poller, "busy", False)
        )
        if quiet:
            seen = poller.snapshots
            total = (await control.get("/_sandbox/counters")).json().get("total", 0)
            if poller.snapshots == seen and _waiting(poller) == gates:  # nothing started meanwhile
                result.rounds.append(total - last_total)
                last_total, last_round = total, seen
        await asyncio.sleep(0.002)
    return last_round


# ------------------------------------------------------------------------------------ the parent


def export_baseline(ref: str, into: Path) -> Path:
    """The package as it is at ``ref``, in a directory to put first on ``PYTHONPATH``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "airflow_provider_debitura"],
        check=True,
        capture_output=True,
    ).stdout
    tar_path = into / "baseline.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into


def run_child(code: str, pythonpath: Path | None, url: str, conn: str, args: argparse.Namespace, gates: int) -> Result:
    env = dict(os.environ, AIRFLOW_CONN_DEBITURA_DEFAULT=conn, BENCH_CODE=code)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--child", url, "--gates", str(gates), "--interval", str(args.interval)]
    cmd += ["--rounds", str(args.rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.rounds * 120 + 120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return Result(code, gates, error=f"child failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    return Result(**json.loads(lines[-1]))


def table(results: list[Result]) -> str:
    def fmt(value: float | int | None, spec: str = "") -> str:
        return "-" if value is None else format(value, spec)

    head = (
        f"{'gates':>6} {'code':<9} {'round 1':>7} {'bound':>5} {'later max':>9} {'mean':>6} {'bound':>5}"
        f" {'lag ms':>7} {'busy ms':>7} {'steady':>6} {'full GCs':>8} {'GC ms':>6} {'RSS +MB':>8}"
    )
    lines = [f"queue: {OPEN_TASKS} open tasks ({PAGES} pages); requests per round from /_sandbox/counters", "", head]
    for r in results:
        lines.append(
            f"{r.gates:>6} {r.code:<9} {fmt(r.first):>7} {min(r.gates + 2, PAGES):>5} {fmt(r.later_max):>9}"
            f" {fmt(r.later_mean, '.1f'):>6} {min(r.gates + 1, PAGES):>5}"
            f" {r.worst_lag_ms:>7.1f} {r.worst_busy_ms:>7.1f} {r.steady_busy_ms:>6.1f}"
            f" {r.full_gcs:>8} {r.longest_full_gc_ms:>6.1f} {r.rss_growth_mb:>8.1f}"
            + (f"  ERROR {r.error}" if r.error else "")
        )
    lines += ["", "ratios baseline / this tree:"]
    by = {(r.code, r.gates): r for r in results}
    for gates in sorted({r.gates for r in results}):
        base, new = by.get(("baseline", gates)), by.get(("this tree", gates))
        if base and new and base.rounds and new.rounds:
            lines.append(
                f"{gates:>6} gates: round 1 requests x{base.first / max(new.first or 1, 1):.2f}, later rounds"
                f" x{(base.later_mean or 0) / max(new.later_mean or 1, 1e-9):.2f}, worst lag"
                f" x{base.worst_lag_ms / max(new.worst_lag_ms, 0.1):.2f}"
                f" (busy x{base.worst_busy_ms / max(new.worst_busy_ms, 0.1):.2f})"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gates", default="1,10,100,1000", help="comma-separated gate counts")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds (default 2)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds measured per scenario (default 8)")
    parser.add_argument("--baseline", default="main", help="git ref to compare with ('' for none)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(child(args.child, int(args.gates), args.interval, args.rounds))
        print(json.dumps(asdict(result)))
        return 0
    proc, url, conn = start_sandbox(f"large:{OPEN_TASKS}", API_KEY, timeout=60)
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gates-") as tmp:
            baseline = export_baseline(args.baseline, Path(tmp)) if args.baseline else None
            for gates in [int(g) for g in args.gates.split(",")]:
                codes = [("baseline", baseline), ("this tree", None)] if baseline else [("this tree", None)]
                for code, path in codes:
                    result = run_child(code, path, url, conn, args, gates)
                    print(
                        f"  {code:<9} {gates:>5} gates: rounds {result.rounds}, worst lag {result.worst_lag_ms:.1f} ms,"
                        f" full GCs {result.full_gcs} (longest {result.longest_full_gc_ms:.1f} ms)"
                        + (f" ERROR {result.error}" if result.error else ""),
                        flush=True,
                    )
                    results.append(result)
    finally:
        stop_sandbox(proc)
    print()
    print(table(results))
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
