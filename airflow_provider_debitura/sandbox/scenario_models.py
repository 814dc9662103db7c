"""The scenario format as pydantic models: what a scenario (and a control-plane task or event) may say.

Shape and field checks live here and come with clear, path-named errors and a JSON Schema
(``docs/sandbox.md`` includes it; a test keeps the two in sync). Checks that need the whole world
(does that case exist? is that id taken?) happen when :mod:`.world` compiles the scenario.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

TYPE_NAME_RE = re.compile(r"^[A-Za-z]+$")
REFERENCE_RE = re.compile(r"^[A-Z0-9]{8}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
#: How many field errors one message lists before "and N more".
MAX_LISTED_ERRORS = 5


class ScenarioError(ValueError):
    """A scenario (or a task/event spec) is invalid; the message names the offending field."""


def is_guid(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a GUID string (with or without dashes).

    :param value: anything.
    """
    return isinstance(value, str) and bool(GUID_RE.match(value))


def _guid(value: str) -> str:
    if not is_guid(value):
        raise ValueError("must be a GUID")
    return value


def _type_name(value: str) -> str:
    if not TYPE_NAME_RE.match(value):
        raise ValueError("must be a task type name, letters only (e.g. ReplyToChat)")
    return value


def _reference(value: str) -> str:
    if not REFERENCE_RE.match(value):
        raise ValueError("must be 8 chars A-Z0-9")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _email(value: str) -> str:
    if "@" not in value:
        raise ValueError("must be an email address")
    return value


def parse_timestamp(value: Any, where: str = "timestamp") -> datetime:
    """An ISO-8601 string as an aware UTC datetime (a zone-less one is taken as UTC).

    :param value: the JSON value.
    :param where: the field path named in the error.
    """
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: must be an ISO-8601 date-time string")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ScenarioError(f"{where}: not an ISO-8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return parse_timestamp(value, "")
    except ScenarioError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None


Guid = Annotated[str, AfterValidator(_guid), WithJsonSchema({"type": "string", "format": "uuid"})]
TypeName = Annotated[str, AfterValidator(_type_name), WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]+$"})]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})]
Seconds = Annotated[float, Field(ge=0)]
Text = Annotated[str, AfterValidator(_not_blank), WithJsonSchema({"type": "string", "minLength": 1})]
JsonObject = dict[str, JsonValue]


_ALLOWED: dict[type, frozenset[str]] = {}


class Spec(BaseModel):
    """Base of every scenario model: strict types, unknown fields rejected with the allowed ones listed."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = _ALLOWED.get(cls)
            if allowed is None:
                allowed = _ALLOWED[cls] = frozenset(f.alias or name for name, f in cls.model_fields.items())
            if not allowed.issuperset(data):
                unknown = sorted(str(k) for k in set(data) - allowed)
                raise ValueError(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        return data

    def given(self, name: str) -> bool:
        """Whether the scenario set field ``name`` (even to null).

        :param name: the Python field name.
        """
        return name in self.model_fields_set


# ------------------------------------------------------------------------------------ records


class CreditorSpec(Spec):
    """``creditor``: the CreditorMeApiDTO behind ``GET /me``; unset fields get sandbox defaults."""

    id: Guid | None = None
    companyName: Text = "Sandbox Creditor ApS"
    companyRegistrationNumber: str | None = "DK12345678"
    address: str | None = "Sandbox Street 1"
    zipCode: str | None = "1000"
    city: str | None = "Copenhagen"
    state: str | None = None
    country: str | None = "Denmark"
    officeEmail: str | None = "office@example.com"
    officePhone: str | None = "+45 70 00 00 00"


class UserSpec(Spec):
    """One team member (``GET /users``); only active users may post chat messages."""

    id: Guid | None = Field(default=None, description="Default: derived from the email (user_id_for).")
    firstName: str | None = ""
    lastName: str | None = ""
    email: Annotated[str, AfterValidator(_email)]
    active: bool = True


class CaseSpec(Spec):
    """One case (InvoiceDto). Any listed InvoiceDto field overrides the sandbox's default verbatim."""

    id: Guid | None = Field(default=None, description="Default: derived from creditorReference (case_id_for).")
    reference: (
        Annotated[str, AfterValidator(_reference), WithJsonSchema({"type": "string", "pattern": "^[A-Z0-9]{8}$"})]
        | None
    ) = Field(default=None, description="Debitura's 8-character reference; default derived from creditorReference.")
    creditorReference: Text
    daysOld: Seconds = Field(default=30, description="Age in days; drives the case's dates.")
    grossAmount: Seconds = 1250.0
    creditorComments: str | None = None
    claimDescription: str | None = None
    remainder: float | None = None
    interestFees: float | None = None
    reminderFees: float | None = None
    collectionFees: float | None = None
    totalAddedFees: float | None = None
    currency: str | None = None
    isTestCase: bool | None = None
    lifecycle: str | None = Field(default=None, description='The returned (description) form, e.g. "Active".')
    closeCode: str | None = None
    currentEngagementPhase: str | None = None
    claimType: str | None = None
    creditorDivisionId: Guid | None = None
    debtor: JsonObject | None = None
    collectionPartner: JsonObject | None = None
    bankAccount: JsonObject | None = None
    blendedAgeUpliftPoints: float | None = None
    preLegalSuccessFee: float | None = None
    solutionUrl: str | None = None
    signingHandoff: JsonObject | None = None
    disputeStatus: str | None = None
    validation: JsonObject | None = None
    assignedUser: JsonObject | None = None
    allocationOutstanding: JsonObject | None = None

    def overrides(self) -> dict[str, Any]:
        """The InvoiceDto fields this spec sets, as given."""
        own = {"id", "reference", "creditorReference", "daysOld", "grossAmount"}
        return {k: v for k, v in self.model_dump(include=self.model_fields_set).items() if k not in own}


