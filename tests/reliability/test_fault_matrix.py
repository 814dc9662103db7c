"""The fault matrix: every component under every fault, judged by the sandbox's own state.

One parametrized test. Each cell loads a small world into the session's sandbox, injects one fault
(sandbox fault rules, a scenario variant, or an ``afterRequests`` event), runs one component, and
checks the outcome against the oracle (``sb.state``): the right verdict or a clear error, never a
wrong "unblocked", exactly one reply per case (a re-run after the fault posts nothing more), and a
trigger that yields an event or keeps polling but never raises. Each cell's outcome is recorded;
``render_matrix.py`` turns the run into the table in ``docs/reliability.md``.

Connection: ``timeout`` 0.5 s, ``max_attempts`` 3; bursts are 2 requests long (recovered by the
retries), the "persistent" row never stops. Faults on reads target every ``GET``; the reply operator
also gets one fault of the same kind on its ``POST``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from helpers.quirky_api import MatrixServer
from helpers.quirky_api import task as quirky_task
from helpers.reliability import (
    cid,
    context,
    creditor_messages,
    load_world,
    open_tasks,
    replyable_cases,
    set_faults,
    settle,
    truly_blocked,
    use_conn,
)

from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

TIMEOUT_S = 0.5
LATENCY_MS = 1500
BLOCKED, FREE, FILL, GONE = "REL-BLOCKED", "REL-FREE", "REL-FILL", "REL-GONE"
BLOCKER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "reliability/blocker"))
FILLER0_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "reliability/filler-0"))


# ------------------------------------------------------------------------------------------ worlds


def world(variant: str | None = None) -> dict[str, Any]:
    blocker: dict[str, Any] = {"id": BLOCKER_ID, "type": "ReplyToChat", "caseCreditorReference": BLOCKED}
    blocker["minutesAgo"] = 10
    tasks = [blocker]
    events: list[dict[str, Any]] = []
    scenario: dict[str, Any] = {"name": f"reliability-{variant or 'base'}"}
    extra_cases: tuple[str, ...] = ()
    if variant == "unknownType":
        blocker["type"] = "FutureTaskType"  # blocks by itself: every type blocks unless filtered
        # Caseless, unknown, a lead's: not account-level. Without a lead it would block every gate that counts every
        # type (issue 20 item 11: doubt never opens a gate; tests/gate/test_unknown_types.py).
        tasks.append({"type": "FutureAccountThing", "minutesAgo": 9, "leadId": "5f0c3a9e-7d1b-4c2a-9e8f-0a1b2c3d4e5f"})
    elif variant == "actionNull":
        blocker["action"] = None
    elif variant == "actionPartsNull":  # the spec's TaskActionDto: method and path both nullable
        blocker["action"] = {"method": None, "path": None}
        tasks.append({"type": "Generic", "caseCreditorReference": FILL, "minutesAgo": 9, "action": {"path": None}})
    elif variant == "caseGone":  # a chat case merged away while the queue still lists its task (see install)
        tasks.append({"type": "ReplyToChat", "caseCreditorReference": GONE, "minutesAgo": 9})
        extra_cases = (GONE,)
    elif variant == "actionElsewhere":
        blocker["action"] = {"method": "POST", "path": f"/cases/{cid(FREE)}/chats"}
        tasks.append(
            {
                "type": "MoreInfoNeeded",
                "caseCreditorReference": BLOCKED,
                "minutesAgo": 9,
                "action": {"method": "POST", "path": "https://collector.example/cases/{caseId}/chats"},
            }
        )
    elif variant == "naiveNulls":
        scenario["naiveTimestamps"] = True
        blocker |= {"title": None, "typeLabel": None, "description": None, "deadline": None}
    elif variant == "drift":
        tasks += [
            {"type": "ReviewPartner", "caseCreditorReference": FILL, "minutesAgo": 300 - i}
            | ({"id": FILLER0_ID} if i == 0 else {})
            for i in range(150)
        ]
        events = [
            # a task on page 1 is solved right after page 1 is read: every later task shifts up by one
            {"at": {"afterRequests": {"method": "GET", "path": "/tasks", "count": 1}},
             "action": {"type": "solveTask", "taskId": FILLER0_ID}},
            # an account-level blocker appears between a gate's two reads (case tasks, then account tasks)
            {"at": {"afterRequests": {"method": "GET", "path": "/cases/{id}/tasks", "count": 1}},
             "action": {"type": "addTask", "task": {"type": "AssignBankAccount"}}},
        ]  # fmt: skip
    scenario |= {
        "cases": [{"creditorReference": ref} for ref in (BLOCKED, FREE, FILL, *extra_cases)],
        "tasks": tasks,
        "chats": [
            {"caseCreditorReference": ref, "message": "Is the debtor's address current?", "minutesAgo": 11}
            for ref in (BLOCKED, *extra_cases)
        ],
        "events": events,
    }
    return scenario


def quirky_world(fault: Fault) -> MatrixServer:
    """The base world (a blocker on BLOCKED, FREE free) plus 150 tasks on FILL, on the stand-in server; with an
    unstable order every task has the same ``dateCreated``."""
    quirk = dict(fault.quirk or {})
    same = quirk.get("order") == "unstable"
    stamp = (lambda i: "2026-01-01T00:00:00Z") if same else (lambda i: f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00Z")
    tasks = [quirky_task("ReplyToChat", cid(BLOCKED), stamp(0), BLOCKER_ID)]
    tasks += [quirky_task("Generic", cid(FILL), stamp(i + 1)) for i in range(150)]
    gone = quirk.pop("delete", None)
    server = MatrixServer(tasks, cases={cid(r) for r in (BLOCKED, FREE, FILL)}, **quirk)
    if gone:
        server.delete_case(cid(gone))
    return server


# ------------------------------------------------------------------------------------------ faults


@dataclass(frozen=True)
class Fault:
    label: str
    rule: dict[str, Any] | None = None  # applied to GETs (count below) and once to the reply's POST
    count: int | None = 2
    variant: str | None = None
    post: bool = True  # also fault the reply operator's POST once
    reads: bool = True
    na: dict[str, str] = field(default_factory=dict)
    quirk: dict[str, Any] | None = None
    """Run against ``helpers.quirky_api.MatrixServer`` with these quirks instead of the sandbox (issue 20)."""


READ_ONLY = ("hook", "sensor-b", "sensor-u", "defer-b", "defer-u", "list")


_NO_CHATS = {
    "reply": "the stand-in server for this quirk serves no chats",
    "list": "the list operator returns the hook's listing (hook column); an unverified one is logged as a warning",
}


def _quirk(label: str, **quirk: Any) -> Fault:
    """A row on the stand-in server; the quirk never stops (so "unknown, still blocked" is a right answer)."""
    return Fault(label, count=None, quirk=quirk, na=_NO_CHATS)


def _status(code: int) -> Fault:
    return Fault(f"{code} burst (2 requests)", {"kind": "status", "status": code})


FAULTS: dict[str, Fault] = {
    "500": _status(500),
    "502": _status(502),
    "503": _status(503),
    "504": _status(504),
    "503-persistent": Fault("503 on every GET (never recovers)", {"kind": "status", "status": 503}, None, post=False),
    "429-body": Fault("429, retryAfter 0.2 s in body", {"kind": "rateLimit", "retryAfter": 0.2}),
    "429-header": Fault(
        "429, Retry-After header only (1 s)", {"kind": "rateLimit", "retryAfter": 1, "retryAfterIn": "header"}, 1
    ),
    "429-none": Fault("429, no retry hint", {"kind": "rateLimit", "retryAfterIn": "none"}),
    "latency": Fault(f"latency {LATENCY_MS / 1000:g} s > timeout {TIMEOUT_S:g} s", {"kind": "latency"}, 1),
    "drop": Fault("dropped connection", {"kind": "drop"}),
    "commitThenDrop": Fault(
        "POST committed, then dropped",
        {"kind": "commitThenDrop"},
        reads=False,
        na=dict.fromkeys(READ_ONLY, "only a write can be committed and lost"),
    ),
    "malformedJson": Fault("malformed JSON (200)", {"kind": "malformedJson"}),
    "html200": Fault("HTML error page with 200", {"kind": "html200"}),
    "drift": Fault("tasks solved/added between two reads", variant="drift"),
    "unknownType": Fault("unknown task types", variant="unknownType"),
    "actionNull": Fault(
        "action null",
        variant="actionNull",
        na={c: "action is read only by the reply operator" for c in ("hook", "list")},
    ),
    "actionElsewhere": Fault(
        "action to another case / host",
        variant="actionElsewhere",
        na={c: "action is read only by the reply operator" for c in ("hook", "list")},
    ),
    "naiveNulls": Fault("naive timestamps, null fields", variant="naiveNulls"),
    "actionPartsNull": Fault("action method and path null (spec-allowed)", variant="actionPartsNull"),
    "caseGone": Fault("another chat case merged away (404), its task still listed", variant="caseGone"),
    # Issue 20: quirks the sandbox does not have, from the stand-in server (no chats: the reply column is N/A).
    "unstableOrder": _quirk("unstable order of equal dateCreated", order="unstable"),
    "totalZero": _quirk("totalResults 0 on pages that hold tasks", totals="zero"),
    "totalCapped": _quirk("totalResults capped (120 of 151)", totals="cap:120"),
    "totalLagging": _quirk("totalResults lagging by one", totals="lag:1"),
    "totalOver": _quirk("totalResults over-reported by 100", totals="over:100"),
    "caseDeletedListed": _quirk("the gate's own case deleted, its task still listed", delete=BLOCKED),
}

COMPONENTS = {
    "hook": "hook list_tasks",
    "sensor-b": "sensor poke, blocked case",
    "sensor-u": "sensor poke, unblocked case",
    "defer-b": "trigger run, blocked case",
    "defer-u": "trigger run, unblocked case",
    "list": "list operator",
    "reply": "reply operator",
}


def install(sb: Any, fault: Fault, component: str) -> None:
    if fault.variant == "caseGone":
        assert sb.control("POST", f"/cases/{cid(GONE)}/merge", json={}).status_code == 200
    if fault.rule is None:
        return
    extra = {"latencyMs": LATENCY_MS} if fault.rule["kind"] == "latency" else {}
    rules = []
    if fault.reads:
        rules.append({**fault.rule, **extra, "method": "GET", "count": fault.count})
    if component == "reply" and fault.post:
        rules.append({**fault.rule, **extra, "method": "POST", "path": "/cases/", "count": 1})
    set_faults(sb, rules)


# ------------------------------------------------------------------------------------------ components


@dataclass
class Outcome:
    text: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


def _err(exc: BaseException) -> str:
    return type(exc).__name__


def run_hook(sb: Any, fault: Fault) -> Outcome:
    try:
        with DebituraHook() as hook:
            tasks = hook.list_tasks()
    except AirflowException as exc:
        return Outcome(_err(exc), fault.count is None, {"error": str(exc)[:300]})
    want = {t["id"] for t in open_tasks(sb)}
    got = [t.id for t in tasks]
    outcome = _listing_outcome(sb, got, want)
    if not outcome.ok and not tasks.verified and fault.quirk is not None:  # incomplete, and says so
        return Outcome(outcome.text.replace("WRONG", "NOT verified, as reported"), True)
    return outcome


def _listing_outcome(sb: Any, got: list[str], want: set[str]) -> Outcome:
    ok = set(got) == want and len(got) == len(want)
    pages = sb.control("GET", "/counters").json().get("GET /tasks", 0)
    text = f"{len(got)} tasks, exact" if ok else f"{len(got)} tasks, WRONG (want {len(want)})"
    return Outcome(f"{text} ({pages} page reads)", ok)


def run_sensor(sb: Any, fault: Fault, ref: str) -> Outcome:
    case_id = cid(ref)
    op = DebituraCaseUnblockedSensor(task_id="gate", case_id=case_id, poke_interval=1, timeout=30)
    verdicts = []
    check = op.check
    op.check = lambda case: verdicts.append(check(case)) or verdicts[-1]  # type: ignore[method-assign]
    try:
        done = op.poke(context()).is_done
    except AirflowException as exc:  # right only for a case that is gone: a clear error, never "unblocked"
        return Outcome(_err(exc), case_id in sb.state.removed_cases, {"error": str(exc)[:300]})
    blocked = truly_blocked(sb, case_id)
    state = verdicts[-1].state.value
    if done and blocked:
        return Outcome("UNBLOCKED — WRONG", False, {"wrong_unblocked": 1})
    if done:
        return Outcome("unblocked", True)
    if blocked:
        return Outcome("blocked" if state == "blocked" else "unknown → blocked", True)
    # a blocked verdict on a free case is allowed only when the read failed
    return Outcome("unknown → blocked (cautious)", state == "unknown" and fault.count is None, {"cautious": 1})


async def _trigger(case_id: str, window: float) -> tuple[str, DebituraCaseUnblockedTrigger, Any]:
    trigger = DebituraCaseUnblockedTrigger(case_id, poll_interval=0.1, end_time=time.time() + 60)
    events = trigger.run()
    step = asyncio.ensure_future(events.__anext__())
    done, _ = await asyncio.wait({step}, timeout=window)
    if step in done:
        exc = step.exception()
        if exc is not None:
            return "crash", trigger, exc
        return "event", trigger, step.result().payload
    step.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await step
    await events.aclose()
    return "polling", trigger, None


def run_trigger(sb: Any, fault: Fault, ref: str) -> Outcome:
    case_id = cid(ref)
    expect_free = not truly_blocked(sb, case_id)
    slow = fault.rule is not None and fault.rule["kind"] in ("latency", "rateLimit")
    window = 4.0 if expect_free else (2.0 if slow else 1.0)
    kind, trigger, value = asyncio.run(_trigger(case_id, window))
    if kind == "crash":
        return Outcome(f"CRASH {_err(value)}", False, {"crash": 1, "error": repr(value)[:300]})
    blocked = truly_blocked(sb, case_id)
    if kind == "polling":
        text = f"still polling ({trigger.progress.checks} checks)"
        return Outcome(text, blocked or fault.count is None, {"cautious": int(not blocked)})
    status = value["status"]
    if status == "success":
        return Outcome("success" if not blocked else "SUCCESS — WRONG", not blocked, {"wrong_unblocked": int(blocked)})
    gone = case_id in sb.state.removed_cases and "404" in value.get("message", "")
    return Outcome(f"{status} event", gone, {"error": value.get("message", "")[:300]})


def run_list(sb: Any, fault: Fault) -> Outcome:
    try:
        result = DebituraListTasksOperator(task_id="list").execute(context())
    except AirflowException as exc:
        return Outcome(_err(exc), fault.count is None, {"error": str(exc)[:300]})
    want = {t["id"] for t in open_tasks(sb)}
    return _listing_outcome(sb, [t["id"] for t in result], want)


def run_reply(sb: Any, fault: Fault) -> Outcome:
    gone = set(sb.state.removed_cases)  # its messages cannot be posted: reported, never counted as lost
    targets = replyable_cases(sb) - gone
    refused = {t["caseId"] for t in open_tasks(sb) if t["caseId"]} - targets - gone

    def run() -> tuple[dict[str, Any], str | None]:
        """The report (from XCom when the task failed at the end) and the error, if it raised."""
        ctx = context()
        op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template="Noted: {{ task.id }}")
        try:
            return op.execute(ctx), None
        except AirflowException as exc:
            return ctx["ti"].xcom.get("return_value") or {}, _err(exc)

    report, error = run()
    first = (
        f"replied {len(report.get('replied', []))}, skipped {len(report.get('skipped', []))}, "
        f"needs human {len(report.get('needs_human', []))}"
    )
    if report.get("failed"):
        first += f", failed {len(report['failed'])}"
    if error:
        first = f"{first} + {error}" if report else error
    settle(sb)  # a post the client gave up on may still land: judge after it did
    applied = applied_faults(sb)
    set_faults(sb, [])
    rerun, _ = run()
    counts = {c: len(creditor_messages(sb, c)) for c in targets | refused}
    duplicates = sum(max(0, counts[c] - 1) for c in targets)
    lost = sum(1 for c in targets if counts[c] == 0)
    stray = sum(counts[c] for c in refused)
    # a gone case is reported as failed and fails the Airflow task (alerts, retries), after the others
    reported = not gone or (error is not None and {f.get("case_id") for f in report.get("failed", [])} >= gone)
    ok = duplicates == 0 and lost == 0 and stray == 0 and reported
    per_case = sorted(counts[c] for c in targets)
    text = f"{first}; re-run posted {len(rerun.get('replied', [])) and 1}; messages per case {per_case}"
    if not targets:
        text = f"{first}; nothing to answer"
    text += f"; {stray} posts elsewhere"
    return Outcome(text, ok, {"duplicates": duplicates, "lost": lost, "stray": stray, "faults_applied": applied})


def applied_faults(sb: Any) -> int:
    return sum(r.get("applied", 0) for r in sb.control("GET", "/faults").json()["rules"])


def run_component(sb: Any, component: str, fault: Fault) -> Outcome:
    if component == "hook":
        return run_hook(sb, fault)
    if component.startswith("sensor"):
        return run_sensor(sb, fault, BLOCKED if component.endswith("b") else FREE)
    if component.startswith("defer"):
        return run_trigger(sb, fault, BLOCKED if component.endswith("b") else FREE)
    if component == "list":
        return run_list(sb, fault)
    return run_reply(sb, fault)


# ------------------------------------------------------------------------------------------ the matrix


@pytest.mark.timeout(60)
@pytest.mark.parametrize("component", list(COMPONENTS))
@pytest.mark.parametrize("fault_name", list(FAULTS))
def test_cell(rel_sb, monkeypatch, fast_backoff, matrix_record, fault_name: str, component: str) -> None:
    fault = FAULTS[fault_name]
    cell = {"fault": fault_name, "fault_label": fault.label, "component": component}
    matrix_record["cells"][f"{fault_name}|{component}"] = cell
    matrix_record["faults"] = {k: v.label for k, v in FAULTS.items()}
    matrix_record["components"] = COMPONENTS
    if component in fault.na:
        cell |= {"status": "n/a", "text": "N/A", "reason": fault.na[component]}
        pytest.skip(f"N/A: {fault.na[component]}")

    if fault.quirk is not None:
        with quirky_world(fault) as server:
            use_conn(monkeypatch, server, timeout=TIMEOUT_S, max_attempts=3, retry_deadline=10)
            started = time.monotonic()
            outcome = run_component(server, component, fault)
            _record(cell, outcome, server, started)
        assert outcome.ok, cell
        return
    use_conn(monkeypatch, rel_sb, timeout=TIMEOUT_S, max_attempts=3, retry_deadline=10)
    load_world(rel_sb, world(fault.variant), chat_solve_delay=3600 if component == "reply" else None)
    install(rel_sb, fault, component)
    started = time.monotonic()
    try:
        outcome = run_component(rel_sb, component, fault)
    finally:
        settle(rel_sb)
    _record(cell, outcome, rel_sb, started)
    hit = fault.rule is None or cell["faults_applied"] > 0
    cell["status"] = "pass" if outcome.ok and hit else "FAIL"
    assert hit, f"the fault was never hit, so the cell proves nothing: {cell}"
    assert outcome.ok, cell


def _record(cell: dict[str, Any], outcome: Outcome, sb: Any, started: float) -> None:
    cell |= {
        "text": outcome.text,
        "seconds": round(time.monotonic() - started, 2),
        "faults_applied": applied_faults(sb),
        "requests": sb.control("GET", "/counters").json().get("total", 0),
        **outcome.detail,
    }
    cell["status"] = "pass" if outcome.ok else "FAIL"
