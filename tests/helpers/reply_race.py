"""Two reply runs at once: how many cases get two messages, by gap between the two starts.

Both runs (two processes, as on two Airflow workers) answer the same 20 chat cases (one
``ReplyToChat`` task and a partner message each; replied tasks stay open, as on the real API) against
the sandbox with a latency fault on every request. The
second run starts ``gap`` seconds after the first. Duplicates are counted from the sandbox's own chat
state. Used by ``tests/reliability/test_reply_race.py`` and, as a script, renders the table in
docs/reliability.md:

    PYTHONPATH=tests .venv/bin/python -m helpers.reply_race                  # this checkout
    PYTHONPATH=tests:../main .venv/bin/python -m helpers.reply_race          # another checkout ("before")
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any

CASES = 20
GAPS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
TEMPLATE = "Thanks, we are on it for {{ case.creditorReference }}."
KEY = "race-key-3b9f0c27-do-not-log"


def scenario(cases: int = CASES) -> dict[str, Any]:
    refs = [f"RACE-{i:03d}" for i in range(1, cases + 1)]
    return {
        "name": "race",
        "chatSolveDelaySeconds": 3600,
        "cases": [{"creditorReference": r} for r in refs],
        "tasks": [{"type": "ReplyToChat", "caseCreditorReference": r} for r in refs],
        "chats": [{"caseCreditorReference": r, "message": "Any news?", "minutesAgo": 5} for r in refs],
    }


@dataclass
class Trial:
    gap: float
    duplicates: int
    lost: int
    messages: int
    requests: int
    seconds: float
    errors: list[str]


def _run_one(conn_json: str, ready: Any, go: Any, delay: float, errors: Any) -> None:
    """One reply run in its own process (as on two Airflow workers), started ``delay`` s after ``go``."""
    os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = conn_json
    from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator

    op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template=TEMPLATE)
    ready.release()
    go.wait()
    time.sleep(delay)  # the start offset under test
    try:
        op.execute({})
    except Exception as exc:  # reported in the trial
        errors.put(f"{type(exc).__name__}: {exc}"[:300])


def trial(sb: Any, gap: float, latency_ms: int = 100, cases: int = CASES) -> Trial:
    """Load the world, start two reply runs (two processes) ``gap`` s apart, count messages per case."""
    sb.reset(scenario(cases))
    return _two_runs(sb, _run_one, (sb.conn_json(),), gap, latency_ms, cases)


def _approve_one(conn_json: str, carry: dict[str, Any], ready: Any, go: Any, delay: float, errors: Any) -> None:
    """One approval run's answer in its own process: the same drafts approved ``delay`` s after ``go``."""
    import uuid
    from datetime import datetime, timezone
    from types import SimpleNamespace

    os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = conn_json
    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator

    op = DebituraReplyApprovalOperator(task_id="approve", reply_template=TEMPLATE)
    answer = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": {"id": "alice", "name": "Alice"},
        "timedout": False,
    }
    ready.release()
    go.wait()
    time.sleep(delay)  # the gap between the two approvals, under test
    try:
        op.execute_complete({"task_instance": SimpleNamespace(id=uuid.uuid4())}, answer, carry=carry)
    except Exception as exc:  # reported in the trial
        errors.put(f"{type(exc).__name__}: {exc}"[:300])


def _draft_for_approval(sb: Any) -> dict[str, Any]:
    """What an approval request waits with (drafts and report), made by the operator itself."""
    import uuid
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_debitura.hitl import compat as hitl_compat
    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator

    os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = sb.conn_json()
    real = hitl_compat.upsert_request
    hitl_compat.upsert_request = lambda *a, **k: None  # type: ignore[assignment]  # no Airflow here
    try:
        op = DebituraReplyApprovalOperator(task_id="approve", reply_template=TEMPLATE)
        op.execute({"task_instance": SimpleNamespace(id=uuid.uuid4())})
    except TaskDeferred as deferred:  # it carries the drafts
        carry: dict[str, Any] = (deferred.kwargs or {})["carry"]
        return carry
    finally:
        hitl_compat.upsert_request = real  # type: ignore[assignment]
    raise AssertionError("the approval operator did not ask")


