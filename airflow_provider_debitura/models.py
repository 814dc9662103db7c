"""Typed views of what the Debitura Customer API returns.

Python attributes are snake_case; JSON is the API's camelCase in both directions
(``Task.model_validate(api_json)`` and ``task.to_api_dict()``). The models follow the official
spec's nullability (almost every field may be null or absent) and keep unknown fields, so a task
that round-trips through XCom loses nothing the server sent. Lists are parsed one record at a time:
a record that cannot be understood is set aside as a :class:`RejectedRecord` on the result, never
fails the page (see ``docs/listing.md``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic.alias_generators import to_camel
from typing_extensions import Self

__all__ = [
    "ApiError",
    "BusinessError",
    "Case",
    "CasePage",
    "ChatMessage",
    "ChatRole",
    "ChatUser",
    "Creditor",
    "PageData",
    "Records",
    "RejectedRecord",
    "Task",
    "TaskAction",
    "TaskPage",
    "TaskStatus",
    "TaskType",
    "User",
    "UserPage",
    "is_account_level_task",
    "is_open_status",
    "parse_records",
]

log = logging.getLogger(__name__)

_ZERO = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if value.utcoffset() == _ZERO:  # the common case ("...Z"): runs once per timestamp on every page
        return value
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00: valid text, no UTC instant Python can hold
        raise ValueError("timestamp is outside the range Python can hold in UTC") from None


def _none_to_empty_list(value: object) -> object:
    return [] if value is None else value


def _none_to_empty_dict(value: object) -> object:
    return {} if value is None else value


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp that is always timezone-aware UTC, whatever zone (or none) the API sent."""


class TaskType(str, enum.Enum):
    """The task types Debitura documents. The server may send others: see :class:`Task`."""

    REPLY_TO_CHAT = "ReplyToChat"
    CLIENT_INPUT_REQUIRED = "ClientInputRequired"
    MORE_INFO_NEEDED = "MoreInfoNeeded"
    SELECT_QUOTE_WINNER = "SelectQuoteWinner"
    REVIEW_PARTNER = "ReviewPartner"
    SIGN_CONTRACT = "SignContract"
    ASSIGN_BANK_ACCOUNT = "AssignBankAccount"
    CASE_VALIDATION_NEEDS_INFO = "CaseValidationNeedsInfo"
    GENERIC = "Generic"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def known(cls) -> tuple[str, ...]:
        """Every documented type name."""
        return tuple(member.value for member in cls)

    @classmethod
    def account_level(cls) -> frozenset[str]:
        """Types raised on the whole account (``caseId`` null); they block every case."""
        return _ACCOUNT_LEVEL

    @classmethod
    def chat_driven(cls) -> frozenset[str]:
        """Types an integration can resolve itself with ``POST /cases/{caseId}/chats``."""
        return _CHAT_DRIVEN

    @classmethod
    def is_account_level_type(cls, type_name: str | None) -> bool:
        """Whether ``type_name`` is a documented account-level type.

        :param type_name: a task's ``type``.
        """
        return type_name in _ACCOUNT_LEVEL

    @classmethod
    def is_api_resolvable_type(cls, type_name: str | None) -> bool:
        """Whether ``type_name`` is one of the chat-driven types.

        :param type_name: a task's ``type``.
        """
        return type_name in _CHAT_DRIVEN


_ACCOUNT_LEVEL = frozenset({TaskType.SIGN_CONTRACT.value, TaskType.ASSIGN_BANK_ACCOUNT.value})
_CHAT_DRIVEN = frozenset(
    {TaskType.REPLY_TO_CHAT.value, TaskType.CLIENT_INPUT_REQUIRED.value, TaskType.MORE_INFO_NEEDED.value}
)


# -- the provider's one vocabulary for "open" and "account-level" (used on models and on API dicts alike) --


