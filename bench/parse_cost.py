"""DAG-parse cost of the provider: importing its sensor and operators on top of ``airflow.sdk``.

Every DAG file that uses the provider pays this import in the DAG processor, so it is measured the
way the processor pays it: in fresh interpreters. Figures are ratios against ``import airflow.sdk``
alone, measured in the same run with baseline and provider runs interleaved to cancel drift.

    .venv/bin/python bench/parse_cost.py [--runs N]

Prints: the median import time of each side (timed inside the child, so interpreter start-up is
excluded; whole-process wall time is printed too), the ratio and the added milliseconds, the
heaviest modules the provider adds (``python -X importtime``, median of a few runs), and a
PASS/FAIL check that importing the provider opens no network connection.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from collections import defaultdict

PROVIDER_MODULES = (
    "airflow_provider_debitura.sensors.debitura",
    "airflow_provider_debitura.operators.list_tasks",
    "airflow_provider_debitura.operators.reply_to_chat",
)
BASELINE_MODULE = "airflow.sdk"
OWN_PACKAGE = "airflow_provider_debitura"

# Nothing here may touch a metadata DB or the network; the same env is used for every child.
CHILD_ENV = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/nonexistent-bench/airflow.db"}
CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up writes .pyc files; every timed run then reads them

# Prints one line per module group: wall and CPU seconds since start. The first group is always
# airflow.sdk, so a provider run also yields its own paired split (sdk alone, then sdk + provider).
TIMED_CHILD = textwrap.dedent(
    """
    import sys, time
    w0, c0 = time.perf_counter(), time.process_time()
    for name in sys.argv[1:]:
        __import__(name)
        print(f"{time.perf_counter() - w0:.6f} {time.process_time() - c0:.6f}")
    """
)

# Records every attempt to reach the network, then refuses it. Recording (not only raising) matters:
# a library that swallows the error would otherwise hide the attempt.
NO_NETWORK_CHILD = textwrap.dedent(
    """
    import socket, sys
    attempts = []

    def _refuse(what):
        def blocked(*args, **kwargs):
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(f"bench/parse_cost.py: network access during import: {what}")
        return blocked

    socket.socket.connect = _refuse("socket.connect")
    socket.socket.connect_ex = _refuse("socket.connect_ex")
    socket.socket.sendto = _refuse("socket.sendto")
    socket.create_connection = _refuse("create_connection")
    socket.getaddrinfo = _refuse("getaddrinfo")
    socket.gethostbyname = _refuse("gethostbyname")

    code = sys.argv[1]
    try:
        exec(code, {})
    except Exception as exc:
        print(f"ERROR {type(exc).__name__}: {exc}")
    for attempt in attempts:
        print(f"ATTEMPT {attempt}")
    print("ATTEMPTS", len(attempts))
    """
)

IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def run_child(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=CHILD_ENV, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


def importable(modules: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    ok, failed = [], {}
    for name in modules:
        proc = run_child(["-c", f"import {name}"])
        if proc.returncode == 0:
            ok.append(name)
        else:
            failed[name] = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return ok, failed


def timed_import(modules: list[str]) -> dict[str, float]:
    """Seconds, from one fresh interpreter: ``wall``/``cpu`` for all of ``modules``, ``sdk_wall``/
    ``sdk_cpu`` once the first (airflow.sdk) was imported, and ``process`` (whole-process wall)."""
    t0 = time.perf_counter()
    proc = run_child(["-c", TIMED_CHILD, *modules])
    process = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"import of {modules} failed:\n{proc.stderr[-2000:]}")
    rows = [tuple(map(float, line.split())) for line in proc.stdout.strip().splitlines()]
    return {"wall": rows[-1][0], "cpu": rows[-1][1], "sdk_wall": rows[0][0], "sdk_cpu": rows[0][1], "process": process}


def added_by_provider(modules: list[str]) -> dict[str, tuple[int, int, int]]:
    """module -> (self µs, cumulative µs, depth) for what one ``-X importtime`` run imports after
    ``airflow.sdk`` is complete, i.e. exactly what the provider adds on top of it. (importtime prints
    a module when its import finishes, so everything after airflow.sdk's own line came later.)"""
    code = ";".join(f"import {m}" for m in modules)
    proc = run_child(["-X", "importtime", "-c", code])
    out: dict[str, tuple[int, int, int]] = {}
    after_sdk = False
    for line in proc.stderr.splitlines():
        match = IMPORTTIME_LINE.match(line)
        if not match:
            continue
        self_us, cum_us, indent, name = match.groups()
        depth = (len(indent) - 1) // 2
        if after_sdk:
            out[name] = (int(self_us), int(cum_us), depth)
        elif name == BASELINE_MODULE and depth == 0:  # airflow.sdk also shows up nested, half-imported
            after_sdk = True
    return out


def median_added(modules: list[str], runs: int) -> dict[str, tuple[float, float, int]]:
    samples: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for _ in range(runs):
        for name, row in added_by_provider(modules).items():
            samples[name].append(row)
    return {
        name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows), rows[0][2])
        for name, rows in samples.items()
    }