class ActionSpec(Spec):
    """A TaskActionDto override; both parts may be null, as the spec allows."""

    method: str | None = None
    path: str | None = None


class CheckedRule(Spec):
    """Solve a task some seconds after a gate first checks it, and optionally raise it again later.

    A *check* is an API read that answers with the task among its open tasks and asks for it
    specifically: ``GET /tasks`` filtered by ``type`` naming the task's type (the account-level read
    of every gate check), or ``GET /cases/{id}/tasks`` of the task's own case. Full listings
    (triage, list operators, the shared poll) are not checks, but one that no longer shows the solved task
    starts the re-arm delay, as a check would.
    """

    seconds: Seconds = Field(description="Seconds from the first check to the solve.")
    rearmAfterSeconds: Seconds | None = Field(
        default=None,
        description="Once a read of open tasks (a check or a full listing) has seen it solved, the first check "
        "this many seconds or more later raises a fresh copy (new id, created now), which that check already sees. "
        "Null: never.",
    )


class TaskSpec(Spec):
    """One task (TaskDto). ``wire``/``wireOmit`` shape the rendered JSON only, for odd-but-valid shapes."""

    id: Guid | None = None
    type: TypeName
    caseId: Guid | None = None
    caseCreditorReference: str | None = None
    leadId: Guid | None = Field(
        default=None, description="SelectQuoteWinner: default derived (a lead task when no case)."
    )
    title: str | None = None
    typeLabel: str | None = None
    description: str | None = None
    status: Literal["Open", "Solved"] = "Open"
    dateCreated: Timestamp | None = None
    minutesAgo: Seconds | None = None
    dateSolved: Timestamp | None = None
    deadline: Timestamp | None = None
    solveAfterSeconds: Seconds | None = Field(default=None, description="Solve this many seconds after load/creation.")
    solveAfterChecked: CheckedRule | None = None
    action: ActionSpec | None = Field(default=None, description="Absent: the type's default; null: no API action.")
    solutionUrl: str | None = None
    wire: JsonObject | None = Field(
        default=None, description="Merged verbatim into the rendered TaskDto (any key, any JSON value)."
    )
    wireOmit: list[str] | None = Field(default=None, description="TaskDto keys left out of the rendered JSON.")

    def scope(self) -> str:
        """The case reference, case id or "account": part of the default task id."""
        return self.caseCreditorReference or self.caseId or "account"


class ChatSpec(Spec):
    """One chat message on a case: role 0 partner (default), 1 creditor, 2 managed by partner."""

    id: Guid | None = None
    caseId: Guid | None = None
    caseCreditorReference: str | None = None
    role: Literal[0, 1, 2] = 0
    message: Text
    userEmail: str | None = Field(default=None, description="Role 1: a scenario user (default: the first).")
    minutesAgo: Seconds = 60
    isSeen: bool | None = Field(default=None, description="Default: true for the creditor's own messages.")


# ------------------------------------------------------------------------------------ events


class RequestMatch(Spec):
    """Which answered API requests count: ``method`` (null = any) and the exact path or route template."""

    method: str | None = None
    path: Annotated[str, Field(pattern=r"^/")]
    count: Annotated[int, Field(ge=1)] = 1


class RepeatMatch(RequestMatch):
    """Like :class:`RequestMatch`, firing on every ``count``-th request, at most ``times`` times (null: no limit)."""

    times: Annotated[int, Field(ge=1)] | None = None


class AtSpec(Spec):
    """When an event fires: exactly one of the three."""

    afterSeconds: Seconds | None = None
    afterRequests: RequestMatch | None = None
    everyRequests: RepeatMatch | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AtSpec:
        if sum(getattr(self, name) is not None for name in type(self).model_fields) != 1:
            raise ValueError("needs exactly one of afterSeconds, afterRequests or everyRequests")
        return self


class SolveTaskAction(Spec):
    """Solve one task by id (optionally ``afterSeconds`` after the event fires)."""

    type: Literal["solveTask"]
    taskId: Guid
    afterSeconds: Seconds | None = None


