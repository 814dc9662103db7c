"""Checks of user-supplied parameters, shared by the hook, the sensor and the operators.

They run before any request, so a typo fails the task at once with a message that names the
parameter, the value and the fix, instead of a 400 from the API (or, worse, a filter that
silently matches nothing).
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, overload

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.models import TaskStatus, TaskType

MAX_CHAT_MESSAGE_LENGTH = 10_000
"""Debitura's limit on ``SendChatRequest.message`` (the docs ask for 1 to 10,000 characters)."""

log = logging.getLogger(__name__)

_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def validate_guid(name: str, value: str) -> str:
    """The canonical form of a case GUID, or a config error that names the reference parameters instead.

    :param name: the parameter, for the error.
    :param value: the value given.
    """
    try:
        return str(uuid.UUID(str(value).strip()))
    except (ValueError, AttributeError, TypeError):
        raise DebituraConfigError(
            f"{name}={value!r} is not a Debitura case id (a GUID such as "
            "'3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b'). To name a case by your own reference use "
            "creditor_reference=, by Debitura's 8-character reference use case_reference=."
        ) from None


@dataclass(frozen=True)
class CaseSelector:
    """Exactly one way of naming a case.

    :param case_id: Debitura's case GUID.
    :param creditor_reference: the creditor's own reference.
    :param case_reference: Debitura's 8-character reference.
    """

    case_id: str | None = None
    creditor_reference: str | None = None
    case_reference: str | None = None

    @property
    def description(self) -> str:
        """``name='value'`` of the identifier given, for messages."""
        for name in ("case_id", "creditor_reference", "case_reference"):
            value = getattr(self, name)
            if value:
                return f"{name}={value!r}"
        return "no case"


def case_selector(
    case_id: str | None = None,
    creditor_reference: str | None = None,
    case_reference: str | None = None,
    *,
    required: bool = True,
) -> CaseSelector | None:
    """Validate that exactly one of the three case parameters is given (or none, when not required).

    :param case_id: Debitura's case GUID.
    :param creditor_reference: the creditor's own reference.
    :param case_reference: Debitura's 8-character reference.
    :param required: whether giving none is an error.
    """
    # A creditor reference is the creditor's own text: used exactly as given (a trailing space included; a
    # lookup that finds nothing says so). The GUID and Debitura's reference have no spaces to keep.
    given = {
        name: str(value) if name == "creditor_reference" else str(value).strip()
        for name, value in (
            ("case_id", case_id),
            ("creditor_reference", creditor_reference),
            ("case_reference", case_reference),
        )
        if value is not None and str(value).strip() != ""
    }
    if len(given) > 1:
        raise DebituraConfigError(
            f"Give exactly one of case_id, creditor_reference or case_reference; got {given}. Remove all but one."
        )
    if not given:
        if required:
            raise DebituraConfigError(
                "No case given: set exactly one of case_id (Debitura GUID), creditor_reference "
                "(your own reference) or case_reference (Debitura's 8-character reference)."
            )
        return None
    if "case_id" in given:
        return CaseSelector(case_id=validate_guid("case_id", given["case_id"]))
    return CaseSelector(**given)


