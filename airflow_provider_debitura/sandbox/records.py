"""In-memory records the sandbox keeps; rendered to wire JSON by :mod:`.dto`.

Kept free of Starlette so the store can be used (and unit tested) without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Task types resolved by posting a creditor chat message on the case.
CHAT_TASK_TYPES = frozenset({"ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"})
#: Task types that block the whole account and never carry a case.
ACCOUNT_TASK_TYPES = frozenset({"SignContract", "AssignBankAccount"})
#: The nine task types Debitura documents; scenarios may use other (future) names too.
DOCUMENTED_TASK_TYPES = (
    "ReplyToChat",
    "ClientInputRequired",
    "MoreInfoNeeded",
    "SelectQuoteWinner",
    "ReviewPartner",
    "SignContract",
    "AssignBankAccount",
    "CaseValidationNeedsInfo",
    "Generic",
)
TYPE_LABELS = {
    "ReplyToChat": "Reply to chat",
    "ClientInputRequired": "Client input required",
    "MoreInfoNeeded": "More info needed",
    "SelectQuoteWinner": "Select quote winner",
    "ReviewPartner": "Review partner",
    "SignContract": "Sign contract",
    "AssignBankAccount": "Assign bank account",
    "CaseValidationNeedsInfo": "Case needs more information",
    "Generic": "Task",
}
#: Task types raised on a lead (before a case exists): they may come without a case, with a ``leadId``.
LEAD_TASK_TYPES = frozenset({"SelectQuoteWinner"})
CHAT_ROLE_LABELS = {0: "Partner", 1: "Creditor", 2: "Managed by partner"}
TASK_STATUSES = ("Open", "Solved")
#: Case lifecycle filter names (``GET /cases?Statuses=``) and the description each case returns as ``lifecycle``.
#: Only "More Info Required" and "Collecting Quotes" are documented; the others are the name spelled out.
LIFECYCLES = {
    "PendingContractSigning": "Pending Contract Signing",
    "PendingVerificationInternal": "Pending Verification Internal",
    "PendingVerification": "Pending Verification",
    "NeedsAdditionalDetails": "More Info Required",
    "Leads": "Collecting Quotes",
    "LeadsQuoteGiven": "Quote Given",
    "Active": "Active",
    "Paused": "Paused",
    "Closed": "Closed",
    "Merged": "Merged",
}


@dataclass
class User:
    """A team member.

    :param id: the GUID ``GET /users`` shows.
    :param int_id: the int32 id ChatDto.user carries.
    :param first_name: first name.
    :param last_name: last name.
    :param email: email (how a chat post names its author).
    :param active: inactive users are listed but cannot post.
    """

    id: str
    int_id: int  # ChatDto.user.id is an int32 in the spec, unlike the GUID from GET /users
    first_name: str
    last_name: str
    email: str
    active: bool = True

    @property
    def name(self) -> str:
        """The full name."""
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class Case:
    """A case and its rendered InvoiceDto.

    :param id: the GUID.
    :param reference: Debitura's 8-character reference.
    :param creditor_reference: the creditor's own reference.
    :param dto: the InvoiceDto.
    :param task_ids: its tasks' ids.
    :param created: its creation time.
    :param removed: "deleted" or "merged" once removed by the control plane.
    """

    id: str
    reference: str
    creditor_reference: str
    dto: dict[str, Any]  # InvoiceDto, timestamps already formatted at load time
    task_ids: list[str] = field(default_factory=list)
    created: datetime | None = None
    #: "deleted" or "merged" once the control plane removed it (the API then answers 404 for it).
    removed: str | None = None


@dataclass(eq=False)
class Task:
    """A task; rendered as TaskDto by :func:`.dto.task_dto` (fields named as there, in snake case).

    :param id: the GUID.
    :param type: the type name.
    :param type_label: the human label.
    :param title: the title.
    :param description: the description.
    :param status: "Open" or "Solved".
    :param case_id: its case, None for account-level and lead tasks.
    :param case_reference: its case's creditor reference.
    :param lead_id: its lead (SelectQuoteWinner).
    :param deadline: the deadline.
    :param date_created: creation time.
    :param date_solved: solve time.
    :param solution_url: where a human solves it.
    :param action: the TaskActionDto, None for no API action.
    :param solve_due: monotonic due time of a scheduled solve.
    :param wire: merged verbatim into the rendered JSON.
    :param wire_omit: keys left out of the rendered JSON.
    """

    id: str
    type: str
    type_label: str | None
    title: str | None
    description: str | None
    status: str
    case_id: str | None
    case_reference: str | None
    lead_id: str | None
    deadline: datetime | None
    date_created: datetime
    date_solved: datetime | None
    solution_url: str | None
    action: dict[str, Any] | None
    #: Monotonic due time of a scheduled solve, so a second chat post doesn't reschedule it.
    solve_due: float | None = None
    #: Merged verbatim into the rendered TaskDto, and keys left out of it (odd-but-valid shapes).
    wire: dict[str, Any] | None = None
    wire_omit: tuple[str, ...] = ()

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Listing order: creation time, then id."""
        return (self.date_created, self.id)


@dataclass
class Chat:
    """A chat message on a case.

    :param id: the GUID.
    :param case_id: its case.
    :param date_created: when it was posted.
    :param role: 0 partner, 1 creditor, 2 managed by partner.
    :param message: the text.
    :param user: the ChatDto ``user`` object.
    :param is_seen: whether the creditor has seen it.
    """

    id: str
    case_id: str
    date_created: datetime
    role: int
    message: str
    user: dict[str, Any]
    is_seen: bool = False
