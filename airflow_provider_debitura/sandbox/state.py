"""The sandbox's in-memory store: thread-safe, pure Python, no Starlette.

Time-based behaviour (``solveAfterSeconds``, delayed chat solving, timed events) is evaluated
lazily under the lock on every request and control read, against a monotonic clock relative to
scenario load. That keeps it deterministic (no ticker thread racing the test) and lets tests
fast-forward with :meth:`SandboxState.advance_clock`.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import hmac
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_debitura.sandbox import scenarios as sc
from airflow_provider_debitura.sandbox.dto import ApiError, chat_dto, fmt_ts, page_data, task_dto
from airflow_provider_debitura.sandbox.faults import FaultRule, FaultSet
from airflow_provider_debitura.sandbox.models import CHAT_TASK_TYPES, TASK_STATUSES, Case, Chat, Task, User

ScenarioSpec = str | Path | dict[str, Any] | None

DEFAULT_CONFIG: dict[str, Any] = {"chatSolveDelaySeconds": 0.0, "rateLimitPerMinute": None, "retryAfterHeader": False}
REQUEST_LOG_LIMIT = 10_000


class ControlError(ValueError):
    """A control-plane request is invalid (400) or names something that doesn't exist (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class SandboxState:
    """Cases, tasks, chats, users, config, faults, request log and scheduled events."""

    def __init__(
        self,
        scenario: ScenarioSpec = "demo",
        *,
        api_key: str = "sandbox-key",
        chat_solve_delay_seconds: float | None = None,
        rate_limit_per_minute: int | None = None,
        retry_after_header: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self.api_key = api_key
        self._clock = clock
        self._offset = 0.0
        self._base_config = dict(DEFAULT_CONFIG)
        if chat_solve_delay_seconds is not None:
            self._base_config["chatSolveDelaySeconds"] = float(chat_solve_delay_seconds)
        self._base_config["rateLimitPerMinute"] = rate_limit_per_minute
        self._base_config["retryAfterHeader"] = bool(retry_after_header)
        self._cli_delay = chat_solve_delay_seconds is not None
        self._overrides: dict[str, Any] = {}
        self.faults = FaultSet()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._seq = 0
        self._counters: dict[str, int] = {}
        self._rate: dict[str, deque[float]] = {}
        self._ids = itertools.count(1)
        self._apply(self._compile(scenario))

    # ---------------------------------------------------------------- clock & scenario loading

    def now(self) -> float:
        """Sandbox monotonic time (real monotonic plus any :meth:`advance_clock` offset)."""
        return self._clock() + self._offset

    def _wall_at(self, mono: float) -> datetime:
        return self._loaded_wall + timedelta(seconds=mono - self._t0)

    def now_wall(self) -> datetime:
        return self._wall_at(self.now())

    def _compile(self, spec: ScenarioSpec) -> sc.World:
        raw = sc.resolve_scenario(spec)
        return sc.build_world(raw, now=datetime.now(timezone.utc))

    def _apply(self, world: sc.World) -> None:
        # Called with the lock held (or from __init__); the world is already fully validated.
        self.scenario_name = world.name
        self._t0 = self.now()
        self._loaded_wall = world.loaded_at
        self.naive = world.naive_timestamps
        self._scenario_delay = world.chat_solve_delay_seconds
        self.creditor = world.creditor
        self.users: list[User] = world.users
        self.cases: dict[str, Case] = dict(world.cases_by_id)
        self._cases_by_cref = world.cases_by_cref
        self._cases_by_ref = world.cases_by_ref
        self.tasks: dict[str, Task] = {t.id: t for t in world.tasks}
        self._ordered: list[Task] = sorted(world.tasks, key=lambda t: t.sort_key)
        self._order_keys = [t.sort_key for t in self._ordered]
        self.chats: dict[str, list[Chat]] = {cid: [] for cid in self.cases}
        for chat in world.chats:
            self.chats[chat.case_id].append(chat)
        self._timers: list[tuple[float, int, str, Any]] = []
        self._events: dict[str, dict[str, Any]] = {}
        for task_id, after in world.solve_after.items():
            self._schedule_solve(self.tasks[task_id], self._t0 + after)
        for spec in world.events:
            self._add_event(spec, base=self._t0)

    def load_scenario(self, spec: ScenarioSpec) -> None:
        """Replace the world atomically; on :class:`~.scenarios.ScenarioError` nothing changes."""
        world = self._compile(spec)
        with self._lock:
            self._apply(world)

    def reset(self, spec: ScenarioSpec = "empty") -> None:
        """Back to a clean slate: new scenario, no faults/overrides/log/counters, clock restarted."""
        world = self._compile(spec)
        with self._lock:
            self._offset = 0.0
            self._apply(world)
            self.faults.clear()
            self._overrides.clear()
            self._rate.clear()
            self._clear_requests()

    def advance_clock(self, seconds: float) -> None:
        """Fast-forward sandbox time (timed solves/events fire on the next evaluation)."""
        if seconds < 0:
            raise ControlError("seconds must be >= 0")
        with self._lock:
            self._offset += seconds
            self.tick()

    def elapsed(self) -> float:
        with self._lock:
            return self.now() - self._t0

    # ---------------------------------------------------------------- config

    def config(self) -> dict[str, Any]:
        with self._lock:
            cfg = dict(self._base_config)
            if self._scenario_delay is not None and not self._cli_delay:
                cfg["chatSolveDelaySeconds"] = self._scenario_delay
            cfg.update(self._overrides)
            return cfg

    def update_config(self, patch: Any) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise ControlError("config body must be an object")
        unknown = sorted(set(patch) - set(DEFAULT_CONFIG))
        if unknown:
            raise ControlError(f"unknown config key(s) {unknown}; allowed: {sorted(DEFAULT_CONFIG)}")
        clean: dict[str, Any] = {}
        for key, value in patch.items():
            if key == "chatSolveDelaySeconds":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ControlError("chatSolveDelaySeconds must be a number >= 0")
                clean[key] = float(value)
            elif key == "rateLimitPerMinute":
                bad = value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
                if bad:
                    raise ControlError("rateLimitPerMinute must be an integer >= 1 or null")
                clean[key] = value
            else:
                if not isinstance(value, bool):
                    raise ControlError("retryAfterHeader must be a boolean")
                clean[key] = value
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
                else:
                    self._fire_event(ref, self._wall_at(due))

    def _solve(self, task: Task, when: datetime) -> None:
        task.solve_due = None
        if task.status == "Open":
            task.status = "Solved"
            task.date_solved = when

    def _add_event(self, spec: dict[str, Any], *, base: float) -> dict[str, Any]:
        event_id = spec.get("id") or f"evt-{next(self._ids)}"
        if event_id in self._events:
            raise ControlError(f"duplicate event id {event_id!r}")
        event = {"id": event_id, "at": spec["at"], "action": spec["action"], "fired": False, "seen": 0, "error": None}
        self._events[event_id] = event
        if "afterSeconds" in spec["at"]:
            due = base + spec["at"]["afterSeconds"]
            heapq.heappush(self._timers, (due, next(self._ids), "event", event_id))
        return event

    def add_event(self, spec: Any) -> dict[str, Any]:
        with self._lock:
            self.tick()
            try:
                clean = sc.validate_event(
                    spec, "event", by_id=self.cases, by_cref=self._cases_by_cref, now=self.now_wall()
                )
            except sc.ScenarioError as exc:
                raise ControlError(str(exc)) from exc
            if isinstance(spec, dict) and spec.get("id") is not None:
                clean["id"] = str(spec["id"])
            return copy.deepcopy(self._add_event(clean, base=self.now()))

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            self.tick()
            return copy.deepcopy(list(self._events.values()))

    def _fire_event(self, event_id: str, when: datetime) -> None:
        event = self._events.get(event_id)
        if event is None or event["fired"]:
            return
        event["fired"] = True
        event["firedAt"] = fmt_ts(when)
        action = event["action"]
        try:
            if action["type"] == "solveTask":
                task = self.tasks.get(sc.normalize_guid(action["taskId"]))
                if task is None:
                    raise ControlError(f"no task {action['taskId']}")
                if action.get("afterSeconds"):
                    # e.g. "clear the blocker 5 s after the gate's first check", whatever the start-up time
                    self._schedule_solve(task, self.now() + float(action["afterSeconds"]))
                else:
                    self._solve(task, when)
            elif action["type"] == "addTask":
                self._insert_task(action["task"], when)
            else:
                self._partner_message(action, when)
        except (ControlError, sc.ScenarioError) as exc:
            event["error"] = str(exc)

    def after_request(self, method: str, path: str, template: str | None) -> None:
        """Count an answered API request towards ``afterRequests`` events and fire due ones."""
        with self._lock:
            for event in self._events.values():
                req = event["at"].get("afterRequests")
                if event["fired"] or req is None:
                    continue
                if req["method"] and req["method"] != method:
                    continue
                if req["path"] not in (path, template):
                    continue
                event["seen"] += 1
                if event["seen"] >= req["count"]:
                    self._fire_event(event["id"], self.now_wall())

    # ---------------------------------------------------------------- task mutation

    def _insert_task(self, spec: Any, when: datetime) -> Task:
        task, solve_after = sc.build_task(
            spec,
            "task",
            by_id=self.cases,
            by_cref=self._cases_by_cref,
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
        if task.case_id:
            self.cases[task.case_id].task_ids.append(task.id)
        if solve_after is not None:
            self._schedule_solve(task, self.now() + solve_after)
        return task

    def add_task(self, spec: Any) -> dict[str, Any]:
        with self._lock:
            self.tick()
            try:
                task = self._insert_task(spec, self.now_wall())
            except sc.ScenarioError as exc:
                raise ControlError(str(exc)) from exc
            return task_dto(task, self.naive)

    def solve_task(self, task_id: str, after_seconds: float | None = None) -> dict[str, Any]:
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
        chat_id = sc.stable_id("chat", next(self._ids), when.isoformat())
        chat = sc.build_partner_chat(case, spec.get("message"), "partnerMessage", when, chat_id)
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
        if cref in self._cases_by_cref:
            return self._cases_by_cref[cref]
        raise ControlError("needs an existing caseId or caseCreditorReference", status=404)

    def partner_message(self, case_id: str, message: Any, task: Any = None) -> dict[str, Any]:
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

    # ---------------------------------------------------------------- Customer API reads/writes

    def me(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.creditor)

    def users_page(self, page: int, page_size: int) -> dict[str, Any]:
        with self._lock:
            users = self.users
            chunk = users[(page - 1) * page_size : page * page_size]
            return {
                "page": page_data(len(users), page, page_size, len(chunk)),
                "users": [{"id": u.id, "name": u.name, "email": u.email} for u in chunk],
            }

    @staticmethod
    def _type_filter(types: Iterable[str]) -> set[str] | None:
        wanted = set(types)
        return wanted or None

    def tasks_page(self, status: str, types: Iterable[str], page: int, page_size: int) -> dict[str, Any]:
        wanted = self._type_filter(types)
        with self._lock:
            self.tick()
            start = (page - 1) * page_size
            stop = start + page_size
            total = 0
            chunk: list[dict[str, Any]] = []
            for task in self._ordered:
                if task.status != status or (wanted is not None and task.type not in wanted):
                    continue
                if start <= total < stop:
                    chunk.append(task_dto(task, self.naive))
                total += 1
            return {"page": page_data(total, page, page_size, len(chunk)), "tasks": chunk}

    def _case(self, case_id: str) -> Case:
        if not sc.is_guid(case_id):
            raise ApiError(400, "InvalidId", f"'{case_id}' is not a valid case ID (GUID expected).")
        case = self.cases.get(sc.normalize_guid(case_id))
        if case is None:
            raise ApiError(404, "NotFound", f"Case {case_id} was not found.")
        return case

    def case_tasks(self, case_id: str, status: str, types: Iterable[str]) -> list[dict[str, Any]]:
        wanted = self._type_filter(types)
        with self._lock:
            self.tick()
            case = self._case(case_id)
            tasks = sorted((self.tasks[t] for t in case.task_ids), key=lambda t: t.sort_key)
            return [
                task_dto(t, self.naive) for t in tasks if t.status == status and (wanted is None or t.type in wanted)
            ]

    def get_case(self, case_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._case(case_id).dto)

    def case_by_creditor_reference(self, ref: str) -> dict[str, Any]:
        with self._lock:
            case = self._cases_by_cref.get(ref)
            if case is None:
                raise ApiError(404, "NotFound", f"No case with creditor reference '{ref}' was found.")
            return copy.deepcopy(case.dto)

    def case_by_reference(self, ref: str) -> dict[str, Any]:
        with self._lock:
            case = self._cases_by_ref.get(ref.upper())
            if case is None:
                raise ApiError(404, "NotFound", f"No case with reference '{ref}' was found.")
            return copy.deepcopy(case.dto)

    def case_chats(self, case_id: str) -> list[dict[str, Any]]:
        with self._lock:
            case = self._case(case_id)
            return [chat_dto(c, self.naive) for c in self.chats[case.id]]

    def post_chat(self, case_id: str, body: Any) -> dict[str, Any]:
        """Store a creditor message and solve (or schedule solving) the case's chat tasks."""
        if not isinstance(body, dict):
            raise ApiError(400, "ValidationError", "The request body must be a JSON object.")
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            raise ApiError(400, "ValidationError", "The Message field is required.")
        if len(message) > 10000:
            raise ApiError(400, "ValidationError", "The field Message must be a string with a maximum length of 10000.")
        email, user_id = body.get("userEmail"), body.get("userId")
        with self._lock:
            self.tick()
            case = self._case(case_id)
            if email in (None, "") and user_id in (None, ""):
                raise ApiError(400, "MissingUserIdentifier", "Either userEmail or userId must be provided.")
            user = None
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

    # ---------------------------------------------------------------- rate limit & auth

    def check_auth(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.api_key.encode())

    def check_rate_limit(self, key: str) -> float | None:
        """Seconds to wait if ``key`` is over its requests-per-minute budget, else ``None``."""
        with self._lock:
            limit = self.config()["rateLimitPerMinute"]
            if not limit:
                return None
            now = self.now()
            window = self._rate.setdefault(key, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= limit:
                return max(0.001, window[0] + 60.0 - now)
            window.append(now)
            return None

    # ---------------------------------------------------------------- faults

    def set_faults(self, spec: Any) -> dict[str, Any]:
        seed, rules = FaultSet.parse(spec)
        with self._lock:
            self.faults.replace(seed, rules)
            return self.faults.to_dict()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def faults_view(self) -> dict[str, Any]:
        with self._lock:
            return self.faults.to_dict()

    def pick_fault(self, method: str, path: str) -> tuple[float, FaultRule | None]:
        with self._lock:
            return self.faults.pick(method, path)

    # ---------------------------------------------------------------- request log & counters

    def record_request(
        self, method: str, path: str, query: str, template: str | None, status: int | None, fault: str | None
    ) -> None:
        with self._lock:
            self._seq += 1
            self._log.append(
                {
                    "seq": self._seq,
                    "time": fmt_ts(datetime.now(timezone.utc)),
                    "method": method,
                    "path": path,
                    "query": query,
                    "status": status,
                    "fault": fault,
                }
            )
            key = f"{method} {template or path}"
            self._counters[key] = self._counters.get(key, 0) + 1
            self._counters["total"] = self._counters.get("total", 0) + 1

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._log]

    def counters(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counters)
            out.setdefault("total", 0)
            return out

    def _clear_requests(self) -> None:
        self._log.clear()
        self._counters.clear()
        self._seq = 0

    def clear_requests(self) -> None:
        with self._lock:
            self._clear_requests()

    # ---------------------------------------------------------------- inspection helpers

    @property
    def first_user_email(self) -> str | None:
        with self._lock:
            return self.users[0].email if self.users else None

    def task(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            self.tick()
            return self._task_view(self.tasks[sc.normalize_guid(task_id)])

    def list_tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        """All tasks in API order (optionally one status), including account-level ones."""
        if status is not None and status not in TASK_STATUSES:
            raise ValueError(f"status must be one of {TASK_STATUSES}")
        with self._lock:
            self.tick()
            return [self._task_view(t) for t in self._ordered if status is None or t.status == status]

    def case_id(self, creditor_reference: str) -> str:
        with self._lock:
            return self._cases_by_cref[creditor_reference].id

    def dump(self) -> dict[str, Any]:
        with self._lock:
            self.tick()
            return {
                "scenario": self.scenario_name,
                "elapsedSeconds": round(self.now() - self._t0, 3),
                "naiveTimestamps": self.naive,
                "creditor": dict(self.creditor),
                "users": [{"id": u.id, "name": u.name, "email": u.email, "active": u.active} for u in self.users],
                "cases": [copy.deepcopy(c.dto) for c in self.cases.values()],
                "tasks": [self._task_view(t) for t in self._ordered],
                "chats": {cid: [chat_dto(c, self.naive) for c in chats] for cid, chats in self.chats.items()},
                "events": copy.deepcopy(list(self._events.values())),
            }