def already_loaded_by_sdk(packages: tuple[str, ...]) -> list[str]:
    code = f"import sys, {BASELINE_MODULE}; print(' '.join(p for p in {packages!r} if p in sys.modules))"
    return run_child(["-c", code]).stdout.split()


def no_network_check(code: str) -> tuple[bool, list[str]]:
    proc = run_child(["-c", NO_NETWORK_CHILD, code])
    lines = proc.stdout.splitlines()
    problems = [line for line in lines if line.startswith(("ATTEMPT ", "ERROR "))]
    counted = any(line.startswith("ATTEMPTS ") for line in lines)
    if proc.returncode != 0 or not counted:
        problems.append(f"checker exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return not problems, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per side (default 7)")
    parser.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs per side (default 3)")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs; {sys.executable}")
    modules, failed = importable(PROVIDER_MODULES)
    for name, why in failed.items():
        print(f"NOTE: {name} is not importable ({why}); measuring without it")
    if not modules:
        fallback, _ = importable((OWN_PACKAGE + ".hooks.debitura", OWN_PACKAGE))
        if not fallback:
            raise SystemExit("nothing of the provider is importable")
        print(f"NOTE: falling back to {fallback}")
        modules = fallback
    baseline = [BASELINE_MODULE]
    provider = [BASELINE_MODULE, *modules]
    print(f"baseline: import {BASELINE_MODULE}")
    print(f"provider: import {', '.join(provider)}")

    # Warm-up (writes .pyc files, warms the page cache); not counted.
    timed_import(baseline)
    timed_import(provider)

    base: list[dict[str, float]] = []
    prov: list[dict[str, float]] = []
    for i in range(args.runs):
        # Alternate which side goes first so neither always runs right after the other.
        for side in ((baseline, base), (provider, prov)) if i % 2 == 0 else ((provider, prov), (baseline, base)):
            side[1].append(timed_import(side[0]))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows) * 1000

    print()
    print(f"A. Fresh interpreters, {args.runs} per side, interleaved; medians in ms")
    print(f"{'':28} {'import CPU':>11} {'import wall':>12} {'process wall':>13}")
    for label, rows in (("baseline (airflow.sdk)", base), ("with provider", prov)):
        print(f"{label:28} {med(rows, 'cpu'):11.1f} {med(rows, 'wall'):12.1f} {med(rows, 'process'):13.1f}")
    ratios = [med(prov, k) / med(base, k) for k in ("cpu", "wall", "process")]
    added = [med(prov, k) - med(base, k) for k in ("cpu", "wall", "process")]
    print(f"{'ratio provider / baseline':28} {ratios[0]:11.3f} {ratios[1]:12.3f} {ratios[2]:13.3f}")
    print(f"{'added ms':28} {added[0]:11.1f} {added[1]:12.1f} {added[2]:13.1f}")
    lo_hi = {
        label: (min(r["wall"] for r in rows) * 1000, max(r["wall"] for r in rows) * 1000)
        for label, rows in (("b", base), ("p", prov))
    }
    print(
        f"(import wall min-max: baseline {lo_hi['b'][0]:.0f}-{lo_hi['b'][1]:.0f}, "
        f"provider {lo_hi['p'][0]:.0f}-{lo_hi['p'][1]:.0f}; other load on the machine widens this)"
    )

    # Paired: inside each provider process, airflow.sdk alone vs everything. Less noisy than A,
    # because both numbers come from the same process under the same load.
    print()
    print(f"B. Paired, inside each of the {args.runs} provider interpreters; medians")
    for kind in ("cpu", "wall"):
        paired_ratio = statistics.median(r[kind] / r[f"sdk_{kind}"] for r in prov)
        paired_added = statistics.median(r[kind] - r[f"sdk_{kind}"] for r in prov) * 1000
        sdk_alone = statistics.median(r[f"sdk_{kind}"] for r in prov) * 1000
        print(
            f"  {kind:4}: airflow.sdk {sdk_alone:7.1f} ms, + provider {paired_added:6.1f} ms, "
            f"ratio (sdk + provider) / sdk = {paired_ratio:.3f}"
        )

    added_mods = median_added(provider, args.importtime_runs)
    added_self = sum(row[0] for row in added_mods.values())
    print()
    print(
        f"C. -X importtime ({args.importtime_runs} runs, per-module medians): after airflow.sdk the provider "
        f"imports {len(added_mods)} more modules, {added_self / 1000:.1f} ms of self time"
    )
    print("Top 10 added modules by cumulative time (own = part of airflow_provider_debitura; depth 0 = imported")
    print("by the DAG file itself; cumulative times of nested modules are included in their importer's):")
    print(f"  {'cumulative ms':>13} {'self ms':>8} {'depth':>5}  module")
    for name, (self_us, cum_us, depth) in sorted(added_mods.items(), key=lambda kv: -kv[1][1])[:10]:
        own = "own " if name.split(".")[0] == OWN_PACKAGE else "    "
        print(f"  {cum_us / 1000:13.1f} {self_us / 1000:8.1f}  {depth:5d}  {own}{name}")

    by_package: dict[str, float] = defaultdict(float)
    for name, (self_us, _, _) in added_mods.items():
        by_package[name.split(".")[0]] += self_us
    print("Added self time by top-level package:")
    for package, self_us in sorted(by_package.items(), key=lambda kv: -kv[1])[:10]:
        names = sorted(name for name in added_mods if name.split(".")[0] == package)
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        print(f"  {self_us / 1000:8.1f} ms  {package} ({len(names)}: {shown})")
    third_party = ("httpx", "pydantic", "tenacity", "jinja2")
    already = already_loaded_by_sdk(third_party)
    print(f"Already loaded by 'import airflow.sdk' alone, so free for the provider: {', '.join(already) or 'none'}")
    newly = [p for p in third_party if p not in already]
    if newly:
        print(f"Newly pulled in by the provider: {', '.join(newly)}")

    print()
    # Negative control first: the checker must notice a real connection attempt, or its PASS means nothing.
    control_ok, _ = no_network_check("import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)")
    print(f"no-network checker detects a deliberate connect: {'PASS' if not control_ok else 'FAIL'}")
    code = ";".join(f"import {m}" for m in provider)
    ok, problems = no_network_check(code)
    print(f"importing the provider opens no connection: {'PASS' if ok else 'FAIL'}")
    for line in problems:
        print(f"  {line}")
    return 0 if ok and not control_ok else 1


if __name__ == "__main__":
    sys.exit(main())
