"""The paged list envelopes (``GET /tasks``, ``GET /cases``, ``GET /users``) and their ``PageData``."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, BeforeValidator, Field, PrivateAttr, ValidationError
from pydantic.alias_generators import to_camel
from typing_extensions import Self

from airflow_provider_debitura.models.account import User
from airflow_provider_debitura.models.base import ApiModel, _none_to_empty_dict, _none_to_empty_list
from airflow_provider_debitura.models.cases import Case
from airflow_provider_debitura.models.record_lists import RejectedRecord, parse_records
from airflow_provider_debitura.models.tasks import Task


class PageData(ApiModel):
    """``PageData``: every field is optional in the spec, so an absent one is None, never a guessed 0."""

    total_results: int | None = None
    page_size: int | None = None
    current_page: int | None = None
    response_count: int | None = None
    total_pages: int | None = None


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
