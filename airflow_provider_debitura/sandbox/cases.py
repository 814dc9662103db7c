"""``GET /cases``: the case listing's query (filters, sort, paging) and its page, as the spec describes them."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_debitura.sandbox.dto import ApiError, page_data
from airflow_provider_debitura.sandbox.ids import is_guid, normalize_guid
from airflow_provider_debitura.sandbox.records import LIFECYCLES, Case

#: ``Sort`` field name -> InvoiceDto key. Unknown fields are silently ignored, as the spec says.
SORT_FIELDS = {
    "datecreated": "dateCreated",
    "dateupdated": "dateUpdated",
    "datefinished": "dateFinished",
    "datecollectionstarted": "dateCollectionStarted",
    "duedate": "dueDate",
    "date": "date",
    "grossamount": "grossAmount",
    "remainder": "remainder",
    "interestfees": "interestFees",
    "collectionfees": "collectionFees",
    "reminderfees": "reminderFees",
    "lifecycle": "lifecycle",
    "closecode": "closeCode",
}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


#: Any accepted spelling (name or description, case- and space-insensitive) -> the filter name.
_STATUS_SPELLINGS = {_squash(k): k for k in LIFECYCLES} | {_squash(v): k for k, v in LIFECYCLES.items()}


@dataclass
class CaseQuery:
    """A parsed ``GET /cases`` query.

    :param page: the 1-based page.
    :param page_size: the page size (1..100).
    :param ids: only these case ids, None for all.
    :param statuses: only these lifecycle filter names, None for all.
    :param division_ids: only these division ids, None for all.
    :param debtor_ids: only these debtor ids, None for all.
    :param sort: ``(InvoiceDto key, descending)`` pairs, first key first.
    """

    page: int = 1
    page_size: int = 10
    ids: set[str] | None = None
    statuses: set[str] | None = None
    division_ids: set[str] | None = None
    debtor_ids: set[str] | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)


def _split(values: Iterable[str]) -> list[str]:
    """Repeated keys and comma-separated lists both work (the spec's description and schema disagree)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_guids(values: list[str], name: str) -> set[str] | None:
    """A GUID list parameter; None when absent.

    :param values: the parameter's values.
    :param name: its name, for the error.
    """
    items = _split(values)
    if not items:
        return None
    for item in items:
        if not is_guid(item):
            raise ApiError(400, "InvalidParameter", f"The value '{item}' is not valid for {name}.")
    return {normalize_guid(item) for item in items}


def parse_statuses(values: list[str]) -> set[str] | None:
    """The ``Statuses`` filter as lifecycle filter names; None when absent.

    :param values: the parameter's values.
    """
    items = _split(values)
    if not items:
        return None
    out = set()
    for item in items:
        name = _STATUS_SPELLINGS.get(_squash(item))
        if name is None:
            allowed = ", ".join(LIFECYCLES)
            raise ApiError(400, "InvalidStatus", f"Invalid status '{item}'. Allowed values: {allowed}.")
        out.add(name)
    return out


def parse_sort(value: str | None) -> list[tuple[str, bool]]:
    """``Field[:asc|desc][,Field2[:asc|desc]]`` as ``[(dto key, descending)]``; unknown fields are ignored.

    :param value: the ``Sort`` value, or None.
    """
    keys: list[tuple[str, bool]] = []
    for part in _split([value or ""]):
        name, _, direction = part.partition(":")
        key = SORT_FIELDS.get(name.strip().lower())
        if key is not None:
            keys.append((key, direction.strip().lower() == "desc"))
    return keys


def _matches(case: Case, query: CaseQuery) -> bool:
    dto = case.dto
    if query.ids is not None and case.id not in query.ids:
        return False
    if query.statuses is not None:
        lifecycle = _STATUS_SPELLINGS.get(_squash(str(dto.get("lifecycle") or "")))
        if lifecycle not in query.statuses:
            return False
    division = dto.get("creditorDivisionId")
    if query.division_ids is not None and (not is_guid(division) or normalize_guid(division) not in query.division_ids):
        return False
    debtor = (dto.get("debtor") or {}).get("id") if isinstance(dto.get("debtor"), dict) else None
    return query.debtor_ids is None or (is_guid(debtor) and normalize_guid(debtor) in query.debtor_ids)


def _sort_value(value: Any) -> tuple[int, float, str]:
    # Nulls first (as SQL Server sorts them ascending), then numbers, then text; never compares across types.
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _sorted(cases: list[Case], keys: list[tuple[str, bool]]) -> list[Case]:
    # Stable sorts from the last key to the first; the default (and tie-break) order is creation, then id.
    out = sorted(cases, key=lambda c: (c.dto.get("dateCreated") or "", c.id))
    for key, descending in reversed(keys):

        def value(case: Case, key: str = key) -> tuple[int, float, str]:
            return _sort_value(case.dto.get(key))

        out.sort(key=value, reverse=descending)
    return out


def cases_page(cases: list[Case], query: CaseQuery) -> dict[str, Any]:
    """The InvoiceListDto page ``{"page": PageData, "cases": [InvoiceDto]}`` for ``query``.

    :param cases: the live cases.
    :param query: the parsed query.
    """
    selected = _sorted([c for c in cases if _matches(c, query)], query.sort)
    start = (query.page - 1) * query.page_size
    chunk = selected[start : start + query.page_size]
    return {
        "page": page_data(len(selected), query.page, query.page_size, len(chunk)),
        "cases": [copy.deepcopy(c.dto) for c in chunk],
    }
