"""Scenario loading, validation and generation.

A scenario is plain JSON (see docs/sandbox.md). It is resolved from a bundled name, a
``large:N`` spec, a file path or a dict, then compiled into a :class:`World` of records. Compiling
validates everything first, so a bad scenario never leaves the store half-loaded.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from airflow_provider_debitura.sandbox.dto import fmt_ts
from airflow_provider_debitura.sandbox.models import (
    ACCOUNT_TASK_TYPES,
    CHAT_TASK_TYPES,
    TASK_STATUSES,
    TYPE_LABELS,
    Case,
    Chat,
    Task,
    User,
)

#: Namespace of every deterministic id the sandbox derives (uuid5), so tests can compute them.
SANDBOX_NAMESPACE = uuid.UUID("5a7d8f3e-0b1c-4d6e-9f21-d3b17a5e0c42")
BUNDLED_SCENARIOS = ("demo", "empty")
APP_URL = "https://app.debitura.com"
CHAT_ACTION_PATH = "/cases/{caseId}/chats"
TYPE_NAME_RE = re.compile(r"^[A-Za-z]+$")
REFERENCE_RE = re.compile(r"^[A-Z0-9]{8}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
MAX_LARGE = 200_000

PARTNER_USER = {
    "id": 900001,
    "dateCreated": None,
    "dateUpdated": None,
    "firstName": "Paula",
    "lastName": "Partner",
    "email": "paula.partner@collections.example",
}

_TOP_KEYS = {
    "name",
    "description",
    "creditor",
    "users",
    "cases",
    "tasks",
    "chats",
    "events",
    "naiveTimestamps",
    "chatSolveDelaySeconds",
}
_CREDITOR_KEYS = {
    "id",
    "companyName",
    "companyRegistrationNumber",
    "address",
    "zipCode",
    "city",
    "state",
    "country",
    "officeEmail",
    "officePhone",
}
_USER_KEYS = {"id", "firstName", "lastName", "email", "active"}
_CASE_KEYS = {
    "id",
    "reference",
    "creditorReference",
    "creditorComments",
    "claimDescription",
    "grossAmount",
    "remainder",
    "interestFees",
    "reminderFees",
    "collectionFees",
    "totalAddedFees",
    "currency",
    "isTestCase",
    "lifecycle",
    "closeCode",
    "currentEngagementPhase",
    "claimType",
    "creditorDivisionId",
    "debtor",
    "collectionPartner",
    "bankAccount",
    "blendedAgeUpliftPoints",
    "preLegalSuccessFee",
    "solutionUrl",
    "signingHandoff",
    "disputeStatus",
    "validation",
    "assignedUser",
    "allocationOutstanding",
    "daysOld",
}
TASK_KEYS = {
    "id",
    "type",
    "caseId",
    "caseCreditorReference",
    "title",
    "typeLabel",
    "description",
    "status",
    "dateCreated",
    "minutesAgo",
    "dateSolved",
    "deadline",
    "solveAfterSeconds",
    "action",
    "solutionUrl",
    "leadId",
}
_CHAT_KEYS = {"id", "caseId", "caseCreditorReference", "role", "message", "userEmail", "minutesAgo", "isSeen"}


class ScenarioError(ValueError):
    """A scenario (or a task/event spec) is invalid; the message names the offending field."""


def stable_id(*parts: object) -> str:
    """Deterministic GUID for a named sandbox object (uuid5 in :data:`SANDBOX_NAMESPACE`)."""
    return str(uuid.uuid5(SANDBOX_NAMESPACE, ":".join(str(p) for p in parts)))


def case_id_for(creditor_reference: str) -> str:
    return stable_id("case", creditor_reference)


def user_id_for(email: str) -> str:
    return stable_id("user", email.lower())


def reference_for(creditor_reference: str) -> str:
    digest = hashlib.sha1(creditor_reference.encode()).digest()
    return base64.b32encode(digest).decode()[:8]


def is_guid(value: object) -> bool:
    return isinstance(value, str) and bool(GUID_RE.match(value))


def normalize_guid(value: str) -> str:
    return str(uuid.UUID(value))


# --------------------------------------------------------------------------------------------
# Resolving a scenario spec to a raw dict
# --------------------------------------------------------------------------------------------


def resolve_scenario(spec: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """Turn ``demo`` / ``empty`` / ``large:N`` / a path / a dict into a raw scenario dict."""
    if spec is None:
        spec = "empty"
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if isinstance(spec, Path):
        return _load_file(spec)
    if not isinstance(spec, str):
        raise ScenarioError(f"scenario must be a name, a path or an object, not {type(spec).__name__}")
    if spec.startswith("large:"):
        count = spec.split(":", 1)[1]
        if not count.isdigit() or not 0 < int(count) <= MAX_LARGE:
            raise ScenarioError(f"'{spec}': large:N needs an integer N between 1 and {MAX_LARGE}")
        return generate_large(int(count))
    if spec in BUNDLED_SCENARIOS:
        text = resources.files("airflow_provider_debitura.sandbox").joinpath(f"scenarios/{spec}.json")
        return json.loads(text.read_text(encoding="utf-8"))
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_file(path)
    raise ScenarioError(
        f"unknown scenario '{spec}': not a bundled name ({', '.join(BUNDLED_SCENARIOS)}, large:N) and no such file"
    )


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario file {path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return data


def generate_large(count: int) -> dict[str, Any]:
    """``count`` open tasks over ``max(1, count // 5)`` cases; deterministic, built for speed."""
    n_cases = max(1, count // 5)
    cases = [
        {
            "creditorReference": f"LRG-{i + 1:06d}",
            "grossAmount": float(500 + (i * 37) % 9500),
            "currency": ("EUR", "DKK", "USD", "GBP")[i % 4],
        }
        for i in range(n_cases)
    ]
    # A realistic mix: mostly chat-driven, some needing a human, ~2% account-level.
    cycle = (
        "ReplyToChat",
        "ReplyToChat",
        "ClientInputRequired",
        "MoreInfoNeeded",
        "ReplyToChat",
        "ReviewPartner",
        "CaseValidationNeedsInfo",
        "Generic",
        "SelectQuoteWinner",
        "MoreInfoNeeded",
    )
    tasks: list[dict[str, Any]] = []
    for i in range(count):
        if i % 50 == 49:
            kind = "AssignBankAccount" if (i // 50) % 2 == 0 else "SignContract"
            tasks.append({"type": kind})
        else:
            tasks.append({"type": cycle[(i * 7) % len(cycle)], "caseCreditorReference": f"LRG-{i % n_cases + 1:06d}"})
    return {"name": f"large:{count}", "cases": cases, "tasks": tasks}


# --------------------------------------------------------------------------------------------
# Compiling a raw scenario into records
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """A fully validated scenario, ready to be swapped into the store in one step."""

    name: str
    creditor: dict[str, Any]
    users: list[User]
    cases: list[Case]
    tasks: list[Task]
    #: task id -> seconds after load at which it solves itself
    solve_after: dict[str, float]
    chats: list[Chat]
    events: list[dict[str, Any]]
    naive_timestamps: bool
    chat_solve_delay_seconds: float | None
    loaded_at: datetime
    cases_by_id: dict[str, Case] = field(default_factory=dict)
    cases_by_cref: dict[str, Case] = field(default_factory=dict)
    cases_by_ref: dict[str, Case] = field(default_factory=dict)


def _expect(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ScenarioError(f"{where}: {msg}")


def _check_keys(obj: Any, allowed: set[str], where: str) -> None:
    _expect(isinstance(obj, dict), where, "must be an object")
    unknown = sorted(set(obj) - allowed)
    _expect(not unknown, where, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _opt_str(obj: dict[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = obj.get(key, default)
    _expect(value is None or isinstance(value, str), f"{where}.{key}", "must be a string or null")
    return value


def _number(value: Any, where: str, *, minimum: float = 0.0) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum
    _expect(ok, where, f"must be a number >= {minimum:g}")
    return float(value)


def parse_timestamp(value: Any, where: str) -> datetime:
    _expect(isinstance(value, str), where, "must be an ISO-8601 date-time string")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ScenarioError(f"{where}: not an ISO-8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _build_creditor(raw: Any) -> dict[str, Any]:
    raw = {} if raw is None else raw
    _check_keys(raw, _CREDITOR_KEYS, "creditor")
    name = raw.get("companyName", "Sandbox Creditor ApS")
    _expect(isinstance(name, str) and name != "", "creditor.companyName", "must be a non-empty string")
    creditor = {
        "id": raw.get("id") or stable_id("creditor", name),
        "companyName": name,
        "companyRegistrationNumber": "DK12345678",
        "address": "Sandbox Street 1",
        "zipCode": "1000",
        "city": "Copenhagen",
        "state": None,
        "country": "Denmark",
        "officeEmail": "office@example.com",
        "officePhone": "+45 70 00 00 00",
    }
    for key in _CREDITOR_KEYS - {"id", "companyName"}:
        if key in raw:
            creditor[key] = _opt_str(raw, key, "creditor")
    _expect(is_guid(creditor["id"]), "creditor.id", "must be a GUID")
    creditor["id"] = normalize_guid(creditor["id"])
    return creditor


def _build_users(raw: Any) -> list[User]:
    if raw is None:
        raw = [{"firstName": "Olivia", "lastName": "Ops", "email": "ops@example.com"}]
    _expect(isinstance(raw, list), "users", "must be a list")
    users: list[User] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"users[{i}]"
        _check_keys(item, _USER_KEYS, where)
        email = item.get("email")
        _expect(isinstance(email, str) and "@" in email, f"{where}.email", "must be an email address")
        _expect(email.lower() not in seen, f"{where}.email", f"duplicate email {email!r}")
        seen.add(email.lower())
        uid = item.get("id") or user_id_for(email)
        _expect(is_guid(uid), f"{where}.id", "must be a GUID")
        active = item.get("active", True)
        _expect(isinstance(active, bool), f"{where}.active", "must be a boolean")
        users.append(
            User(
                id=normalize_guid(uid),
                int_id=1001 + i,
                first_name=_opt_str(item, "firstName", where, "") or "",
                last_name=_opt_str(item, "lastName", where, "") or "",
                email=email,
                active=active,
            )
        )
    return users


def _build_case(item: Any, i: int, creditor: dict[str, Any], now: datetime, naive: bool) -> Case:
    where = f"cases[{i}]"
    _check_keys(item, _CASE_KEYS, where)
    cref = item.get("creditorReference")
    _expect(isinstance(cref, str) and cref.strip() != "", f"{where}.creditorReference", "is required")
    cid = item.get("id") or case_id_for(cref)
    _expect(is_guid(cid), f"{where}.id", "must be a GUID")
    cid = normalize_guid(cid)
    ref = item.get("reference") or reference_for(cref)
    _expect(isinstance(ref, str) and bool(REFERENCE_RE.match(ref)), f"{where}.reference", "must be 8 chars A-Z0-9")
    gross = _number(item.get("grossAmount", 1250.0), f"{where}.grossAmount")
    days_old = int(_number(item.get("daysOld", 30), f"{where}.daysOld"))
    created = now - timedelta(days=days_old)
    dto: dict[str, Any] = {
        "id": cid,
        "dateCreated": fmt_ts(created, naive),
        "dateUpdated": fmt_ts(now - timedelta(hours=1), naive),
        "reference": ref,
        "creditorReference": cref,
        "creditorComments": None,
        "claimDescription": f"Unpaid invoice {cref}",
        "grossAmount": gross,
        "remainder": gross,
        "interestFees": 0.0,
        "reminderFees": 0.0,
        "collectionFees": 0.0,
        "totalAddedFees": 0.0,
        "currency": "EUR",
        "isTestCase": True,
        "lifecycle": "Active",
        "dueDate": fmt_ts(created - timedelta(days=30), naive),
        "date": fmt_ts(created - timedelta(days=60), naive),
        "dateFinished": None,
        "dateCollectionStarted": fmt_ts(created + timedelta(days=1), naive),
        "closeCode": None,
        "currentEngagementPhase": "Pre-legal",
        "claimType": "B2B",
        "creditorDivisionId": None,
        "debtor": {
            "type": "Company",
            "name": f"Debtor of {cref}",
            "contactPerson": None,
            "companyRegistrationNumber": None,
            "address": "Debtor Road 2",
            "zipCode": "8000",
            "city": "Aarhus",
            "state": None,
            "stateAlpha2": None,
            "countryAlpha2": "DK",
            "country": "Denmark",
            "email": None,
            "phone": None,
        },
        "collectionPartner": {
            "name": "Sandbox Collections Ltd",
            "officeEmail": PARTNER_USER["email"],
            "officePhone": "+45 70 00 00 01",
            "publicSite": "https://collections.example",
            "surveyCadenceMode": 0,
        },
        "creditor": {
            "id": creditor["id"],
            "companyName": creditor["companyName"],
            "companyRegistrationNumber": creditor["companyRegistrationNumber"],
            "officeEmail": creditor["officeEmail"],
            "officePhone": creditor["officePhone"],
            "address": creditor["address"],
            "city": creditor["city"],
            "zipCode": creditor["zipCode"],
            "state": creditor["state"],
            "country": creditor["country"],
            "division": None,
        },
        "bankAccount": None,
        "blendedAgeUpliftPoints": None,
        "preLegalSuccessFee": None,
        "solutionUrl": None,
        "signingHandoff": None,
        "exclusivePeriodEndDate": None,
        "disputeStatus": None,
        "validation": {"needsInfo": False},
        "assignedUser": None,
        "allocationOutstanding": {"principal": gross, "interest": 0.0, "reminderFees": 0.0, "collectionFees": 0.0},
    }
    for key, value in item.items():
        if key not in ("id", "reference", "creditorReference", "grossAmount", "daysOld"):
            dto[key] = copy.deepcopy(value)
    if "remainder" not in item:
        dto["remainder"] = gross
    return Case(id=cid, reference=ref, creditor_reference=cref, dto=dto)


def _lookup_case(spec: dict[str, Any], where: str, by_id: dict[str, Case], by_cref: dict[str, Case]) -> Case | None:
    if spec.get("caseId") is not None:
        cid = spec["caseId"]
        _expect(is_guid(cid), f"{where}.caseId", "must be a GUID")
        case = by_id.get(normalize_guid(cid))
        _expect(case is not None, f"{where}.caseId", f"no case with id {cid}")
        return case
    if spec.get("caseCreditorReference") is not None:
        cref = spec["caseCreditorReference"]
        case = by_cref.get(cref) if isinstance(cref, str) else None
        _expect(case is not None, f"{where}.caseCreditorReference", f"no case with creditorReference {cref!r}")
        return case
    return None


def build_task(
    spec: Any,
    where: str,
    *,
    by_id: dict[str, Case],
    by_cref: dict[str, Case],
    default_id: str,
    default_created: datetime,
    now: datetime,
) -> tuple[Task, float | None]:
    """Validate one task spec and build it; also returns its ``solveAfterSeconds`` if any."""
    _check_keys(spec, TASK_KEYS, where)
    ttype = spec.get("type")
    _expect(isinstance(ttype, str) and bool(TYPE_NAME_RE.match(ttype)), f"{where}.type", "required, letters only")
    case = _lookup_case(spec, where, by_id, by_cref)
    if ttype in ACCOUNT_TASK_TYPES:
        _expect(case is None, where, f"{ttype} is an account-level task and cannot belong to a case")
    elif ttype in TYPE_LABELS:
        _expect(case is not None, where, f"{ttype} is a case-level task: give caseId or caseCreditorReference")
    tid = spec.get("id") or default_id
    _expect(tid is default_id or is_guid(tid), f"{where}.id", "must be a GUID")
    status = spec.get("status", "Open")
    _expect(status in TASK_STATUSES, f"{where}.status", "must be 'Open' or 'Solved'")
    if spec.get("dateCreated") is not None:
        created = parse_timestamp(spec["dateCreated"], f"{where}.dateCreated")
    elif spec.get("minutesAgo") is not None:
        created = now - timedelta(minutes=_number(spec["minutesAgo"], f"{where}.minutesAgo"))
    else:
        created = default_created
    solved = None
    if status == "Solved":
        solved = (
            parse_timestamp(spec["dateSolved"], f"{where}.dateSolved")
            if spec.get("dateSolved") is not None
            else max(created, now - timedelta(seconds=1))
        )
    deadline = parse_timestamp(spec["deadline"], f"{where}.deadline") if spec.get("deadline") is not None else None
    solve_after = None
    if spec.get("solveAfterSeconds") is not None:
        solve_after = _number(spec["solveAfterSeconds"], f"{where}.solveAfterSeconds")
    if spec.get("id"):
        tid = normalize_guid(tid)
    if "action" in spec:
        action = spec["action"]
        _expect(action is None or isinstance(action, dict), f"{where}.action", "must be an object or null")
        if action is not None:
            _check_keys(action, {"method", "path"}, f"{where}.action")
            action = {"method": action.get("method"), "path": action.get("path")}
    elif ttype in CHAT_TASK_TYPES:
        action = {"method": "POST", "path": CHAT_ACTION_PATH}
    else:
        action = None
    solution_url = _opt_str(spec, "solutionUrl", where)
    if solution_url is None:
        if ttype == "SignContract":
            solution_url = f"{APP_URL}/creditor/contracts/sign"
        elif ttype == "AssignBankAccount":
            solution_url = f"{APP_URL}/creditor/settings/bank-accounts"
        elif case is not None:
            solution_url = f"{APP_URL}/creditor/cases/{case.id}?task={tid}"
        else:
            solution_url = f"{APP_URL}/creditor/tasks/{tid}"
    lead_id = spec.get("leadId")
    if lead_id is None and ttype == "SelectQuoteWinner" and case is not None:
        lead_id = stable_id("lead", case.creditor_reference)
    _expect(lead_id is None or is_guid(lead_id), f"{where}.leadId", "must be a GUID")
    label = _opt_str(spec, "typeLabel", where, TYPE_LABELS.get(ttype) or re.sub(r"(?<!^)(?=[A-Z])", " ", ttype))
    default_title = label if case is None else f"{label}: {case.creditor_reference}"
    task = Task(
        id=tid,
        type=ttype,
        type_label=label,
        title=_opt_str(spec, "title", where, default_title),
        description=_opt_str(spec, "description", where),
        status=status,
        case_id=case.id if case else None,
        case_reference=case.creditor_reference if case else None,
        lead_id=lead_id,
        deadline=deadline,
        date_created=created,
        date_solved=solved,
        solution_url=solution_url,
        action=action,
    )
    return task, solve_after


def build_partner_chat(case: Case, message: Any, where: str, when: datetime, chat_id: str) -> Chat:
    _expect(isinstance(message, str) and message != "", f"{where}.message", "must be a non-empty string")
    return Chat(id=chat_id, case_id=case.id, date_created=when, role=0, message=message, user=dict(PARTNER_USER))


def user_relation(user: User) -> dict[str, Any]:
    return {
        "id": user.int_id,
        "dateCreated": None,
        "dateUpdated": None,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "email": user.email,
    }


def build_world(raw: Any, *, now: datetime | None = None) -> World:
    """Validate ``raw`` completely and compile it; raises :class:`ScenarioError` on any problem."""
    now = now or datetime.now(timezone.utc)
    _check_keys(raw, _TOP_KEYS, "scenario")
    naive = raw.get("naiveTimestamps", False)
    _expect(isinstance(naive, bool), "naiveTimestamps", "must be a boolean")
    delay = raw.get("chatSolveDelaySeconds")
    if delay is not None:
        delay = _number(delay, "chatSolveDelaySeconds")
    name = raw.get("name", "custom")
    _expect(isinstance(name, str), "name", "must be a string")
    creditor = _build_creditor(raw.get("creditor"))
    users = _build_users(raw.get("users"))

    cases_raw = raw.get("cases", [])
    _expect(isinstance(cases_raw, list), "cases", "must be a list")
    world = World(
        name=name,
        creditor=creditor,
        users=users,
        cases=[],
        tasks=[],
        solve_after={},
        chats=[],
        events=[],
        naive_timestamps=naive,
        chat_solve_delay_seconds=delay,
        loaded_at=now,
    )
    for i, item in enumerate(cases_raw):
        case = _build_case(item, i, creditor, now, naive)
        _expect(case.creditor_reference not in world.cases_by_cref, f"cases[{i}].creditorReference", "duplicate")
        _expect(case.id not in world.cases_by_id, f"cases[{i}].id", f"duplicate case id {case.id}")
        _expect(case.reference not in world.cases_by_ref, f"cases[{i}].reference", "duplicate")
        world.cases.append(case)
        world.cases_by_id[case.id] = case
        world.cases_by_cref[case.creditor_reference] = case
        world.cases_by_ref[case.reference] = case

    tasks_raw = raw.get("tasks", [])
    _expect(isinstance(tasks_raw, list), "tasks", "must be a list")
    seen: set[str] = set()
    n = len(tasks_raw)
    for i, item in enumerate(tasks_raw):
        where = f"tasks[{i}]"
        _expect(isinstance(item, dict), where, "must be an object")
        scope = item.get("caseCreditorReference") or item.get("caseId") or "account"
        task, solve_after = build_task(
            item,
            where,
            by_id=world.cases_by_id,
            by_cref=world.cases_by_cref,
            default_id=stable_id("task", name, i, item.get("type"), scope),
            # Spread default creation times so listing order follows scenario order.
            default_created=now - timedelta(seconds=10 + (n - i)),
            now=now,
        )
        _expect(task.id not in seen, f"{where}.id", f"duplicate task id {task.id}")
        seen.add(task.id)
        world.tasks.append(task)
        if solve_after is not None and task.status == "Open":
            world.solve_after[task.id] = solve_after

    chats_raw = raw.get("chats", [])
    _expect(isinstance(chats_raw, list), "chats", "must be a list")
    for i, item in enumerate(chats_raw):
        where = f"chats[{i}]"
        _check_keys(item, _CHAT_KEYS, where)
        case = _lookup_case(item, where, world.cases_by_id, world.cases_by_cref)
        _expect(case is not None, where, "needs caseId or caseCreditorReference")
        role = item.get("role", 0)
        _expect(role in (0, 1, 2) and not isinstance(role, bool), f"{where}.role", "must be 0, 1 or 2")
        minutes = _number(item.get("minutesAgo", 60), f"{where}.minutesAgo")
        when = now - timedelta(minutes=minutes)
        chat_id = item.get("id") or stable_id("chat", name, i, case.creditor_reference)
        _expect(is_guid(chat_id), f"{where}.id", "must be a GUID")
        if role == 0:
            chat = build_partner_chat(case, item.get("message"), where, when, normalize_guid(chat_id))
        else:
            message = item.get("message")
            _expect(isinstance(message, str) and message != "", f"{where}.message", "must be a non-empty string")
            email = item.get("userEmail") or (users[0].email if users else None)
            user = next((u for u in users if email and u.email.lower() == email.lower()), None)
            _expect(user is not None, f"{where}.userEmail", f"no user with email {email!r}")
            chat = Chat(normalize_guid(chat_id), case.id, when, role, message, user_relation(user))
        chat.is_seen = bool(item.get("isSeen", role != 0))
        world.chats.append(chat)
    world.chats.sort(key=lambda c: c.date_created)

    events_raw = raw.get("events", [])
    _expect(isinstance(events_raw, list), "events", "must be a list")
    world.events = [
        validate_event(e, f"events[{i}]", by_id=world.cases_by_id, by_cref=world.cases_by_cref, now=now)
        for i, e in enumerate(events_raw)
    ]
    for task in world.tasks:
        if task.case_id:
            world.cases_by_id[task.case_id].task_ids.append(task.id)
    return world


EVENT_ACTIONS = ("solveTask", "addTask", "partnerMessage")


def validate_event(
    spec: Any, where: str, *, by_id: dict[str, Case], by_cref: dict[str, Case], now: datetime
) -> dict[str, Any]:
    """Check a scheduled-event spec up front (including a dry run of an ``addTask``)."""
    _check_keys(spec, {"at", "action", "id"}, where)
    at = spec.get("at")
    _check_keys(at, {"afterSeconds", "afterRequests"}, f"{where}.at")
    _expect(len(at) == 1, f"{where}.at", "needs exactly one of afterSeconds or afterRequests")
    if "afterSeconds" in at:
        norm_at: dict[str, Any] = {"afterSeconds": _number(at["afterSeconds"], f"{where}.at.afterSeconds")}
    else:
        req = at["afterRequests"]
        _check_keys(req, {"method", "path", "count"}, f"{where}.at.afterRequests")
        method = req.get("method")
        _expect(method is None or isinstance(method, str), f"{where}.at.afterRequests.method", "string or null")
        path = req.get("path")
        _expect(isinstance(path, str) and path.startswith("/"), f"{where}.at.afterRequests.path", "must start with /")
        count = req.get("count", 1)
        ok = isinstance(count, int) and not isinstance(count, bool) and count >= 1
        _expect(ok, f"{where}.at.afterRequests.count", "must be an integer >= 1")
        norm_at = {"afterRequests": {"method": method.upper() if method else None, "path": path, "count": count}}
    action = spec.get("action")
    _expect(isinstance(action, dict), f"{where}.action", "must be an object")
    kind = action.get("type")
    _expect(kind in EVENT_ACTIONS, f"{where}.action.type", f"must be one of {list(EVENT_ACTIONS)}")
    if kind == "solveTask":
        _check_keys(action, {"type", "taskId", "afterSeconds"}, f"{where}.action")
        _expect(is_guid(action.get("taskId")), f"{where}.action.taskId", "must be a GUID")
        if action.get("afterSeconds") is not None:
            _number(action["afterSeconds"], f"{where}.action.afterSeconds")
    elif kind == "addTask":
        _check_keys(action, {"type", "task"}, f"{where}.action")
        build_task(
            action.get("task"),
            f"{where}.action.task",
            by_id=by_id,
            by_cref=by_cref,
            default_id=stable_id("dry-run"),
            default_created=now,
            now=now,
        )
    else:
        _check_keys(action, {"type", "caseId", "caseCreditorReference", "message", "task"}, f"{where}.action")
        case = _lookup_case(action, f"{where}.action", by_id, by_cref)
        _expect(case is not None, f"{where}.action", "needs caseId or caseCreditorReference")
        message = action.get("message")
        _expect(isinstance(message, str) and message != "", f"{where}.action.message", "must be a non-empty string")
        task = action.get("task")
        ok = task is None or (
            isinstance(task, str) and bool(TYPE_NAME_RE.match(task)) and task not in ACCOUNT_TASK_TYPES
        )
        _expect(ok, f"{where}.action.task", "must be a case-level task type name")
    return {"at": norm_at, "action": copy.deepcopy(action)}
