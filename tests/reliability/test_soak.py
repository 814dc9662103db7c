"""Soak: 2,000 gate checks against a moving queue with 20% injected faults; zero wrong verdicts.

Two verdict paths: the sensor's ``poke`` (the direct two-request check) and the shared-snapshot
path the coalesced trigger uses (one consistent listing of the whole queue, then
``AccountSnapshot.verdict`` per case; judged raw, without the trigger's confirming direct check).
The connection allows one attempt (``max_attempts=1``, 0.3 s timeout), so every injected fault
reaches the verdict as "unknown" instead of being retried away. The queue changes between checks
(tasks added and solved) and inside a check (an ``afterRequests`` event adds an account-level
blocker between the case read and the account read). After each check the sandbox's own state is
the oracle:

- "unblocked" on a case the server says is blocked: **wrong** (must be 0);
- "blocked" on a case the server says is free: **cautious** when the read failed, otherwise wrong.

Seeded, a fixed number of iterations, every request bounded by the timeout: it stops by itself.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any

import pytest
from helpers.reliability import cid, context, load_world, open_tasks, set_faults, settle, truly_blocked, use_conn

from airflow_provider_debitura.exceptions import DebituraError
from airflow_provider_debitura.gate import AccountSnapshot, GateState
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

CHECKS = 2_000
FAULT_RATE = 0.20
SEED = 20261127
GATES = [f"SOAK-{i}" for i in range(1, 6)]
FAULT_KINDS: list[dict[str, Any]] = [
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 502},
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 504},
    {"kind": "rateLimit", "retryAfter": 0.05},
    {"kind": "rateLimit", "retryAfter": 1, "retryAfterIn": "header"},
    {"kind": "latency", "latencyMs": 450},
    {"kind": "drop"},
    {"kind": "malformedJson"},
    {"kind": "html200"},
]
CASE_TYPES = ["ReplyToChat", "ReviewPartner", "CaseValidationNeedsInfo", "FutureTaskType"]


def scenario() -> dict[str, Any]:
    tasks = [{"type": "ReviewPartner", "caseCreditorReference": "SOAK-FILL", "minutesAgo": 500 - i} for i in range(110)]
    tasks += [
        {"type": "ReplyToChat", "caseCreditorReference": "SOAK-1"},
        {"type": "FutureTaskType", "caseCreditorReference": "SOAK-3"},
    ]
    return {
        "name": "soak",
        "cases": [{"creditorReference": ref} for ref in [*GATES, "SOAK-FILL"]],
        "tasks": tasks,
    }


class Soak:
    def __init__(self, sb: Any) -> None:
        self.sb = sb
        self.rng = random.Random(SEED)
        self.counts: Counter[str] = Counter()
        self.sensors = {
            ref: DebituraCaseUnblockedSensor(task_id=f"gate_{i}", case_id=cid(ref), poke_interval=1, timeout=60)
            for i, ref in enumerate(GATES)
        }
        self.hook = DebituraHook()
        self.wrong: list[dict[str, Any]] = []

    # -- the world moves --

    def mutate_between_checks(self) -> None:
        rng, sb = self.rng, self.sb
        if rng.random() >= 0.15:
            return
        action = rng.choices(["add_case", "solve_case", "solve_account", "add_account"], [30, 40, 25, 5])[0]
        self.counts[f"queue change: {action}"] += 1
        tasks = open_tasks(sb)
        if action == "add_case":
            task = {"type": rng.choice(CASE_TYPES), "caseCreditorReference": rng.choice(GATES)}
            assert sb.control("POST", "/tasks", json=task).status_code == 201
        elif action == "add_account":
            assert sb.control("POST", "/tasks", json={"type": "AssignBankAccount"}).status_code == 201
        else:
            gate_ids = {cid(ref) for ref in GATES}
            pool = [
                t
                for t in tasks
                if (action == "solve_case" and t["caseId"] in gate_ids)
                or (action == "solve_account" and t["caseId"] is None)
            ]
            for task in pool if action == "solve_account" else pool[:1]:
                assert sb.control("POST", f"/tasks/{task['id']}/solve", json={}).status_code == 200

    def maybe_add_blocker_mid_check(self) -> None:
        if self.rng.random() < 0.03:
            self.counts["queue change: account blocker added between a check's two reads"] += 1
            event = {
                "at": {"afterRequests": {"method": "GET", "path": "/cases/{id}/tasks", "count": 1}},
                "action": {"type": "addTask", "task": {"type": "AssignBankAccount"}},
            }
            assert self.sb.control("POST", "/events", json=event).status_code == 201

    def maybe_fault(self, paths: list[str]) -> dict[str, Any] | None:
        if self.rng.random() >= FAULT_RATE:
            return None
        rule = dict(self.rng.choice(FAULT_KINDS)) | {"method": "GET", "path": self.rng.choice(paths), "count": 1}
        set_faults(self.sb, [rule])
        return rule

    def end_fault(self, rule: dict[str, Any] | None) -> bool:
        if rule is None:
            return False
        if rule["kind"] == "latency":
            settle(self.sb)  # the abandoned request must land before the oracle looks
        applied = sum(r["applied"] for r in self.sb.control("GET", "/faults").json()["rules"])
        self.sb.control("DELETE", "/faults")
        if applied:
            self.counts["faults injected"] += applied
            self.counts[f"fault: {rule['kind']}{rule.get('status', '')}"] += applied
        return bool(applied)

    # -- judging --

    def judge(self, path: str, ref: str, unblocked: bool, unknown: bool, faulted: bool, tasks: list[dict]) -> None:
        blocked = truly_blocked(self.sb, cid(ref), tasks)
        self.counts["checks"] += 1
        self.counts[f"checks via {path}"] += 1
        self.counts["checks read through an injected fault"] += int(faulted)
        if unblocked and blocked:
            verdict = "wrong: unblocked while blocked"
        elif unblocked:
            verdict = "correct unblocked"
        elif blocked:
            verdict = "correct blocked"
        elif unknown and faulted:
            verdict = "cautious"
        else:
            verdict = "wrong: blocked while free" if not unknown else "wrong: unknown without a fault"
        self.counts[verdict] += 1
        if verdict.startswith("wrong") and len(self.wrong) < 20:
            self.wrong.append({"path": path, "case": ref, "verdict": verdict, "open": tasks})

    def poke_once(self) -> None:
        ref = self.rng.choice(GATES)
        sensor = self.sensors[ref]
        self.maybe_add_blocker_mid_check()
        rule = self.maybe_fault(["/cases/", "/tasks"])
        seen = []
        check = sensor.check
        sensor.check = lambda case: seen.append(check(case)) or seen[-1]  # type: ignore[method-assign]
        done = sensor.poke(context()).is_done
        faulted = self.end_fault(rule)
        self.judge("sensor poke", ref, done, seen[-1].state is GateState.UNKNOWN, faulted, open_tasks(self.sb))

    def snapshot_once(self) -> None:
        rule = self.maybe_fault(["/tasks"])
        try:
            snapshot = AccountSnapshot.from_tasks(self.hook.exchange(TaskListing(status="Open")), time.time())
        except DebituraError as exc:
            snapshot = AccountSnapshot.failed(f"{type(exc).__name__}: {exc}", time.time())
        faulted = self.end_fault(rule)
        tasks = open_tasks(self.sb)
        for ref in GATES:
            verdict = snapshot.verdict(cid(ref))
            self.judge("shared snapshot", ref, verdict.is_unblocked, verdict.state is GateState.UNKNOWN, faulted, tasks)

    def run(self) -> None:
        iteration = 0
        while self.counts["checks"] < CHECKS:
            iteration += 1
            self.mutate_between_checks()
            if iteration % 11 == 0:
                self.snapshot_once()
            else:
                self.poke_once()
            if iteration % 200 == 0:
                self.sb.control("DELETE", "/requests")  # keep the request log small
        self.hook.close()


@pytest.mark.timeout(300)
def test_soak_2000_checks_with_20_percent_faults(rel_sb, monkeypatch, capsys, tmp_path_factory):
    use_conn(monkeypatch, rel_sb, timeout=0.3, max_attempts=1)
    load_world(rel_sb, scenario())
    started = time.monotonic()
    soak = Soak(rel_sb)
    soak.run()
    counts = dict(sorted(soak.counts.items()))
    counts["seconds"] = round(time.monotonic() - started, 1)
    out = tmp_path_factory.getbasetemp() / "soak.json"
    out.write_text(json.dumps(counts, indent=1))
    with capsys.disabled():
        print(f"\nsoak: {json.dumps(counts)}\n(written to {out})")
    wrong = {k: v for k, v in counts.items() if k.startswith("wrong")}
    assert wrong == {}, (wrong, soak.wrong)
    assert counts["checks"] >= CHECKS
    # The faults really happened, on both paths, and both verdicts were exercised.
    assert 0.15 * CHECKS < counts["checks read through an injected fault"] < 0.25 * CHECKS
    assert counts["correct unblocked"] > 200 and counts["correct blocked"] > 200 and counts["cautious"] > 20
