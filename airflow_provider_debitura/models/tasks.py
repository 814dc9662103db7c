"""A task of the work queue (``TaskDto``), its types and statuses, and the provider's one vocabulary for
"open" and "account-level" (used on models and on API dicts alike)."""

from __future__ import annotations

import enum

from airflow_provider_debitura.models.base import ApiModel, UtcDateTime


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
