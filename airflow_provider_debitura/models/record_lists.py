"""Lists parsed one record at a time: a record that cannot be understood is set aside as a
:class:`RejectedRecord` (with what can still be read of it) and logged once, never fails the list."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from airflow_provider_debitura.models.tasks import TaskType

log = logging.getLogger(__name__)

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
