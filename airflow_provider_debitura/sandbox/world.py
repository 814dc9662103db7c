"""Compiling a validated scenario into records: the whole world is built (and checked) before it replaces
the store's, so a bad scenario never leaves the store half-loaded."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_debitura.sandbox.dto import fmt_ts
from airflow_provider_debitura.sandbox.ids import case_id_for, normalize_guid, reference_for, stable_id, user_id_for
from airflow_provider_debitura.sandbox.records import (
    ACCOUNT_TASK_TYPES,
    CHAT_TASK_TYPES,
    LEAD_TASK_TYPES,
    TYPE_LABELS,
    Case,
    Chat,
    Task,
    User,
)
from airflow_provider_debitura.sandbox.scenario_models import (
    AddTaskAction,
    CaseSpec,
    ChatSpec,
    CreditorSpec,
    EventSpec,
    PartnerMessageAction,
    ScenarioError,
    ScenarioSpec,
    TaskSpec,
    UserSpec,
    parse,
)

APP_URL = "https://app.debitura.com"
CHAT_ACTION_PATH = "/cases/{caseId}/chats"
PARTNER_USER = {
    "id": 900001,
    "dateCreated": None,
    "dateUpdated": None,
    "firstName": "Paula",
    "lastName": "Partner",
    "email": "paula.partner@collections.example",
}


@dataclass
class Cases:
    """The case indexes a task, chat or event resolves its case with.

    :param by_id: cases by GUID.
    :param by_cref: cases by creditor reference.
    :param by_ref: cases by Debitura reference.
    """

    by_id: dict[str, Case] = field(default_factory=dict)
    by_cref: dict[str, Case] = field(default_factory=dict)
    by_ref: dict[str, Case] = field(default_factory=dict)

    def find(self, case_id: str | None, creditor_reference: str | None, where: str) -> Case | None:
        """The case named by id or creditor reference (None when neither is given).

        :param case_id: a GUID, or None.
        :param creditor_reference: a creditor reference, or None.
        :param where: the spec's path, for the error.
        """
        if case_id is not None:
            case = self.by_id.get(normalize_guid(case_id))
            _expect(case is not None, f"{where}.caseId", f"no case with id {case_id}")
            return case
        if creditor_reference is not None:
            case = self.by_cref.get(creditor_reference)
            _expect(
                case is not None,
                f"{where}.caseCreditorReference",
                f"no case with creditorReference {creditor_reference!r}",
            )
            return case
        return None


@dataclass
class World:
    """A fully validated scenario, ready to be swapped into the store in one step.

    :param name: the scenario's name.
    :param creditor: CreditorMeApiDTO.
    :param users: the team.
    :param naive_timestamps: emit zone-less timestamps.
    :param chat_solve_delay_seconds: the scenario's chat solve delay, if any.
    :param loaded_at: load time (UTC).
    :param cases: the case indexes.
    :param tasks: the tasks in scenario order.
    :param solve_after: task id -> seconds after load at which it solves itself.
    :param checked: tasks with a ``solveAfterChecked`` rule, with their specs.
    :param chats: chat messages, oldest first.
    :param events: validated events.
    """

    name: str
    creditor: dict[str, Any]
    users: list[User]
    naive_timestamps: bool
    chat_solve_delay_seconds: float | None
    loaded_at: datetime
    cases: Cases = field(default_factory=Cases)
    tasks: list[Task] = field(default_factory=list)
    #: task id -> seconds after load at which it solves itself
    solve_after: dict[str, float] = field(default_factory=dict)
    #: tasks with a ``solveAfterChecked`` rule, and their specs (to raise a fresh copy)
    checked: list[tuple[str, TaskSpec]] = field(default_factory=list)
    chats: list[Chat] = field(default_factory=list)
    events: list[EventSpec] = field(default_factory=list)


def _expect(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ScenarioError(f"{where}: {msg}")


# ------------------------------------------------------------------------------------ creditor, users, cases


def build_creditor(spec: CreditorSpec) -> dict[str, Any]:
    """CreditorMeApiDTO from its spec.

    :param spec: the scenario's ``creditor``.
    """
    creditor = spec.model_dump()
    creditor["id"] = normalize_guid(spec.id or stable_id("creditor", spec.companyName))
    return creditor


def build_users(specs: list[UserSpec]) -> list[User]:
    """Users in scenario order (the first one's email goes into ``conn_json()``).

    :param specs: the scenario's ``users``.
    """
    users: list[User] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        _expect(spec.email.lower() not in seen, f"users[{i}].email", f"duplicate email {spec.email!r}")
        seen.add(spec.email.lower())
        users.append(
            User(
                id=normalize_guid(spec.id or user_id_for(spec.email)),
                int_id=1001 + i,
                first_name=spec.firstName or "",
                last_name=spec.lastName or "",
                email=spec.email,
                active=spec.active,
            )
        )
    return users


def _debtor(cref: str) -> dict[str, Any]:
    return {
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
    }


def _case_parties(cref: str, creditor: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "companyName", "companyRegistrationNumber", "officeEmail", "officePhone", "address", "city")
    return {
        "debtor": _debtor(cref),
        "collectionPartner": {
            "name": "Sandbox Collections Ltd",
            "officeEmail": PARTNER_USER["email"],
            "officePhone": "+45 70 00 00 01",
            "publicSite": "https://collections.example",
            "surveyCadenceMode": 0,
        },
        "creditor": {
            **{k: creditor[k] for k in keys},
            "zipCode": creditor["zipCode"],
            "state": creditor["state"],
            "country": creditor["country"],
            "division": None,
        },
    }


def _case_dto(
    cid: str, ref: str, spec: CaseSpec, creditor: dict[str, Any], now: datetime, naive: bool
) -> dict[str, Any]:
    cref, gross = spec.creditorReference, spec.grossAmount
    created = now - timedelta(days=spec.daysOld)
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
        **dict.fromkeys(("interestFees", "reminderFees", "collectionFees", "totalAddedFees"), 0.0),
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
        **_case_parties(cref, creditor),
        **dict.fromkeys(("bankAccount", "blendedAgeUpliftPoints", "preLegalSuccessFee", "solutionUrl"), None),
        **dict.fromkeys(("signingHandoff", "exclusivePeriodEndDate", "disputeStatus"), None),
        "validation": {"needsInfo": False},
        "assignedUser": None,
        "allocationOutstanding": {"principal": gross, "interest": 0.0, "reminderFees": 0.0, "collectionFees": 0.0},
    }
    dto.update(copy.deepcopy(spec.overrides()))
    return dto


def build_case(spec: CaseSpec, creditor: dict[str, Any], now: datetime, naive: bool) -> Case:
    """One case and its InvoiceDto.

    :param spec: the case spec.
    :param creditor: the world's creditor (copied into the case).
    :param now: load time (the case's dates count back from it).
    :param naive: emit zone-less timestamps.
    """
    cid = normalize_guid(spec.id or case_id_for(spec.creditorReference))
    ref = spec.reference or reference_for(spec.creditorReference)
    dto = _case_dto(cid, ref, spec, creditor, now, naive)
    created = now - timedelta(days=spec.daysOld)
    return Case(id=cid, reference=ref, creditor_reference=spec.creditorReference, dto=dto, created=created)


def _add_cases(world: World, specs: list[CaseSpec]) -> None:
    cases = world.cases
    for i, spec in enumerate(specs):
        case = build_case(spec, world.creditor, world.loaded_at, world.naive_timestamps)
        _expect(case.creditor_reference not in cases.by_cref, f"cases[{i}].creditorReference", "duplicate")
        _expect(case.id not in cases.by_id, f"cases[{i}].id", f"duplicate case id {case.id}")
        _expect(case.reference not in cases.by_ref, f"cases[{i}].reference", "duplicate")
        cases.by_id[case.id] = case
        cases.by_cref[case.creditor_reference] = case
        cases.by_ref[case.reference] = case


# ------------------------------------------------------------------------------------ tasks


def _check_scope(spec: TaskSpec, case: Case | None, where: str) -> None:
    ttype = spec.type
    if ttype in ACCOUNT_TASK_TYPES:
        _expect(case is None, where, f"{ttype} is an account-level task and cannot belong to a case")
    elif ttype in LEAD_TASK_TYPES:
        pass  # on a case, or on a lead before any case exists
    elif ttype in TYPE_LABELS:
        _expect(case is not None, where, f"{ttype} is a case-level task: give caseId or caseCreditorReference")


def _task_times(spec: TaskSpec, default_created: datetime, now: datetime) -> tuple[datetime, datetime | None]:
    if spec.dateCreated is not None:
        created = spec.dateCreated
    elif spec.minutesAgo is not None:
        created = now - timedelta(minutes=spec.minutesAgo)
    else:
        created = default_created
    solved = None
    if spec.status == "Solved":
        solved = spec.dateSolved if spec.dateSolved is not None else max(created, now - timedelta(seconds=1))
    return created, solved


def _task_action(spec: TaskSpec) -> dict[str, Any] | None:
    if spec.given("action"):
        return None if spec.action is None else {"method": spec.action.method, "path": spec.action.path}
    if spec.type in CHAT_TASK_TYPES:
        return {"method": "POST", "path": CHAT_ACTION_PATH}
    return None


def _solution_url(spec: TaskSpec, tid: str, case: Case | None, lead_id: str | None) -> str:
    if spec.given("solutionUrl") and spec.solutionUrl is not None:
        return spec.solutionUrl
    if spec.type == "SignContract":
        return f"{APP_URL}/creditor/contracts/sign"
    if spec.type == "AssignBankAccount":
        return f"{APP_URL}/creditor/settings/bank-accounts"
    if case is not None:
        return f"{APP_URL}/creditor/cases/{case.id}?task={tid}"
    if lead_id is not None:
        return f"{APP_URL}/creditor/leads/{lead_id}?task={tid}"
    return f"{APP_URL}/creditor/tasks/{tid}"


def _lead_id(spec: TaskSpec, tid: str, case: Case | None) -> str | None:
    if spec.leadId is not None:
        return normalize_guid(spec.leadId)
    if spec.type in LEAD_TASK_TYPES:
        return stable_id("lead", case.creditor_reference if case is not None else tid)
    return None


def build_task(
    spec: TaskSpec | Any,
    where: str,
    *,
    cases: Cases,
    default_id: str,
    default_created: datetime,
    now: datetime,
) -> tuple[Task, float | None]:
    """Validate one task spec against the world and build it; also returns its ``solveAfterSeconds``.

    :param spec: a :class:`TaskSpec` or its JSON.
    :param where: the spec's path, for errors.
    :param cases: the world's cases.
    :param default_id: the id when the spec names none.
    :param default_created: ``dateCreated`` when the spec gives neither it nor ``minutesAgo``.
    :param now: the current sandbox wall time.
    """
    if not isinstance(spec, TaskSpec):
        spec = parse(TaskSpec, spec, where)
    case = cases.find(spec.caseId, spec.caseCreditorReference, where)
    _check_scope(spec, case, where)
    tid = normalize_guid(spec.id) if spec.id else default_id
    created, solved = _task_times(spec, default_created, now)
    lead_id = _lead_id(spec, tid, case)
    label = spec.typeLabel if spec.given("typeLabel") else _label(spec.type)
    default_title = label if case is None else f"{label}: {case.creditor_reference}"
    task = Task(
        id=tid,
        type=spec.type,
        type_label=label,
        title=spec.title if spec.given("title") else default_title,
        description=spec.description,
        status=spec.status,
        case_id=case.id if case else None,
        case_reference=case.creditor_reference if case else None,
        lead_id=lead_id,
        deadline=spec.deadline,
        date_created=created,
        date_solved=solved,
        solution_url=_solution_url(spec, tid, case, lead_id),
        action=_task_action(spec),
        wire=copy.deepcopy(spec.wire) if spec.wire is not None else None,
        wire_omit=tuple(spec.wireOmit or ()),
    )
    return task, spec.solveAfterSeconds


def _label(ttype: str) -> str:
    return TYPE_LABELS.get(ttype) or re.sub(r"(?<!^)(?=[A-Z])", " ", ttype)


def _add_tasks(world: World, specs: list[TaskSpec]) -> None:
    seen: set[str] = set()
    n, now = len(specs), world.loaded_at
    for i, spec in enumerate(specs):
        where = f"tasks[{i}]"
        task, solve_after = build_task(
            spec,
            where,
            cases=world.cases,
            default_id=stable_id("task", world.name, i, spec.type, spec.scope()),
            # Spread default creation times so listing order follows scenario order.
            default_created=now - timedelta(seconds=10 + (n - i)),
            now=now,
        )
        _expect(task.id not in seen, f"{where}.id", f"duplicate task id {task.id}")
        seen.add(task.id)
        world.tasks.append(task)
        if solve_after is not None and task.status == "Open":
            world.solve_after[task.id] = solve_after
        if spec.solveAfterChecked is not None:
            world.checked.append((task.id, spec))
        if task.case_id:
            world.cases.by_id[task.case_id].task_ids.append(task.id)


# ------------------------------------------------------------------------------------ chats & events


def build_partner_chat(case: Case, message: str, when: datetime, chat_id: str) -> Chat:
    """A collection partner's (role 0) message.

    :param case: the case it is posted on.
    :param message: the text.
    :param when: its ``dateCreated``.
    :param chat_id: its id.
    """
    return Chat(id=chat_id, case_id=case.id, date_created=when, role=0, message=message, user=dict(PARTNER_USER))


def user_relation(user: User) -> dict[str, Any]:
    """The ChatDto ``user`` of a team member (its ``id`` is an int32 in the spec).

    :param user: the team member.
    """
    return {
        "id": user.int_id,
        "dateCreated": None,
        "dateUpdated": None,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "email": user.email,
    }


def _build_chat(world: World, spec: ChatSpec, i: int) -> Chat:
    where = f"chats[{i}]"
    case = world.cases.find(spec.caseId, spec.caseCreditorReference, where)
    _expect(case is not None, where, "needs caseId or caseCreditorReference")
    assert case is not None
    when = world.loaded_at - timedelta(minutes=spec.minutesAgo)
    chat_id = normalize_guid(spec.id or stable_id("chat", world.name, i, case.creditor_reference))
    if spec.role == 0:
        chat = build_partner_chat(case, spec.message, when, chat_id)
    else:
        email = spec.userEmail or (world.users[0].email if world.users else None)
        user = next((u for u in world.users if email and u.email.lower() == email.lower()), None)
        _expect(user is not None, f"{where}.userEmail", f"no user with email {email!r}")
        assert user is not None
        chat = Chat(chat_id, case.id, when, spec.role, spec.message, user_relation(user))
    chat.is_seen = spec.isSeen if spec.isSeen is not None else spec.role != 0
    return chat


def check_event(spec: EventSpec | Any, where: str, *, cases: Cases, now: datetime) -> EventSpec:
    """Validate an event against the world (an ``addTask`` is dry-run) and return it.

    :param spec: an :class:`EventSpec` or its JSON.
    :param where: the spec's path, for errors.
    :param cases: the world's cases.
    :param now: the current sandbox wall time.
    """
    if not isinstance(spec, EventSpec):
        spec = parse(EventSpec, spec, where)
    action = spec.action
    if isinstance(action, AddTaskAction):
        build_task(
            action.task,
            f"{where}.action.task",
            cases=cases,
            default_id=stable_id("dry-run"),
            default_created=now,
            now=now,
        )
    elif isinstance(action, PartnerMessageAction):
        case = cases.find(action.caseId, action.caseCreditorReference, f"{where}.action")
        _expect(case is not None, f"{where}.action", "needs caseId or caseCreditorReference")
        _expect(action.task not in ACCOUNT_TASK_TYPES, f"{where}.action.task", "must be a case-level task type name")
    return spec


def build_world(raw: ScenarioSpec | Any, *, now: datetime | None = None) -> World:
    """Validate ``raw`` completely and compile it; raises :class:`ScenarioError` on any problem.

    :param raw: a :class:`ScenarioSpec` or its JSON.
    :param now: load time (default: now).
    """
    spec = raw if isinstance(raw, ScenarioSpec) else parse(ScenarioSpec, raw)
    now = now or datetime.now(timezone.utc)
    world = World(
        name=spec.name,
        creditor=build_creditor(spec.creditor),
        users=build_users(spec.users),
        naive_timestamps=spec.naiveTimestamps,
        chat_solve_delay_seconds=spec.chatSolveDelaySeconds,
        loaded_at=now,
    )
    _add_cases(world, spec.cases)
    _add_tasks(world, spec.tasks)
    world.chats = sorted((_build_chat(world, c, i) for i, c in enumerate(spec.chats)), key=lambda c: c.date_created)
    world.events = [check_event(e, f"events[{i}]", cases=world.cases, now=now) for i, e in enumerate(spec.events)]
    return world