def is_open_status(status: str | None) -> bool:
    """The one "open" rule: status null or "Open" (a gate must not open on a task it cannot classify).

    :param status: a task's ``status``, nullable in the spec.
    """
    return status is None or status == "Open"


def is_account_level_task(type_name: str | None, case_id: str | None) -> bool:
    """A documented account-level type with no case: such a task blocks every case.

    A SignContract that does carry a caseId belongs to that case alone. The gates add one rule on top
    (:func:`airflow_provider_debitura.gate.records.is_account_level`): a caseless task of a type this
    provider does not know, without a ``leadId``, blocks too (doubt never opens a gate;
    docs/gates-unknown-types.md); a lead's task (SelectQuoteWinner) blocks no case gate.

    :param type_name: the task's ``type``.
    :param case_id: the task's ``caseId``.
    """
    return case_id is None and type_name in _ACCOUNT_LEVEL


class TaskStatus(str, enum.Enum):
    """``TaskDto.status`` values."""

    OPEN = "Open"
    SOLVED = "Solved"

    def __str__(self) -> str:
        return self.value


class ChatRole(enum.IntEnum):
    """``ChatDto.role``: who wrote a message (the spec's enum 0, 1, 2; other values parse as plain ints)."""

    PARTNER = 0
    CREDITOR = 1
    MANAGED_BY_PARTNER = 2


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=True,
        # Build validators on first use (in a worker), not when a DAG file imports the provider.
        defer_build=True,
    )

    def to_api_dict(self) -> dict[str, Any]:
        """The API's own JSON shape (camelCase, ISO timestamps): what goes into XCom."""
        return self.model_dump(mode="json", by_alias=True)


class TaskAction(ApiModel):
    """``TaskActionDto``: both fields are nullable in the spec; a null one means "no usable API action"."""

    method: str | None = None
    path: str | None = None

    @property
    def is_usable(self) -> bool:
        """True when both the method and the path are given (non-blank)."""
        return bool((self.method or "").strip() and (self.path or "").strip())


class Task(ApiModel):
    """One entry of the live work queue (``TaskDto``).

    ``type`` is a plain string so that a type this provider has never heard of still parses;
    compare it with :class:`TaskType` members or their string values. ``id`` and ``dateCreated``
    are needed to use a task at all (de-duplication, ordering, "already answered"): a record without
    them is rejected (see :func:`parse_records`), everything else may be null.
    """

    id: str
    type: str | None = None
    type_label: str | None = None
    title: str | None = None
    description: str | None = None
    status: str | None = None
    case_id: str | None = None
    case_reference: str | None = None
    lead_id: str | None = None
    deadline: UtcDateTime | None = None
    date_created: UtcDateTime
    date_solved: UtcDateTime | None = None
    solution_url: str | None = None
    action: TaskAction | None = None

    @property
    def is_account_level(self) -> bool:
        """See :func:`is_account_level_task`."""
        return is_account_level_task(self.type, self.case_id)

    @property
    def is_api_resolvable(self) -> bool:
        """The type is one of the chat-driven types (see :meth:`TaskType.chat_driven`)."""
        return TaskType.is_api_resolvable_type(self.type)

    @property
    def has_api_action(self) -> bool:
        """The server offers an API call for this task: ``action`` with a method and a path.

        False means "no API action": resolve it through ``solution_url``. This says nothing about
        whether the action is safe to follow (the reply operator checks that it is the task's own
        case chat).
        """
        return self.action is not None and self.action.is_usable

    @property
    def is_known_type(self) -> bool:
        """The type is one Debitura documents (:class:`TaskType`)."""
        return self.type in TaskType.known()

    @property
    def is_open(self) -> bool:
        """See :func:`is_open_status`."""
        return is_open_status(self.status)


class PageData(ApiModel):
    """``PageData``: every field is optional in the spec, so an absent one is None, never a guessed 0."""

    total_results: int | None = None
    page_size: int | None = None
    current_page: int | None = None
    response_count: int | None = None
    total_pages: int | None = None


