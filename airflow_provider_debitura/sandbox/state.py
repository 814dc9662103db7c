"""The sandbox's in-memory store: thread-safe, pure Python, no Starlette.

Time-based behaviour (``solveAfterSeconds``, delayed chat solving, timed events, rate-limit windows) is
evaluated lazily under the lock on every request and control read, against the sandbox clock
(:class:`~.clock.SandboxClock`, monotonic time relative to scenario load). That keeps it deterministic (no
ticker thread racing the test) and lets tests fast-forward with :meth:`SandboxState.advance_clock`, freeze
or speed up the clock with :meth:`SandboxState.set_clock`.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import hmac
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_debitura.sandbox import scenarios as sc
from airflow_provider_debitura.sandbox.cases import CaseQuery, cases_page
from airflow_provider_debitura.sandbox.clock import ClockError, SandboxClock
from airflow_provider_debitura.sandbox.config import DEFAULT_CONFIG, check_config_patch
from airflow_provider_debitura.sandbox.dto import ApiError, chat_dto, fmt_ts, page_data, task_dto
from airflow_provider_debitura.sandbox.events import Event, EventBook
from airflow_provider_debitura.sandbox.faults import FaultRule, FaultSet
from airflow_provider_debitura.sandbox.ratelimit import Limits, RateLimiter, Refusal
from airflow_provider_debitura.sandbox.records import CHAT_TASK_TYPES, TASK_STATUSES, Case, Chat, Task, User
from airflow_provider_debitura.sandbox.requestlog import RequestLog
from airflow_provider_debitura.sandbox.scenario_models import (
    AddTaskAction,
    EventSpec,
    PartnerMessageAction,
    SolveOpenTaskAction,
    SolveTaskAction,
    TaskSpec,
    parse,
)
from airflow_provider_debitura.sandbox.world import World

ScenarioSpec = str | Path | dict[str, Any] | None
REQUEST_LOG_LIMIT = 10_000


class ControlError(ValueError):
    """A control-plane request is invalid (400) or names something that doesn't exist (404).

    :param message: what is wrong and how to fix it.
    :param status: the HTTP status to answer.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class CheckedTask:
    """A task with a ``solveAfterChecked`` rule: its current incarnation and when a gate last checked it.

    :param spec: the task's spec (to raise a fresh copy).
    :param task_id: the current incarnation's id.
    :param clear_seen: monotonic time of the first read of open tasks that saw the current incarnation solved.
    :param generation: how many fresh copies were raised.
    """

    spec: TaskSpec
    task_id: str
    clear_seen: float | None = None
    generation: int = 0