class SolveOpenTaskAction(Spec):
    """Solve one open task chosen by ``pick`` among ``types`` (all types when absent); ``random`` is seeded."""

    type: Literal["solveOpenTask"]
    pick: Literal["oldest", "newest", "random"] = "oldest"
    types: list[TypeName] | None = None
    seed: int = 0


class AddTaskAction(Spec):
    """Add a task (a task spec, as in ``tasks``)."""

    type: Literal["addTask"]
    task: TaskSpec


class PartnerMessageAction(Spec):
    """A collection-partner chat message on a case, optionally with a new case-level task."""

    type: Literal["partnerMessage"]
    caseId: Guid | None = None
    caseCreditorReference: str | None = None
    message: Text
    task: TypeName | None = None


Action = Annotated[
    SolveTaskAction | SolveOpenTaskAction | AddTaskAction | PartnerMessageAction, Field(discriminator="type")
]
EVENT_ACTIONS = ("solveTask", "solveOpenTask", "addTask", "partnerMessage")


class EventSpec(Spec):
    """A scheduled change: ``at`` says when, ``action`` what."""

    id: str | None = None
    at: AtSpec
    action: Action


# ------------------------------------------------------------------------------------ the scenario


class ScenarioSpec(Spec):
    """A whole sandbox world."""

    model_config = ConfigDict(title="Debitura sandbox scenario")

    name: str = "custom"
    description: str | None = None
    naiveTimestamps: bool = Field(
        default=False, description="Emit zone-less timestamps, as the real API sometimes does."
    )
    chatSolveDelaySeconds: Seconds | None = None
    creditor: CreditorSpec = Field(default_factory=CreditorSpec)
    users: list[UserSpec] = Field(
        default_factory=lambda: [UserSpec(firstName="Olivia", lastName="Ops", email="ops@example.com")]
    )
    cases: list[CaseSpec] = Field(default_factory=list)
    tasks: list[TaskSpec] = Field(default_factory=list)
    chats: list[ChatSpec] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):  # "creditor": null and "users": null ask for the defaults
            data = {k: v for k, v in data.items() if not (k in ("creditor", "users") and v is None)}
        return data


# ------------------------------------------------------------------------------------ parsing & errors

_MESSAGES = {
    "missing": "is required",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "bool_type": "must be a boolean",
}


def _where(loc: tuple[int | str, ...], prefix: str) -> str:
    text = prefix
    for i, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif i > 0 and loc[i - 1] == "action" and part in EVENT_ACTIONS:
            continue  # the discriminated union's tag, not a field
        else:
            text += f".{part}" if text else str(part)
    return text or "scenario"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("greater_than_equal", "greater_than"):
        bound = error["ctx"].get("ge", error["ctx"].get("gt"))
        return f"must be {'>=' if kind == 'greater_than_equal' else '>'} {bound}"
    if kind == "union_tag_invalid":
        return f"type must be one of {list(EVENT_ACTIONS)}"
    if kind == "union_tag_not_found":
        return f"needs a type, one of {list(EVENT_ACTIONS)}"
    return _MESSAGES.get(kind, str(error["msg"]))


def format_errors(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's errors as one line: ``tasks[0].type: must be ...; ...`` (no input values echoed).

    :param exc: the validation error.
    :param prefix: the path of the validated object (``"task"``, ``"events[2]"``), empty for a scenario.
    """
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{_where(tuple(e['loc']), prefix)}: {_message(e)}" for e in errors[:MAX_LISTED_ERRORS]]
    more = len(errors) - MAX_LISTED_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse(model: type[Spec], raw: Any, where: str = "") -> Any:
    """Validate ``raw`` as ``model``; a :class:`ScenarioError` naming the field path otherwise.

    :param model: the model class.
    :param raw: the JSON value (dicts, lists, ...).
    :param where: the path of ``raw`` in messages.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where or 'scenario'}: must be an object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(format_errors(exc, where)) from None


def _untitled(node: Any) -> Any:
    if isinstance(node, list):
        return [_untitled(x) for x in node]
    if isinstance(node, dict):  # pydantic's per-field "title"s only repeat the field names
        return {k: _untitled(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    return node


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (draft 2020-12), as ``docs/sandbox.md`` shows it."""
    schema = _untitled(ScenarioSpec.model_json_schema(mode="validation"))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Debitura sandbox scenario", **schema}


def _compact(node: Any, indent: int = 0, width: int = 110) -> str:
    """JSON with every object or list that fits on one line written on one line."""
    flat = json.dumps(node, ensure_ascii=False)
    if len(flat) + indent <= width or not isinstance(node, (dict, list)) or not node:
        return flat
    pad = " " * (indent + 2)
    if isinstance(node, dict):
        items = [f"{pad}{json.dumps(k)}: {_compact(v, indent + 2, width)}" for k, v in node.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _compact(v, indent + 2, width) for v in node]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def json_schema_text() -> str:
    """:func:`json_schema` as stable, compact JSON (the code block in ``docs/sandbox.md``)."""
    return _compact(json_schema())