class ChatUser(ApiModel):
    """``UserRelationDto``: the author of a chat message."""

    id: int | str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    date_created: UtcDateTime | None = None
    date_updated: UtcDateTime | None = None


class ChatMessage(ApiModel):
    """``ChatDto``: one message of a case chat. ``role`` is an int; unknown values parse."""

    id: str
    date_created: UtcDateTime
    date_updated: UtcDateTime | None = None
    role: int | None = None
    role_label: str | None = None
    message: str | None = None
    is_seen: bool | None = None
    user: ChatUser | None = None

    @property
    def is_from_creditor(self) -> bool:
        """Written by the creditor (role 1): that is, through this API or the Creditor app."""
        return self.role == ChatRole.CREDITOR

    @property
    def is_from_partner(self) -> bool:
        """Written by the collection partner (role 0) or managed by the partner (role 2)."""
        return self.role in (ChatRole.PARTNER, ChatRole.MANAGED_BY_PARTNER)


class Case(ApiModel):
    """The fields of ``InvoiceDto`` that DAGs use; everything else the API sends is kept too."""

    id: str
    reference: str | None = None
    creditor_reference: str | None = None
    lifecycle: str | None = None
    close_code: str | None = None
    current_engagement_phase: str | None = None
    currency: str | None = None
    gross_amount: float | None = None
    remainder: float | None = None
    is_test_case: bool | None = None
    date_created: UtcDateTime | None = None
    date_updated: UtcDateTime | None = None
    due_date: UtcDateTime | None = None
    solution_url: str | None = None


class Creditor(ApiModel):
    """``GET /me``: the account the API key belongs to."""

    id: str | None = None
    company_name: str | None = None
    company_registration_number: str | None = None
    country: str | None = None
    office_email: str | None = None


class User(ApiModel):
    """``CollectionPartnerUserDto`` of ``GET /users``: a member of the API key's team."""

    id: str | None = None
    name: str | None = None
    email: str | None = None


class BusinessError(ApiModel):
    """``BusinessErrorApiDTO``: one structured error of an error body."""

    type: str | None = None
    message: str | None = None
    solution_url: str | None = None


class ApiError(ApiModel):
    """An error body: ``ApiErrorResponseDto``, the 429 body, or RFC 7807 ``ProblemDetails``."""

    error: str | None = None
    message: str | None = None
    business_errors: Annotated[list[BusinessError], BeforeValidator(_none_to_empty_list)] = []
    retry_after: float | None = None
    title: str | None = None
    detail: str | None = None

    def summary(self) -> str:
        """One short line with what the server said: its messages, then the error labels in brackets.

        The API dual-writes (``error``/``message`` and the same again in ``businessErrors``), so
        repeats are dropped.
        """
        messages = _distinct([self.message, self.detail, *(be.message for be in self.business_errors)])
        labels = _distinct([self.error, self.title, *(be.type for be in self.business_errors)])
        labels = [label for label in labels if not any(label in m for m in messages)]
        if not messages:
            return "; ".join(labels)
        text = "; ".join(m.rstrip(".") for m in messages)
        return f"{text} ({', '.join(labels)})" if labels else text


