"""Benchmark: a simulated day on one API key (issue 24's "Done when").

    .venv/bin/python bench/simulated_day.py [--open-tasks 5000] [--gates 1000] [--hours 24] [--speed 288]
                                            [--new-tasks 200] [--clear-hours 24] [--seed 24] [--no-triage] [--json]

In one process: the sandbox on 127.0.0.1 (a free port) enforcing the API's three windows (2,000 a sliding
minute, 20,000 a clock hour, 100,000 a day counted sliding: the strictest reading of the day), its clock
``--speed`` times real time (288: a day in 5 real minutes); the connection's request budget with the
defaults' values (half of each window, the day's pace) on a clock at the same speed; ``--gates`` deferred case
gates and one new-task watcher in the shared poll at the default intervals (60 s, backoff to 15 min; divided
by ``--speed`` in real time); the triage example's two operators every 30 simulated minutes; a seeded driver
that clears each gated case's blockers and adds ``--new-tasks`` tasks at random simulated times over
``--clear-hours`` (24: the day's pace; with ``--hours 6`` a quarter of the blockers clear within the run).

Prints a table: requests, 429s, the peak of every window against the budget's share and the API's limit,
each gate's delay from its blocker clearing to its opening (median, 95th percentile, max), new tasks fired
exactly once, triage runs. Exits 1 when any of issue 24's conditions fails. The code is in
``tests/helpers/simulated_day.py`` (the CI test ``tests/reliability/test_simulated_day.py`` runs a short one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////nonexistent/simulated-day.db")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.simulated_day import Config, Result, run


def ok(result: Result) -> bool:
    """Issue 24's conditions: no 429, every window within its share, every gate opened after its blocker
    cleared, every new task fired exactly once."""
    gates_ok = not result.opened_early and not result.not_opened and not result.bad_events
    return result.refused == 0 and result.within_share() and gates_ok and result.fired_once()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open-tasks", type=int, default=5_000)
    parser.add_argument("--gates", type=int, default=1_000)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (blockers clear within them)")
    parser.add_argument("--speed", type=float, default=288.0, help="simulated seconds per real second")
    parser.add_argument("--new-tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--grace", type=float, default=1_800.0, help="simulated seconds for the last gates")
    parser.add_argument("--clear-hours", type=float, default=24.0, help="blockers clear over this many hours")
    parser.add_argument("--no-triage", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    config = Config(
        open_tasks=args.open_tasks, gates=args.gates, hours=args.hours, speed=args.speed,
        new_tasks=args.new_tasks, seed=args.seed, grace=args.grace, triage=not args.no_triage,
        clear_hours=args.clear_hours,
    )  # fmt: skip
    result = run(config)
    print(result.table())
    if args.json:
        figures = {
            "config": dataclasses.asdict(config), "spend": result.spend, "delays": result.delays,
            "opened_early": result.opened_early, "not_opened": result.not_opened, "bad_events": result.bad_events,
            "fired": dict(result.fired), "added": result.added, "triage_runs": result.triage_runs,
        }  # fmt: skip
        print(json.dumps(figures, default=str))
    verdict = ok(result)
    print("PASS" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