def approval_trial(sb: Any, gap: float, latency_ms: int = 100, cases: int = CASES) -> Trial:
    """Two approval runs over the same cases (issue 21 item 1), both approved, ``gap`` s apart."""
    sb.reset(scenario(cases))
    carry = _draft_for_approval(sb)
    return _two_runs(sb, _approve_one, (sb.conn_json(), carry), gap, latency_ms, cases)


def _two_runs(sb: Any, target: Any, args: tuple[Any, ...], gap: float, latency_ms: int, cases: int) -> Trial:
    """Run ``target(*args, ready, go, delay, errors)`` in two processes (as on two Airflow workers) started
    ``gap`` s apart on a sandbox that answers every request ``latency_ms`` late; count messages per case."""
    rule = {"kind": "latency", "latencyMs": latency_ms}
    assert sb.control("PUT", "/_sandbox/faults", json={"rules": [rule]}).status_code == 200
    mp = multiprocessing.get_context("fork")
    ready, go, errors = mp.Semaphore(0), mp.Event(), mp.Queue()
    runs = [mp.Process(target=target, args=(*args, ready, go, delay, errors)) for delay in (0.0, gap)]
    for run in runs:
        run.start()
    for _ in runs:
        assert ready.acquire(timeout=120), "a run did not start"
    started = time.monotonic()
    go.set()
    for run in runs:
        run.join(timeout=300)
    seconds = time.monotonic() - started
    chats = sb.state.dump()["chats"]
    refs = [f"RACE-{i:03d}" for i in range(1, cases + 1)]
    per_case = [sum(1 for c in chats.get(sb.state.case_id(r), []) if c["role"] == 1) for r in refs]
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    return Trial(
        gap=gap,
        duplicates=sum(max(0, n - 1) for n in per_case),
        lost=sum(1 for n in per_case if n == 0),
        messages=sum(per_case),
        requests=sb.control("GET", "/_sandbox/counters").json().get("total", 0),
        seconds=round(seconds, 1),
        errors=failures + [f"exit code {r.exitcode}" for r in runs if r.exitcode],
    )


def render(trials: list[Trial], latency_ms: int) -> str:
    lines = [
        f"| gap between starts | duplicates (of {CASES}) | lost | messages | requests (both runs) | wall s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for t in trials:
        lines.append(f"| {t.gap:g} s | {t.duplicates} | {t.lost} | {t.messages} | {t.requests} | {t.seconds} |")
    total = sum(t.duplicates for t in trials)
    apart = [t for t in trials if t.gap >= 0.2]
    lines.append("")
    lines.append(
        f"Latency {latency_ms} ms per request. Duplicates: {total} in {CASES * len(trials)} case replies; "
        f"{sum(t.duplicates for t in apart)} in {CASES * len(apart)} with starts >= 0.2 s apart. "
        f"Lost: {sum(t.lost for t in trials)}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--gaps", default=",".join(f"{g:g}" for g in GAPS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--approval", action="store_true", help="two DebituraReplyApprovalOperator answers")
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////nonexistent/debitura-race/airflow.db")
    from airflow_provider_debitura.sandbox import SandboxServer

    trials = []
    with SandboxServer(scenario="empty", api_key=KEY) as sb:
        os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = sb.conn_json()
        for gap in (float(g) for g in args.gaps.split(",")):
            trials.append((approval_trial if args.approval else trial)(sb, gap, args.latency_ms))
            print(f"gap {gap:g} s: {trials[-1]}", flush=True)
    print(json.dumps([t.__dict__ for t in trials]) if args.json else render(trials, args.latency_ms))


if __name__ == "__main__":
    main()