def _distinct(parts: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


# -- one record at a time: isolation of what cannot be understood ---------------------------------------

RejectedScope = Literal["case", "account", "any", "none"]


@dataclass(frozen=True)
class RejectedRecord:
    """A record of a list that could not be understood, with what could still be read of it.

    :param what: the kind of record ("task", "chat message", "case", "user").
    :param reason: why it was rejected (field and problem; never the record's text).
    :param id: its ``id``, when that is a string.
    :param type: its ``type``, when that is a string.
    :param case_id: its ``caseId``, when that is a non-empty string.
    :param case_id_unreadable: ``caseId`` is present but not a string (e.g. ``42``): it may belong to any case.
    :param type_unreadable: ``type`` is present but not a string.
    """

    what: str
    reason: str
    id: str | None = None
    type: str | None = None
    case_id: str | None = None
    case_id_unreadable: bool = False
    type_unreadable: bool = False

    @property
    def scope(self) -> RejectedScope:
        """Which case gates a rejected *task* may concern, by the same rules as a readable task.

        ``"case"``: its own case only. ``"account"``: every gate that counts account-level tasks (no
        case, and an account-level type or a type that cannot be read). ``"any"``: every gate (the
        caseId cannot be read, or the record is not an object at all). ``"none"``: no gate (caseless,
        of a readable type that is not account-level, e.g. a lead's task).
        """
        if self.case_id is not None:
            return "case"
        if self.case_id_unreadable:
            return "any"
        if self.type_unreadable or TaskType.is_account_level_type(self.type):
            return "account"
        return "none"

    def affects_case(self, case_id: str, *, include_account_tasks: bool = True) -> bool:
        """Whether a gate on ``case_id`` cannot tell its verdict because of this record.

        :param case_id: the gate's case GUID.
        :param include_account_tasks: whether the gate counts account-level tasks.
        """
        scope = self.scope
        if scope == "case":
            return (self.case_id or "").strip().lower() == case_id.strip().lower()
        return scope == "any" or (scope == "account" and include_account_tasks)

    def describe(self) -> str:
        """One line for logs and reports: kind, id (or what is known), reason."""
        known = [f"id {self.id}" if self.id else "no readable id"]
        if self.type:
            known.append(f"type {self.type}")
        if self.case_id:
            known.append(f"case {self.case_id}")
        return f"{self.what} ({', '.join(known)}): {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (XCom, trigger events)."""
        return {
            "what": self.what,
            "reason": self.reason,
            "id": self.id,
            "type": self.type,
            "caseId": self.case_id,
            "scope": self.scope,
        }


M = TypeVar("M", bound=BaseModel)


class Records(list[M]):
    """A list of parsed records that also carries the ones that were set aside (``rejected``).

    It is a plain list for every other purpose, so ``tasks == []``, ``len(tasks)`` and iteration work.

    :param items: the records that parsed.
    :param rejected: the records that could not be understood.
    """

    rejected: tuple[RejectedRecord, ...]

    def __init__(self, items: Iterable[M] = (), rejected: Iterable[RejectedRecord] = ()) -> None:
        super().__init__(items)
        self.rejected = tuple(rejected)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _reason(exc: ValidationError) -> str:
    """The first problems of a validation error: field path and message, never the input value."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:2]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def rejected_record(item: object, what: str, reason: str) -> RejectedRecord:
    """What can still be read of a record that could not be parsed.

    :param item: the raw JSON value.
    :param what: the kind of record, for messages.
    :param reason: why it was rejected.
    """
    if not isinstance(item, Mapping):
        return RejectedRecord(what, f"not a JSON object ({type(item).__name__})", case_id_unreadable=True)
    raw_type, raw_case = item.get("type"), item.get("caseId")
    return RejectedRecord(
        what,
        reason,
        id=_str_or_none(item.get("id")),
        type=_str_or_none(raw_type),
        case_id=_str_or_none(raw_case),
        case_id_unreadable=raw_case not in (None, "") and not isinstance(raw_case, str),
        type_unreadable=raw_type is not None and not isinstance(raw_type, str),
    )


_LOGGED: OrderedDict[str, None] = OrderedDict()
_LOGGED_MAX = 10_000


def _log_once(record: RejectedRecord, item: object) -> None:
    """Warn about a rejected record the first time this process sees it; later sightings go to debug, so a
    poll every minute does not repeat the warning (bounded memory: the oldest keys are forgotten)."""
    if record.id:
        key = f"{record.what}:{record.id}:{record.reason}"
    else:
        raw = json.dumps(item, sort_keys=True, default=str).encode()
        key = f"{record.what}:{hashlib.sha1(raw, usedforsecurity=False).hexdigest()}"
    if key in _LOGGED:
        _LOGGED.move_to_end(key)
        log.debug("Skipped again: %s", record.describe())
        return
    _LOGGED[key] = None
    if len(_LOGGED) > _LOGGED_MAX:
        _LOGGED.popitem(last=False)
    log.warning("Skipped a %s the provider cannot read (the rest is used): %s", record.what, record.describe())


def parse_records(model: type[M], items: object, what: str) -> Records[M]:
    """Parse a JSON array one record at a time: the good ones are returned, the rest are ``rejected``.

    ``null`` is an empty list. Anything but an array raises ``ValueError`` (the whole body is wrong).
    Every rejected record is logged once per process (see :func:`_log_once`).

    :param model: the model of one record.
    :param items: the JSON value of the array.
    :param what: the kind of record, for messages ("task", "chat message").
    """
    if items is None:
        return Records()
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON array of {what}s, got {type(items).__name__}")
    good: list[M] = []
    rejected: list[RejectedRecord] = []
    validate = model.model_validate
    for item in items:
        try:
            good.append(validate(item))
        except ValidationError as exc:
            record = rejected_record(item, what, _reason(exc))
            _log_once(record, item)
            rejected.append(record)
    return Records(good, rejected)


class _Envelope(ApiModel):
    """A paged list envelope: ``page`` (``pageData`` in some docs) plus one array of records."""

    page: Annotated[PageData, BeforeValidator(_none_to_empty_dict)] = Field(default_factory=PageData)
    _rejected: tuple[RejectedRecord, ...] = PrivateAttr(default=())

    items_field: ClassVar[str] = ""
    item_model: ClassVar[type[BaseModel]] = BaseModel
    what: ClassVar[str] = ""

    @property
    def rejected(self) -> tuple[RejectedRecord, ...]:
        """The records of this page that could not be understood."""
        return self._rejected

    @property
    def raw_count(self) -> int:
        """How many records the server sent on this page, readable or not."""
        return len(getattr(self, self.items_field)) + len(self._rejected)

    @classmethod
    def from_api(cls, payload: object) -> Self:
        """Parse a list body (``TaskListDto``, ``InvoiceListDto``, ``UserListDto``), record by record: one
        record that cannot be understood goes to :attr:`rejected` instead of failing the page.

        :param payload: the decoded JSON body.
        """
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        if "page" not in payload and "pageData" in payload:
            payload = {k: v for k, v in payload.items() if k != "pageData"} | {"page": payload["pageData"]}
        try:
            return cls.model_validate(payload)  # the fast path: every record is fine
        except ValidationError:
            pass
        name = to_camel(cls.items_field)
        envelope = cls.model_validate({k: v for k, v in payload.items() if k != name})  # a broken page raises
        records = parse_records(cls.item_model, payload.get(name), cls.what)
        result = envelope.model_copy(update={cls.items_field: list(records)})
        result._rejected = records.rejected
        return result


class TaskPage(_Envelope):
    """The ``GET /tasks`` envelope (``TaskListDto``) with its unreadable records in ``rejected``."""

    tasks: Annotated[list[Task], BeforeValidator(_none_to_empty_list)] = []

    items_field = "tasks"
    item_model = Task
    what = "task"


class CasePage(_Envelope):
    """The ``GET /cases`` envelope (``InvoiceListDto``) with its unreadable records in ``rejected``."""

    cases: Annotated[list[Case], BeforeValidator(_none_to_empty_list)] = []

    items_field = "cases"
    item_model = Case
    what = "case"


class UserPage(_Envelope):
    """The ``GET /users`` envelope (``UserListDto``) with its unreadable records in ``rejected``."""

    users: Annotated[list[User], BeforeValidator(_none_to_empty_list)] = []

    items_field = "users"
    item_model = User
    what = "user"