class SandboxState:
    """Cases, tasks, chats, users, config, faults, request log and scheduled events.

    :param scenario: a bundled name, ``large:N``, a scenario dict, or a file path.
    :param api_key: the key clients must present (non-empty).
    :param chat_solve_delay_seconds: delay before a creditor message solves tasks (wins over the scenario's).
    :param rate_limit_per_minute: requests per sliding minute per key; None: off (hour and day windows:
        :meth:`set_default_config` or ``PUT /_sandbox/config``).
    :param retry_after_header: send ``Retry-After`` with 429s.
    :param encoded_slash: ``"decode"`` or ``"keep"`` (see ``docs/sandbox.md``).
    :param clock: the real monotonic clock under the sandbox clock (tests may pass a fake).
    """

    def __init__(
        self,
        scenario: ScenarioSpec = "demo",
        *,
        api_key: str = "sandbox-key",
        chat_solve_delay_seconds: float | None = None,
        rate_limit_per_minute: int | None = None,
        retry_after_header: bool = False,
        encoded_slash: str = "decode",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string: clients could never authenticate with an empty key")
        self._lock = threading.RLock()
        self.api_key = api_key
        self.clock = SandboxClock(real=clock)
        self._base_config = {**DEFAULT_CONFIG, "rateLimitPerMinute": rate_limit_per_minute}
        self._base_config |= check_config_patch({"retryAfterHeader": retry_after_header, "encodedSlash": encoded_slash})
        if chat_solve_delay_seconds is not None:
            self._base_config["chatSolveDelaySeconds"] = float(chat_solve_delay_seconds)
        self._cli_delay = chat_solve_delay_seconds is not None
        self._overrides: dict[str, Any] = {}
        self.faults = FaultSet()
        self._log = RequestLog(REQUEST_LOG_LIMIT)
        self._rate = RateLimiter()
        self._ids = itertools.count(1)
        self._apply(self._compile(scenario, allow_files=True))

    # ---------------------------------------------------------------- clock & scenario loading

    def now(self) -> float:
        """Sandbox monotonic time (see :class:`~.clock.SandboxClock`)."""
        return self.clock.monotonic()

    def _wall_at(self, mono: float) -> datetime:
        return self.clock.wall_at(mono)

    def now_wall(self) -> datetime:
        """Sandbox wall-clock time (UTC)."""
        return self._wall_at(self.now())

    def _compile(self, spec: ScenarioSpec, *, allow_files: bool, real_time: bool = False) -> World:
        raw = sc.resolve_scenario(spec, allow_files=allow_files)
        return sc.build_world(raw, now=datetime.now(timezone.utc) if real_time else self.clock.wall_datetime())

    def _apply(self, world: World) -> None:
        # Called with the lock held (or from __init__); the world is already fully validated.
        self.scenario_name = world.name
        self._t0 = self.now()
        self.naive = world.naive_timestamps
        self._scenario_delay = world.chat_solve_delay_seconds
        self.creditor = world.creditor
        self.users: list[User] = world.users
        self._cases = world.cases
        self.cases: dict[str, Case] = world.cases.by_id
        self.removed_cases: dict[str, Case] = {}
        self.tasks: dict[str, Task] = {t.id: t for t in world.tasks}
        self._ordered: list[Task] = sorted(world.tasks, key=lambda t: t.sort_key)
        self._order_keys = [t.sort_key for t in self._ordered]
        self._listings: dict[tuple[str, frozenset[str] | None], list[Task]] = {}
        self.chats: dict[str, list[Chat]] = {cid: [] for cid in self.cases}
        for chat in world.chats:
            self.chats[chat.case_id].append(chat)
        self._timers: list[tuple[float, int, str, Any]] = []
        self._events = EventBook()
        self._checked = [CheckedTask(spec, task_id) for task_id, spec in world.checked]
        for task_id, after in world.solve_after.items():
            self._schedule_solve(self.tasks[task_id], self._t0 + after)
        for spec in world.events:
            self._add_event(spec, base=self._t0)

    def load_scenario(self, spec: ScenarioSpec, *, allow_files: bool = True) -> None:
        """Replace the world atomically; on :class:`~.scenarios.ScenarioError` nothing changes.

        :param spec: a bundled name, ``large:N``, a scenario dict, or (``allow_files``) a file path.
        :param allow_files: False for the control plane, which never reads host files.
        """
        world = self._compile(spec, allow_files=allow_files)
        with self._lock:
            self._apply(world)

    def reset(self, spec: ScenarioSpec = "empty", *, allow_files: bool = True) -> None:
        """Back to a clean slate: new scenario, no faults/overrides/log/counters, clock restarted.

        :param spec: as for :meth:`load_scenario`.
        :param allow_files: as for :meth:`load_scenario`.
        """
        world = self._compile(spec, allow_files=allow_files, real_time=True)  # the clock restarts at real time
        with self._lock:
            self.clock.reset()
            self._apply(world)
            self.faults.clear()
            self._overrides.clear()
            self._rate.clear()
            self._log.clear()

    def advance_clock(self, seconds: float) -> None:
        """Fast-forward sandbox time (timed solves/events fire on the next evaluation).

        :param seconds: how far, >= 0.
        """
        with self._lock:
            try:
                self.clock.advance(seconds)
            except ClockError as exc:
                raise ControlError(str(exc)) from None
            self.tick()

    def set_clock(self, speed: float | None = None, wall_time: datetime | None = None) -> dict[str, Any]:
        """Set the clock's speed (0 freezes it) and/or move it forward to a wall time; the clock's view.

        :param speed: the speed factor (1: real time; 86400/N: a day in N seconds), None: unchanged.
        :param wall_time: an aware datetime not before the sandbox's now, None: unchanged.
        """
        with self._lock:
            try:
                self.clock.set(speed, wall_time)
            except ClockError as exc:
                raise ControlError(str(exc)) from None
            self.tick()
            return self.clock_view()

    def clock_view(self) -> dict[str, Any]:
        """``GET /_sandbox/clock``: ``wallTime``, ``epochSeconds``, ``speed``, ``frozen``, ``elapsedSeconds``."""
        with self._lock:
            return {**self.clock.view(), "elapsedSeconds": round(self.now() - self._t0, 3)}

    def elapsed(self) -> float:
        """Seconds since the scenario loaded (sandbox time)."""
        with self._lock:
            return self.now() - self._t0

    # ---------------------------------------------------------------- config

    def config(self) -> dict[str, Any]:
        """The effective settings: PUT override > CLI/constructor > scenario > default."""
        with self._lock:
            cfg = dict(self._base_config)
            if self._scenario_delay is not None and not self._cli_delay:
                cfg["chatSolveDelaySeconds"] = self._scenario_delay
            cfg.update(self._overrides)
            return cfg

    def update_config(self, patch: Any) -> dict[str, Any]:
        """Apply a partial settings update (validated first).

        :param patch: the ``PUT /_sandbox/config`` body.
        """
        clean = _clean_config(patch)
        with self._lock:
            self._overrides.update(clean)
            return self.config()

    # ---------------------------------------------------------------- timers & events

    def _schedule_solve(self, task: Task, due: float) -> None:
        if task.status != "Open":
            return
        if task.solve_due is not None and task.solve_due <= due:
            return
        task.solve_due = due
        heapq.heappush(self._timers, (due, next(self._ids), "solve", task.id))

    def tick(self) -> None:
        """Fire every timer that is due; cheap when nothing is (heap peek)."""
        with self._lock:
            now = self.now()
            while self._timers and self._timers[0][0] <= now:
                due, _, kind, ref = heapq.heappop(self._timers)
                if kind == "solve":
                    task = self.tasks.get(ref)
                    if task is not None and task.solve_due == due:
                        self._solve(task, self._wall_at(due))
                elif kind == "purge":
                    self._purge_case_tasks(ref)
                else:
                    self._fire_event(ref, self._wall_at(due))

    def _solve(self, task: Task, when: datetime) -> None:
        task.solve_due = None
        if task.status == "Open":
            task.status = "Solved"
            task.date_solved = when
            self._listings.clear()

    def _add_event(self, spec: EventSpec, *, base: float) -> Event:
        event_id = spec.id or f"evt-{next(self._ids)}"
        try:
            event = self._events.add(spec, event_id)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        if spec.at.afterSeconds is not None:
            heapq.heappush(self._timers, (base + spec.at.afterSeconds, next(self._ids), "event", event_id))
        return event

    def add_event(self, spec: Any) -> dict[str, Any]:
        """Validate and schedule an event (``POST /_sandbox/events``).

        :param spec: the event JSON.
        """
        with self._lock:
            self.tick()
            try:
                clean = sc.check_event(spec, "event", cases=self._cases, now=self.now_wall())
            except sc.ScenarioError as exc:
                raise ControlError(str(exc)) from exc
            return self._add_event(clean, base=self.now()).to_dict()

    def events(self) -> list[dict[str, Any]]:
        """Every event with its state."""
        with self._lock:
            self.tick()
            return self._events.to_list()

    def _fire_event(self, event_id: str, when: datetime) -> None:
        event = self._events.get(event_id)
        if event is None or event.done:
            return
        event.fired_count += 1
        event.fired_at = fmt_ts(when)
        try:
            self._run_action(event, when)
        except (ControlError, sc.ScenarioError) as exc:
            event.error = str(exc)

    def _run_action(self, event: Event, when: datetime) -> None:
        action = event.spec.action
        if isinstance(action, SolveTaskAction):
            task = self.tasks.get(sc.normalize_guid(action.taskId))
            if task is None:
                raise ControlError(f"no task {action.taskId}")
            if action.afterSeconds:
                # e.g. "clear the blocker 5 s after the gate's first check", whatever the start-up time
                self._schedule_solve(task, self.now() + float(action.afterSeconds))
            else:
                self._solve(task, when)
        elif isinstance(action, SolveOpenTaskAction):
            self._solve(self._pick_open(action, event), when)
        elif isinstance(action, AddTaskAction):
            self._insert_task(action.task, when)
        elif isinstance(action, PartnerMessageAction):
            self._partner_message(action.model_dump(), when)

    def _pick_open(self, action: SolveOpenTaskAction, event: Event) -> Task:
        wanted = set(action.types) if action.types else None
        candidates = [t for t in self._ordered if t.status == "Open" and (wanted is None or t.type in wanted)]
        if not candidates:
            raise ControlError("no open task to solve")
        if action.pick == "oldest":
            return candidates[0]
        if action.pick == "newest":
            return candidates[-1]
        return event.rng.choice(candidates)

    def after_request(self, method: str, path: str, template: str | None) -> None:
        """Count an answered API request towards request-driven events and fire due ones.

        :param method: HTTP method.
        :param path: request path.
        :param template: the route template it matched, if any.
        """
        with self._lock:
            for event in self._events.due_after(method, path, template):
                self._fire_event(event.id, self.now_wall())

    # ---------------------------------------------------------------- gate checks (solveAfterChecked)

    def _on_check(self, types: set[str] | None, case_id: str | None, *, targeted: bool = True) -> None:
        """A read of open tasks. A targeted one (a type-filtered ``GET /tasks`` or a case's own listing) is a
        check; an untargeted full listing (a shared poll's) only notes that a solved task was seen clear, so a
        gate that opened on it still starts the re-arm delay."""
        now = self.now()
        for checked in self._checked:
            task = self.tasks.get(checked.task_id)
            if task is None:
                continue
            if not targeted:
                if task.status != "Open" and checked.clear_seen is None:
                    checked.clear_seen = now
                continue
            if not _asks_for(task, types, case_id):
                continue
            rule = checked.spec.solveAfterChecked
            if rule is None:  # pragma: no cover - only tasks with a rule are registered
                continue
            if task.status != "Open":
                if checked.clear_seen is None:
                    checked.clear_seen = now  # this check sees it solved: its gate opens, whatever the re-arm delay
                elif rule.rearmAfterSeconds is not None and now - checked.clear_seen >= rule.rearmAfterSeconds:
                    task = self._rearm(checked)
            if task.status == "Open" and task.solve_due is None:
                self._schedule_solve(task, now + rule.seconds)

    def _rearm(self, checked: CheckedTask) -> Task:
        checked.generation += 1
        fresh_id = sc.stable_id(
            "task", self.scenario_name, "rearm", checked.spec.id or checked.task_id, checked.generation
        )
        fields = ("dateCreated", "minutesAgo", "dateSolved", "solveAfterSeconds")
        spec = checked.spec.model_copy(update={"id": fresh_id, "status": "Open", **dict.fromkeys(fields)})
        task = self._insert_task(spec, self.now_wall())
        checked.task_id, checked.clear_seen = task.id, None
        return task

    # ---------------------------------------------------------------- task mutation

    def _insert_task(self, spec: Any, when: datetime) -> Task:
        task, solve_after = sc.build_task(
            spec,
            "task",
            cases=self._cases,
            default_id=sc.stable_id("task", "runtime", next(self._ids), self.scenario_name, when.isoformat()),
            default_created=when,
            now=when,
        )
        if task.id in self.tasks:
            raise ControlError(f"task id {task.id} already exists", status=409)
        self.tasks[task.id] = task
        pos = bisect.bisect_right(self._order_keys, task.sort_key)
        self._order_keys.insert(pos, task.sort_key)
        self._ordered.insert(pos, task)
        self._listings.clear()
        if task.case_id:
            self.cases[task.case_id].task_ids.append(task.id)
        if solve_after is not None:
            self._schedule_solve(task, self.now() + solve_after)
        return task

    def add_task(self, spec: Any) -> dict[str, Any]:
        """Add a task (``POST /_sandbox/tasks``): the scenario's task format, ``wire`` included.

        :param spec: the task JSON.
        """
        with self._lock:
            self.tick()
            try:
                parsed = parse(TaskSpec, spec, "task")
                task = self._insert_task(parsed, self.now_wall())
            except sc.ScenarioError as exc:
                raise ControlError(str(exc)) from exc
            if parsed.solveAfterChecked is not None:
                self._checked.append(CheckedTask(parsed, task.id))
            return task_dto(task, self.naive)

    def solve_task(self, task_id: str, after_seconds: float | None = None) -> dict[str, Any]:
        """Solve a task now or ``after_seconds`` later (``POST /_sandbox/tasks/{id}/solve``).

        :param task_id: the task's GUID.
        :param after_seconds: delay; None or 0 solves now.
        """
        if not sc.is_guid(task_id):
            raise ControlError(f"task id {task_id!r} is not a GUID")
        with self._lock:
            self.tick()
            task = self.tasks.get(sc.normalize_guid(task_id))
            if task is None:
                raise ControlError(f"no task {task_id}", status=404)
            if after_seconds:
                self._schedule_solve(task, self.now() + after_seconds)
            else:
                self._solve(task, self.now_wall())
            return self._task_view(task)

    def _task_view(self, task: Task) -> dict[str, Any]:
        dto = task_dto(task, self.naive)
        if task.solve_due is not None:
            dto["_solvesInSeconds"] = round(max(0.0, task.solve_due - self.now()), 3)
        return dto

    def _partner_message(self, spec: dict[str, Any], when: datetime) -> tuple[Chat, Task | None]:
        case = self._find_case_for_control(spec)
        message = spec.get("message")
        if not isinstance(message, str) or message == "":
            raise ControlError("partnerMessage.message: must be a non-empty string")
        chat = sc.build_partner_chat(case, message, when, sc.stable_id("chat", next(self._ids), when.isoformat()))
        task = None
        if spec.get("task"):
            task = self._insert_task({"type": spec["task"], "caseId": case.id}, when)
        self.chats[case.id].append(chat)
        return chat, task

    def _find_case_for_control(self, spec: dict[str, Any]) -> Case:
        cid = spec.get("caseId")
        if cid is not None:
            if not sc.is_guid(cid) or sc.normalize_guid(cid) not in self.cases:
                raise ControlError(f"no case {cid}", status=404)
            return self.cases[sc.normalize_guid(cid)]
        cref = spec.get("caseCreditorReference")
        if cref in self._cases.by_cref:
            return self._cases.by_cref[cref]
        raise ControlError("needs an existing caseId or caseCreditorReference", status=404)

    def partner_message(self, case_id: str, message: Any, task: Any = None) -> dict[str, Any]:
        """A partner chat message on a case, optionally with a new case-level task.

        :param case_id: the case's GUID.
        :param message: the text.
        :param task: a task type name to raise with it, or None.
        """
        if task is not None and not (isinstance(task, str) and sc.TYPE_NAME_RE.match(task)):
            raise ControlError("task must be a task type name (letters only)")
        with self._lock:
            self.tick()
            try:
                chat, new_task = self._partner_message(
                    {"caseId": case_id, "message": message, "task": task}, self.now_wall()
                )
            except sc.ScenarioError as exc:
                raise ControlError(str(exc)) from exc
            return {
                "chat": chat_dto(chat, self.naive),
                "task": task_dto(new_task, self.naive) if new_task else None,
            }

    # ---------------------------------------------------------------- cases that disappear

    def remove_case(self, case_id: str, how: str, keep_listing_seconds: float | None = None) -> dict[str, Any]:
        """Delete or merge a case away: every case endpoint answers 404 for it from now on, while
        ``GET /tasks`` keeps listing its tasks (for ``keep_listing_seconds``, or until solved).

        :param case_id: the case's GUID.
        :param how: ``"deleted"`` or ``"merged"``.
        :param keep_listing_seconds: after this many seconds its tasks leave every listing; None: never.
        """
        if not sc.is_guid(case_id):
            raise ControlError(f"case id {case_id!r} is not a GUID")
        with self._lock:
            self.tick()
            case = self.cases.get(sc.normalize_guid(case_id))
            if case is None:
                raise ControlError(f"no case {case_id}", status=404)
            case.removed = how
            del self.cases[case.id]
            self._cases.by_cref.pop(case.creditor_reference, None)
            self._cases.by_ref.pop(case.reference, None)
            self.removed_cases[case.id] = case
            if keep_listing_seconds is not None:
                heapq.heappush(self._timers, (self.now() + keep_listing_seconds, next(self._ids), "purge", case.id))
            return {"caseId": case.id, "removed": how, "tasksStillListed": len(case.task_ids)}

    def _purge_case_tasks(self, case_id: str) -> None:
        case = self.removed_cases.get(case_id)
        if case is None:
            return
        gone = {tid for tid in case.task_ids if tid in self.tasks}
        for tid in gone:
            del self.tasks[tid]
        self._ordered = [t for t in self._ordered if t.id not in gone]
        self._order_keys = [t.sort_key for t in self._ordered]
        self._listings.clear()

    # ---------------------------------------------------------------- Customer API reads/writes

    def me(self) -> dict[str, Any]:
        """``GET /me``."""
        with self._lock:
            return dict(self.creditor)

    def users_page(self, page: int, page_size: int) -> dict[str, Any]:
        """``GET /users``.

        :param page: 1-based page.
        :param page_size: page size.
        """
        with self._lock:
            users = self.users
            chunk = users[(page - 1) * page_size : page * page_size]
            return {
                "page": page_data(len(users), page, page_size, len(chunk)),
                "users": [{"id": u.id, "name": u.name, "email": u.email} for u in chunk],
            }

    def tasks_page(self, status: str, types: Iterable[str], page: int, page_size: int) -> dict[str, Any]:
        """``GET /tasks``: account-wide, ordered by ``dateCreated`` then id.

        :param status: "Open" or "Solved".
        :param types: type filter (empty: all).
        :param page: 1-based page.
        :param page_size: page size.
        """
        wanted = set(types) or None
        with self._lock:
            self.tick()
            if status == "Open":
                self._on_check(wanted, None, targeted=wanted is not None)
            selected = self._listing(status, wanted)
            chunk = [task_dto(t, self.naive) for t in selected[(page - 1) * page_size : page * page_size]]
            total = len(selected)
            return {"page": page_data(total, page, page_size, len(chunk)), "tasks": chunk}

    def _listing(self, status: str, wanted: set[str] | None) -> list[Task]:
        """The tasks of one status (and types) in listing order, kept until the next change to any task,
        so paging through 20,000 tasks scans them once, not once per page."""
        key = (status, frozenset(wanted) if wanted is not None else None)
        selected = self._listings.get(key)
        if selected is None:
            if len(self._listings) >= 64:  # many distinct type filters and no change in between
                self._listings.clear()
            selected = [t for t in self._ordered if t.status == status and (wanted is None or t.type in wanted)]
            self._listings[key] = selected
        return selected

    def _case(self, case_id: str) -> Case:
        if not sc.is_guid(case_id):
            raise ApiError(400, "InvalidId", f"'{case_id}' is not a valid case ID (GUID expected).")
        case = self.cases.get(sc.normalize_guid(case_id))
        if case is None:
            raise ApiError(404, "NotFound", f"Case {case_id} was not found.")
        return case

    def case_tasks(self, case_id: str, status: str, types: Iterable[str]) -> list[dict[str, Any]]:
        """``GET /cases/{id}/tasks``: the case's own tasks, never account-level or lead ones.

        :param case_id: the case's GUID.
        :param status: "Open" or "Solved".
        :param types: type filter (empty: all).
        """
        wanted = set(types) or None
        with self._lock:
            self.tick()
            case = self._case(case_id)
            if status == "Open":
                self._on_check(wanted, case.id)
            tasks = sorted((self.tasks[t] for t in case.task_ids), key=lambda t: t.sort_key)
            return [
                task_dto(t, self.naive) for t in tasks if t.status == status and (wanted is None or t.type in wanted)
            ]

    def get_case(self, case_id: str) -> dict[str, Any]:
        """``GET /cases/{id}``.

        :param case_id: the case's GUID.
        """
        with self._lock:
            return copy.deepcopy(self._case(case_id).dto)

    def cases_page(self, query: CaseQuery) -> dict[str, Any]:
        """``GET /cases``: the live (not deleted or merged) cases, filtered, sorted and paged.

        :param query: the parsed query.
        """
        with self._lock:
            return cases_page(list(self.cases.values()), query)

    def case_by_creditor_reference(self, ref: str) -> dict[str, Any]:
        """``GET /cases/by-creditor-reference/{creditorReference}`` (exact match).

        :param ref: the decoded reference.
        """
        with self._lock:
            case = self._cases.by_cref.get(ref)
            if case is None:
                raise ApiError(404, "NotFound", f"No case with creditor reference '{ref}' was found.")
            return copy.deepcopy(case.dto)

    def case_by_reference(self, ref: str) -> dict[str, Any]:
        """``GET /cases/case-reference/{caseReference}`` (case-insensitive).

        :param ref: the decoded reference.
        """
        with self._lock:
            case = self._cases.by_ref.get(ref.upper())
            if case is None:
                raise ApiError(404, "NotFound", f"No case with reference '{ref}' was found.")
            return copy.deepcopy(case.dto)

    def case_chats(self, case_id: str) -> list[dict[str, Any]]:
        """``GET /cases/{id}/chats``.

        :param case_id: the case's GUID.
        """
        with self._lock:
            case = self._case(case_id)
            return [chat_dto(c, self.naive) for c in self.chats[case.id]]

    def post_chat(self, case_id: str, body: Any) -> dict[str, Any]:
        """``POST /cases/{id}/chats``: store a creditor message and solve (or schedule solving) the case's
        chat-driven tasks.

        :param case_id: the case's GUID.
        :param body: the SendChatRequest JSON.
        """
        message = _chat_message(body)
        with self._lock:
            self.tick()
            case = self._case(case_id)
            user = self._chat_user(body)
            when = self.now_wall()
            chat = Chat(
                id=sc.stable_id("chat", "api", next(self._ids), when.isoformat()),
                case_id=case.id,
                date_created=when,
                role=1,
                message=message,
                user=sc.user_relation(user),
                is_seen=True,
            )
            self.chats[case.id].append(chat)
            delay = float(self.config()["chatSolveDelaySeconds"])
            for tid in case.task_ids:
                task = self.tasks[tid]
                if task.status == "Open" and task.type in CHAT_TASK_TYPES:
                    if delay > 0:
                        self._schedule_solve(task, self.now() + delay)
                    else:
                        self._solve(task, when)
            return chat_dto(chat, self.naive)

    def _chat_user(self, body: dict[str, Any]) -> User:
        email, user_id = body.get("userEmail"), body.get("userId")
        if email in (None, "") and user_id in (None, ""):
            raise ApiError(400, "MissingUserIdentifier", "Either userEmail or userId must be provided.")
        if email not in (None, ""):
            if not isinstance(email, str):
                raise ApiError(400, "ValidationError", "userEmail must be a string.")
            user = next((u for u in self.users if u.email.lower() == email.lower()), None)
        else:
            if not sc.is_guid(user_id):
                raise ApiError(400, "ValidationError", "userId must be a GUID.")
            user = next((u for u in self.users if u.id == sc.normalize_guid(user_id)), None)
        if user is None or not user.active:
            who = email if email not in (None, "") else user_id
            raise ApiError(400, "InvalidUser", f"'{who}' is not an active user of this account.")
        return user

    # ---------------------------------------------------------------- rate limit & auth

    def check_auth(self, presented: str | None) -> bool:
        """Whether the presented key is the sandbox's (constant-time compare).

        :param presented: the key sent, or None.
        """
        return presented is not None and hmac.compare_digest(presented.encode(), self.api_key.encode())

    def check_rate_limit(self, key: str | None) -> Refusal | None:
        """Count one request for ``key``, or say which window refuses it and for how long.

        :param key: the presented key, None when none was sent (one shared bucket).
        """
        with self._lock:
            return self._rate.check(key, Limits.from_config(self.config()), self.clock.wall())

    def rate_report(self) -> dict[str, Any]:
        """``GET /_sandbox/rate-limits``: the windows, the clock, and each key's spend (see ``ratelimit.py``)."""
        with self._lock:
            report = self._rate.report(Limits.from_config(self.config()), self.clock.wall(), self.api_key)
            return {"clock": self.clock_view(), **report}

    def clear_rate(self) -> None:
        """Forget every key's rate-limit windows, peaks and refusals (the settings stay)."""
        with self._lock:
            self._rate.clear()

    def set_default_config(self, patch: Any) -> dict[str, Any]:
        """Change settings as the constructor/command line does: :meth:`reset` keeps them, PUT overrides win.

        :param patch: a partial settings object, as for ``PUT /_sandbox/config``.
        """
        clean = _clean_config(patch)
        with self._lock:
            self._cli_delay = self._cli_delay or "chatSolveDelaySeconds" in clean
            self._base_config.update(clean)
            return self.config()

    # ---------------------------------------------------------------- faults

    def set_faults(self, spec: Any) -> dict[str, Any]:
        """Replace every fault rule (``PUT /_sandbox/faults``).

        :param spec: ``{"seed": int?, "rules": [...]}``.
        """
        seed, rules = FaultSet.parse(spec)
        with self._lock:
            self.faults.replace(seed, rules)
            return self.faults.to_dict()

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self.faults.clear()

    def faults_view(self) -> dict[str, Any]:
        """The fault rules with their counts."""
        with self._lock:
            return self.faults.to_dict()

    def pick_fault(self, method: str, path: str) -> tuple[float, FaultRule | None]:
        """The latency to add and the fault to apply to one API request.

        :param method: HTTP method.
        :param path: request path.
        """
        with self._lock:
            return self.faults.pick(method, path)

    # ---------------------------------------------------------------- request log & counters

    def record_request(
        self, method: str, path: str, query: str, template: str | None, status: int | None, fault: str | None
    ) -> None:
        """Log and count one API request (see :meth:`.requestlog.RequestLog.record`).

        :param method: HTTP method.
        :param path: request path.
        :param query: raw query string.
        :param template: route template, if any.
        :param status: status answered (None: dropped).
        :param fault: fault kind applied, if any.
        """
        with self._lock:
            self._log.record(method, path, query, template, status, fault, self.now_wall())

    def requests(self) -> list[dict[str, Any]]:
        """The request log."""
        with self._lock:
            return self._log.entries()

    def counters(self) -> dict[str, int]:
        """Requests per ``"<method> <route template>"`` and ``total``."""
        with self._lock:
            return self._log.counters()

    def clear_requests(self) -> None:
        """Empty the request log and the counters."""
        with self._lock:
            self._log.clear()

    # ---------------------------------------------------------------- inspection helpers

    @property
    def first_user_email(self) -> str | None:
        """The first scenario user's email (what ``conn_json()`` puts in ``user_email``)."""
        with self._lock:
            return self.users[0].email if self.users else None

    def task(self, task_id: str) -> dict[str, Any]:
        """One task's TaskDto (any status), with ``_solvesInSeconds`` when a solve is scheduled.

        :param task_id: the task's GUID.
        """
        with self._lock:
            self.tick()
            return self._task_view(self.tasks[sc.normalize_guid(task_id)])

    def list_tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        """All tasks in API order (optionally one status), including account-level ones.

        :param status: "Open", "Solved" or None for both.
        """
        if status is not None and status not in TASK_STATUSES:
            raise ValueError(f"status must be one of {TASK_STATUSES}")
        with self._lock:
            self.tick()
            return [self._task_view(t) for t in self._ordered if status is None or t.status == status]

    def case_id(self, creditor_reference: str) -> str:
        """The id of the (live) case with this creditor reference.

        :param creditor_reference: the reference.
        """
        with self._lock:
            return self._cases.by_cref[creditor_reference].id

    def dump(self) -> dict[str, Any]:
        """Everything, for ``GET /_sandbox/state``."""
        with self._lock:
            self.tick()
            return {
                "scenario": self.scenario_name,
                "elapsedSeconds": round(self.now() - self._t0, 3),
                "naiveTimestamps": self.naive,
                "creditor": dict(self.creditor),
                "users": [{"id": u.id, "name": u.name, "email": u.email, "active": u.active} for u in self.users],
                "cases": [copy.deepcopy(c.dto) for c in self.cases.values()],
                "removedCases": [{"id": c.id, "removed": c.removed} for c in self.removed_cases.values()],
                "tasks": [self._task_view(t) for t in self._ordered],
                "chats": {cid: [chat_dto(c, self.naive) for c in chats] for cid, chats in self.chats.items()},
                "events": self._events.to_list(),
            }


def _clean_config(patch: Any) -> dict[str, Any]:
    """The validated keys of a settings patch (a :class:`ControlError` naming the field otherwise)."""
    try:
        clean = check_config_patch(patch)
    except sc.ScenarioError as exc:
        raise ControlError(str(exc)) from exc
    if "chatSolveDelaySeconds" in clean:
        clean["chatSolveDelaySeconds"] = float(clean["chatSolveDelaySeconds"])
    return clean


def _asks_for(task: Task, types: set[str] | None, case_id: str | None) -> bool:
    """Whether a targeted read asks for ``task``: its case's listing (any or its type), or its type by name."""
    if case_id is not None:
        return task.case_id == case_id and (types is None or task.type in types)
    return types is not None and task.type in types


def _chat_message(body: Any) -> str:
    if not isinstance(body, dict):
        raise ApiError(400, "ValidationError", "The request body must be a JSON object.")
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ApiError(400, "ValidationError", "The Message field is required.")
    if len(message) > 10000:
        raise ApiError(400, "ValidationError", "The field Message must be a string with a maximum length of 10000.")
    return message
