"""The list operator's XCom value per shape at 5,000, 20,000 and 50,000 open tasks, and what the cap says.

The tasks are the sandbox's ``large:N`` records (the bodies ``GET /tasks`` serves), parsed into ``Task`` as
the hook parses them, in this process (no HTTP: the sizes do not depend on the transport). Each size is
``len(json.dumps(value))`` of the value the operator would return; the refusal is timed as the operator runs it
(``xcom_size_error`` on the default shape, before anything is pushed).

    .venv/bin/python bench/list_xcom_size.py [--tasks 5000 20000 50000]

Prints a Markdown table for docs/list-xcom-size.md and the refusal message at each size.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# Before anything imports Airflow: no metadata DB may be touched.
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "sqlite:////tmp/nonexistent-bench/airflow.db"

from airflow_provider_debitura.models import Task
from airflow_provider_debitura.operators.list_output import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_XCOM_BYTES,
    SHAPES,
    shape_of,
    xcom_size_error,
)
from airflow_provider_debitura.sandbox.state import SandboxState


def measure(count: int) -> tuple[dict[str, int], float, str]:
    """JSON bytes of every shape of ``large:count``, and the refusal of the default shape (CPU seconds of this
    thread, so that a busy machine does not inflate it; and the message).

    :param count: open tasks.
    """
    tasks = [Task.model_validate(raw) for raw in SandboxState(f"large:{count}").list_tasks("Open")]
    sizes = {shape: len(json.dumps(shape_of(tasks, shape, DEFAULT_BATCH_SIZE))) for shape in SHAPES}
    start = time.thread_time()
    error = xcom_size_error(tasks, "records", DEFAULT_BATCH_SIZE, DEFAULT_MAX_XCOM_BYTES)
    seconds = time.thread_time() - start
    return sizes, seconds, str(error) if error is not None else "(fits)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    args = parser.parse_args()
    results = {count: measure(count) for count in args.tasks}
    header = " | ".join(f"{count:,} tasks" for count in args.tasks)
    print(f"| shape | {header} | bytes a task |")
    print("|---|" + "---:|" * (len(args.tasks) + 1))
    largest = args.tasks[-1]
    for shape in SHAPES:
        cells = []
        for count in args.tasks:
            size = results[count][0][shape]
            mark = "" if size <= DEFAULT_MAX_XCOM_BYTES else " ✗"
            cells.append(f"{size:,}{mark}")
        per_task = results[largest][0][shape] / largest
        print(f"| `{shape}` | {' | '.join(cells)} | {per_task:,.1f} |")
    print(f"\n✗: over the default max_xcom_bytes = {DEFAULT_MAX_XCOM_BYTES:,} (refused before anything is pushed).\n")
    for count, (_, seconds, message) in results.items():
        print(f"{count:,} tasks, shape='records': refusal built in {seconds:.2f} s of CPU\n  {message}\n")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
