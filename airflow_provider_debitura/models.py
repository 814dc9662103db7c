"""Typed views of what the Debitura Customer API returns.

Python attributes are snake_case; JSON is the API's camelCase in both directions
(``Task.model_validate(api_json)`` and ``task.to_api_dict()``). The models are lenient
where the API is loose: unknown task types parse (the API says new types are additive),
naive timestamps are read as UTC (several endpoints send UTC instants without a zone),
``null`` lists become empty lists and unknown fields are kept rather than dropped, so a
task that round-trips through XCom loses nothing the server sent.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "ApiError",
    "BusinessError",
    "Case",
    "ChatMessage",
    "ChatRole",
    "ChatUser",
    "Creditor",
    "PageData",
    "Task",
    "TaskAction",
    "TaskPage",
    "TaskStatus",
    "TaskType",
    "User",
    "UserPage",
    "is_account_level_task",
    "is_open_status",
]


_ZERO = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if value.utcoffset() == _ZERO:  # the common case ("...Z"): runs once per timestamp on every page
        return value
    return value.astimezone(timezone.utc)


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


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
        return type_name in _ACCOUNT_LEVEL

    @classmethod
    def is_api_resolvable_type(cls, type_name: str | None) -> bool:
        return type_name in _CHAT_DRIVEN


_ACCOUNT_LEVEL = frozenset({TaskType.SIGN_CONTRACT.value, TaskType.ASSIGN_BANK_ACCOUNT.value})
_CHAT_DRIVEN = frozenset(
    {TaskType.REPLY_TO_CHAT.value, TaskType.CLIENT_INPUT_REQUIRED.value, TaskType.MORE_INFO_NEEDED.value}
)


# -- the provider's one vocabulary for "open" and "account-level" (used on models and on API dicts alike) --


def is_open_status(status: str | None) -> bool:
    """The one "open" rule. ``status`` is nullable in the spec: a task listed with ``status=Open`` whose
    status is null counts as open (a gate must not open on a task it cannot classify)."""
    return status is None or status == "Open"


def is_account_level_task(type_name: str | None, case_id: str | None) -> bool:
    """The one "account-level" rule: a documented account-level type (SignContract, AssignBankAccount)
    with no case. Such a task blocks every case. A caseless task of another type (a lead's
    SelectQuoteWinner, an unknown new type) is not account-level and blocks no case gate; a
    SignContract that does carry a caseId belongs to that case alone."""
    return case_id is None and type_name in _ACCOUNT_LEVEL


class TaskStatus(str, enum.Enum):
    OPEN = "Open"
    SOLVED = "Solved"

    def __str__(self) -> str:
        return self.value


class ChatRole(enum.IntEnum):
    """``ChatDto.role``: who wrote a message."""

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


class Task(ApiModel):
    """One entry of the live work queue (``TaskDto``).

    ``type`` is a plain string so that a type this provider has never heard of still
    parses; compare it with :class:`TaskType` members or their string values.
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
        return TaskType.is_api_resolvable_type(self.type)

    @property
    def is_known_type(self) -> bool:
        return self.type in TaskType.known()

    @property
    def is_open(self) -> bool:
        """See :func:`is_open_status`."""
        return is_open_status(self.status)


class PageData(ApiModel):
    total_results: int = 0
    page_size: int = 0
    current_page: int = 0
    response_count: int = 0
    total_pages: int = 0


class TaskPage(ApiModel):
    """The ``GET /tasks`` envelope. Some docs call ``page`` ``pageData``; both are read."""

    page: PageData
    tasks: Annotated[list[Task], BeforeValidator(_none_to_empty_list)] = []

    @classmethod
    def from_api(cls, payload: Any) -> TaskPage:
        if isinstance(payload, dict) and "page" not in payload and "pageData" in payload:
            payload = {k: v for k, v in payload.items() if k != "pageData"} | {"page": payload["pageData"]}
        return cls.model_validate(payload)


class ChatUser(ApiModel):
    id: int | str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    date_created: UtcDateTime | None = None
    date_updated: UtcDateTime | None = None


class ChatMessage(ApiModel):
    id: str
    date_created: UtcDateTime
    date_updated: UtcDateTime | None = None
    role: int | None = None
    role_label: str | None = None
    message: str | None = None
    is_seen: bool = False
    user: ChatUser | None = None

    @property
    def is_from_creditor(self) -> bool:
        return self.role == ChatRole.CREDITOR

    @property
    def is_from_partner(self) -> bool:
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
    id: str
    name: str | None = None
    email: str | None = None


class UserPage(ApiModel):
    page: PageData
    users: Annotated[list[User], BeforeValidator(_none_to_empty_list)] = []


class BusinessError(ApiModel):
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
        """One line with everything the server said, for exception messages."""
        parts = [p for p in (self.error, self.message, self.title, self.detail) if p]
        parts += [
            f"{be.type}: {be.message}" if be.type and be.message else (be.type or be.message or "")
            for be in self.business_errors
        ]
        seen: list[str] = []
        for part in parts:
            if part and part not in seen:
                seen.append(part)
        return "; ".join(seen)
