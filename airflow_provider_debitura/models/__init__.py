"""Typed views of what the Debitura Customer API returns.

Python attributes are snake_case; JSON is the API's camelCase in both directions
(``Task.model_validate(api_json)`` and ``task.to_api_dict()``). The models follow the official
spec's nullability (almost every field may be null or absent) and keep unknown fields, so a task
that round-trips through XCom loses nothing the server sent. Lists are parsed one record at a time:
a record that cannot be understood is set aside as a :class:`RejectedRecord` on the result, never
fails the page (see ``docs/listing.md``).

Import from here; the modules say what they hold: :mod:`.tasks` (a task, its types and the "open" and
"account-level" rules), :mod:`.chats`, :mod:`.cases`, :mod:`.account` (``/me`` and ``/users``),
:mod:`.error_bodies`, :mod:`.record_lists` (record-by-record parsing) and :mod:`.pages` (the list envelopes),
on :mod:`.base` (``ApiModel``, ``UtcDateTime``).
"""

from __future__ import annotations

from airflow_provider_debitura.models.account import Creditor, User
from airflow_provider_debitura.models.base import ApiModel as ApiModel
from airflow_provider_debitura.models.base import UtcDateTime as UtcDateTime
from airflow_provider_debitura.models.cases import Case
from airflow_provider_debitura.models.chats import ChatMessage, ChatRole, ChatUser
from airflow_provider_debitura.models.error_bodies import ApiError, BusinessError
from airflow_provider_debitura.models.pages import CasePage, PageData, TaskPage, UserPage
from airflow_provider_debitura.models.record_lists import Records, RejectedRecord, parse_records
from airflow_provider_debitura.models.record_lists import RejectedScope as RejectedScope
from airflow_provider_debitura.models.record_lists import rejected_record as rejected_record
from airflow_provider_debitura.models.tasks import (
    Task,
    TaskAction,
    TaskStatus,
    TaskType,
    is_account_level_task,
    is_open_status,
)

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