def task_types(name: str, values: Iterable[str] | str | None) -> list[str] | None:
    """Validate a task-type filter: known types pass, a near-miss fails with a suggestion, other
    well-formed names pass with a warning (Debitura adds types over time).

    :param name: the parameter, for messages.
    :param values: the types (a list, or one comma/space separated string), or None for no filter.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [v for v in re.split(r"[,\s]+", values) if v]
    result: list[str] = []
    known = TaskType.known()
    lower_known = {k.lower(): k for k in known}
    for raw in values:
        value = str(raw.value if isinstance(raw, TaskType) else raw).strip()
        if value in known:
            result.append(value)
            continue
        close = difflib.get_close_matches(value, known, n=1, cutoff=0.75)
        if value.lower() in lower_known or close:
            suggestion = lower_known.get(value.lower()) or close[0]
            raise DebituraConfigError(
                f"{name}: {value!r} is not a Debitura task type; did you mean {suggestion!r}? "
                f"Known types: {', '.join(known)}."
            )
        if not _TYPE_NAME.match(value):
            raise DebituraConfigError(
                f"{name}: {value!r} is not a well-formed task type name (letters and digits, e.g. "
                f"'ReplyToChat'). Known types: {', '.join(known)}."
            )
        log.warning(
            "%s: %r is not a task type this provider knows (%s); passing it on, since Debitura adds new "
            "types over time.",
            name,
            value,
            ", ".join(known),
        )
        result.append(value)
    return list(dict.fromkeys(result))


def task_status(name: str, value: str | None) -> str | None:
    """A task status filter, in the API's spelling (``Open``, ``Solved``), case-insensitively.

    :param name: the parameter, for the error.
    :param value: the value given, or None for no filter.
    """
    if value is None:
        return None
    allowed = [s.value for s in TaskStatus]
    text = str(value.value if isinstance(value, TaskStatus) else value).strip()
    for status in allowed:
        if text.lower() == status.lower():
            return status
    raise DebituraConfigError(f"{name}={value!r} is not a task status; use one of {allowed}.")


def connection_id(value: object) -> str:
    """A non-empty connection id.

    :param value: the value given.
    """
    if not isinstance(value, str) or not value.strip():
        raise DebituraConfigError(
            f"debitura_conn_id={value!r} must name an Airflow connection, e.g. 'debitura_default'."
        )
    return value.strip()


@overload
def positive_seconds(name: str, value: float | timedelta | str, *, allow_none: Literal[False] = False) -> float: ...


@overload
def positive_seconds(name: str, value: float | timedelta | str | None, *, allow_none: bool) -> float | None: ...


def positive_seconds(name: str, value: float | timedelta | str | None, *, allow_none: bool = False) -> float | None:
    """A positive number of seconds (a number, numeric text or a ``timedelta``), or None when allowed.

    :param name: the parameter, for the error.
    :param value: the value given.
    :param allow_none: whether None passes (as None).
    """
    if value is None and allow_none:
        return None
    seconds: object = value.total_seconds() if isinstance(value, timedelta) else value
    try:
        number = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise DebituraConfigError(f"{name}={value!r} must be a positive number of seconds.")
    return number


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", "", "none"}


def as_bool(name: str, value: Any) -> bool:
    """A boolean parameter. Template fields render to strings ("True"), so those are accepted too.

    :param name: the parameter, for the error.
    :param value: the value given.
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DebituraConfigError(f"{name}={value!r} is not a boolean; use True or False.")


def as_limit(name: str, value: Any) -> int | None:
    """A whole number >= 0, or None for "no limit" (also from a rendered template: "None", "").

    :param name: the parameter, for the error.
    :param value: the value given.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, bool):
        raise DebituraConfigError(f"{name}={value!r} must be a whole number >= 0, or None for no limit.")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        number = -1
    if number < 0 or (isinstance(value, float) and value != number):
        raise DebituraConfigError(f"{name}={value!r} must be a whole number >= 0, or None for no limit.")
    return number


_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"})


def has_visible_text(text: str) -> bool:
    """True when ``text`` holds at least one character a reader can see: whitespace, zero-width
    spaces and joiners, byte-order marks and other format or control characters do not count.

    :param text: the text.
    """
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text)


def chat_message(text: Any, *, where: str = "message", error: type[DebituraConfigError] = DebituraConfigError) -> str:
    """The one check of a chat message before it is sent: visible text, at most 10,000 characters.

    :param text: the message.
    :param where: what the message is, for the error (e.g. "the combined reply for case INV-1").
    :param error: the error class to raise (the reply operator raises its template error).
    """
    if not isinstance(text, str) or not has_visible_text(text):
        raise error(
            f"{where} is empty (nothing visible once whitespace and zero-width characters are ignored); "
            f"Debitura needs 1 to {MAX_CHAT_MESSAGE_LENGTH:,} characters of text."
        )
    if len(text) > MAX_CHAT_MESSAGE_LENGTH:
        raise error(
            f"{where} is {len(text):,} characters long; Debitura accepts at most {MAX_CHAT_MESSAGE_LENGTH:,}. "
            "Shorten the reply template (or truncate inserted values, e.g. {{ partner_message | truncate(500) }})."
        )
    return text
