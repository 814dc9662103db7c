"""``shape="counts"``: the list operator's digest from the API's own totals, a fixed few requests at any queue size.

``shape="summary"`` reads every page (501 requests at 50,000 open tasks). ``shape="counts"`` on the account scope
asks ``GET /tasks`` once per task type in scope, page 1 only: its ``page.totalResults`` is that type's count and its
records (oldest first) are that type's oldest tasks. Types this package does not know (Debitura adds types) have no
filter of their own; they are what the account's unfiltered total leaves over, and those among the account's 100
oldest tasks are named. The unfiltered request goes first: when its one page holds the whole scope (fewer than 100
tasks, every one readable), everything is counted from it and the other requests are not sent. The plan per scope
and its cost are in :func:`count_plan`; the rules in docs/operators.md ("The list operator: shapes for XCom and
mapping").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_debitura.exceptions import DebituraMalformedResponseError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.exchange import Exchange, unwrap
from airflow_provider_debitura.hooks.paging import expected_count
from airflow_provider_debitura.models import RejectedRecord, Task, TaskPage, TaskType
from airflow_provider_debitura.operators.list_output import COUNTS, SUMMARY_OLDEST, digest, shape_of

__all__ = ["OTHER_TYPES", "CountPlan", "Counted", "TaskCounts", "count_plan", "counts_digest"]

OTHER_TYPES = "(other types)"
"""The ``by_type`` key of unknown-type tasks that were not among the account's oldest 100 (not seen, so unnamed)."""

TYPE_PAGE = SUMMARY_OLDEST
"""Records asked for per type: the type's oldest, enough for the digest's ``oldest``."""
ACCOUNT_LEVEL_PAGE = endpoints.MAX_PAGE_SIZE
"""Records asked for per account-level type: a full page, so ``account_level`` (caseless tasks of those types) is
exact up to 100 tasks of the type, at the same cost."""
ALL_PAGE = endpoints.MAX_PAGE_SIZE
"""Records asked for unfiltered: the account's oldest 100, where tasks of unknown types can be seen."""
_ALL = "(all)"
_CHAT = "(chat-driven)"


@dataclass(frozen=True)
class CountPlan:
    """The requests a count makes: one ``GET /tasks`` page 1 each, the same number at any queue size.

    :param status: the ``status`` filter.
    :param types: the types counted one by one (each its own request).
    :param chat_total: one request for the chat-driven types together (only their total is used: what the
        human-only count subtracts).
    :param unfiltered: one unfiltered request (the account's total, its oldest 100): the scope takes types this
        package does not know.
    """

    status: str
    types: tuple[str, ...]
    chat_total: bool = False
    unfiltered: bool = False

    @property
    def requests(self) -> int:
        """What the count costs: ``len(types) + chat_total + unfiltered`` requests."""
        return len(self.types) + self.chat_total + self.unfiltered

    def calls(self) -> list[tuple[str, endpoints.ApiCall[TaskPage]]]:
        """``(key, call)`` for every request: a type's name, ``(chat-driven)`` or ``(all)``."""
        calls = [(name, _page(self.status, [name], _page_size(name))) for name in self.types]
        if self.chat_total:
            calls.append((_CHAT, _page(self.status, sorted(TaskType.chat_driven()), 1)))
        if self.unfiltered:
            calls.append((_ALL, _page(self.status, None, ALL_PAGE)))
        return calls


def _page_size(type_name: str) -> int:
    return ACCOUNT_LEVEL_PAGE if TaskType.is_account_level_type(type_name) else TYPE_PAGE


def _page(status: str, types: Sequence[str] | None, size: int) -> endpoints.ApiCall[TaskPage]:
    return endpoints.get_tasks_page(status=status, types=types, page=1, page_size=size)


def count_plan(status: str | None, types: Sequence[str] | None, resolvable_only: bool, human_only: bool) -> CountPlan:
    """The cheapest plan that counts the scope exactly (as exactly as totals taken one after another can).

    - ``task_types`` (or ``api_resolvable_only``, which is the three chat-driven types): each type in scope, one
      request each; nothing else can be in scope. Cost: the number of types.
    - ``needs_human_only``: each known type that needs a human (6), the chat-driven types' total in one request,
      and the unfiltered total: unknown types = unfiltered - chat-driven - known human types. Cost: 8.
    - no filter: each known type (9) and the unfiltered total: unknown types = unfiltered - known types. Cost: 10.

    :param status: the ``status`` filter (None: ``Open``, the API's default, sent explicitly).
    :param types: the ``task_types`` (validated), or the chat-driven types for ``api_resolvable_only``; None: all.
    :param resolvable_only: ``api_resolvable_only``.
    :param human_only: ``needs_human_only``.
    """
    chat = TaskType.chat_driven()
    status = status or "Open"
    if types is not None:
        named = [
            t for t in dict.fromkeys(types) if (t in chat or not resolvable_only) and not (human_only and t in chat)
        ]
        return CountPlan(status, tuple(named))
    if human_only:
        return CountPlan(status, tuple(t for t in TaskType.known() if t not in chat), chat_total=True, unfiltered=True)
    return CountPlan(status, TaskType.known(), unfiltered=True)


@dataclass
class Counted:
    """The pages a count read, by key (see :meth:`CountPlan.calls`), and the records none of them could parse.

    :param plan: the plan that was read.
    :param pages: page 1 of each request.
    :param rejected: records set aside (``models.RejectedRecord``), from every page.
    """

    plan: CountPlan
    pages: dict[str, TaskPage] = field(default_factory=dict)
    rejected: list[RejectedRecord] = field(default_factory=list)

    @property
    def whole(self) -> TaskPage | None:
        """The unfiltered page when it holds every task of the account (fewer than a full page, each readable, as
        many as its ``totalResults``): then every count is read off it. None otherwise."""
        page = self.pages.get(_ALL)
        if page is None or page.rejected or page.raw_count >= ALL_PAGE:
            return None
        return page if page.page.total_results == page.raw_count else None

    @property
    def requests(self) -> int:
        """The requests the count sent."""
        return len(self.pages)

    def total(self, key: str) -> int:
        """``page.totalResults`` of one request (checked present when it was fed).

        :param key: a type's name, ``(chat-driven)`` or ``(all)``.
        """
        return self.pages[key].page.total_results or 0


class TaskCounts(Exchange[Counted]):
    """The requests of a :class:`CountPlan` as one exchange (``hooks.exchange``): one batch, each page checked.

    A page without ``totalResults``, one whose records contradict it, or a type-filtered page holding another
    type ends the count with :class:`~airflow_provider_debitura.exceptions.DebituraMalformedResponseError`: the
    totals cannot be trusted (``shape="summary"`` reads every page instead). An error a request ended with is
    raised.

    :param plan: what to read.
    """

    def __init__(self, plan: CountPlan) -> None:
        self._calls = plan.calls()
        first = [call for key, call in self._calls if key == _ALL]
        rest = [call for key, call in self._calls if key != _ALL]
        self._batches = [first, rest] if first else [rest]
        """The batches still to send: the unfiltered call first when the plan has one, then the others."""
        self._counted = Counted(plan)

    def next_calls(self) -> Sequence[endpoints.ApiCall[Any]]:
        """The next batch; none once the unfiltered page held everything (:attr:`Counted.whole`)."""
        if not self._batches or self._counted.whole is not None:
            return []
        return self._batches.pop(0)

    def feed(self, call: endpoints.ApiCall[Any], answer: object) -> None:
        """Take one page (an error it ended with is raised).

        :param call: the call, as :meth:`next_calls` returned it.
        :param answer: the parsed page, or the error.
        """
        page: TaskPage = unwrap(answer)
        key = next(name for name, sent in self._calls if sent is call)
        _check(call, key, page)
        self._counted.pages[key] = page
        self._counted.rejected.extend(page.rejected)

    def result(self) -> Counted:
        """The pages, once every call was answered."""
        return self._counted


def _check(call: endpoints.ApiCall[Any], key: str, page: TaskPage) -> None:
    """Refuse a page whose total cannot be used (see :class:`TaskCounts`)."""
    total = page.page.total_results
    size = int(dict(call.params)["PageSize"])
    wanted = None if key == _ALL else TaskType.chat_driven() if key == _CHAT else {key}
    problem = None
    if total is None or total < 0:
        problem = "has no page.totalResults"
    elif page.raw_count != expected_count(total, 1, size):
        problem = f"holds {page.raw_count} records but its totalResults {total} says {expected_count(total, 1, size)}"
    elif wanted is not None and any(t.type not in wanted for t in page.tasks):
        problem = "holds tasks of other types (the type filter was not applied)"
    if problem is not None:
        query = "&".join(f"{k}={v}" for k, v in call.params)
        raise DebituraMalformedResponseError(
            f"Debitura API GET /tasks?{query} {problem}: shape='counts' counts from the API's totals, which this "
            "answer does not give. Use shape='summary', which reads every page.",
            method=call.method,
            path=call.path,
        )


def counts_digest(counted: Counted) -> dict[str, Any]:
    """The digest (``list_output.digest``: the keys of ``shape="summary"``, ``cases`` None) from the totals read.

    ``by_type``: each type's total; unknown types (only in an open scope) by name with their count among the
    account's 100 oldest, and the rest of ``unfiltered - known`` (clamped at 0) under :data:`OTHER_TYPES`.
    ``account_level``: caseless tasks of the account-level types on their page, plus any past it.
    ``oldest``: the 20 oldest of the per-type pages and of the unknown-type tasks seen. When the unfiltered page
    held every task (:attr:`Counted.whole`), the summary of those in scope instead (``counted_from="tasks"``).

    :param counted: what :class:`TaskCounts` read.
    """
    plan = counted.plan
    if (whole := counted.whole) is not None:  # every task read: the summary of those in scope
        human_only = plan.chat_total  # only the needs_human_only plan counts the chat-driven types apart
        summary: dict[str, Any] = shape_of([t for t in whole.tasks if not (human_only and t.is_api_resolvable)], COUNTS)
        return summary
    by_type: Counter[str] = Counter({name: counted.total(name) for name in plan.types})
    oldest: list[Task] = [t for name in plan.types for t in counted.pages[name].tasks]
    if plan.unfiltered:
        unknown = [t for t in counted.pages[_ALL].tasks if not t.is_known_type]
        seen = Counter(t.type or "(none)" for t in unknown)
        known = sum(by_type.values()) + (counted.total(_CHAT) if plan.chat_total else 0)
        by_type.update(seen)
        by_type[OTHER_TYPES] = max(0, counted.total(_ALL) - known - sum(seen.values()))
        oldest += unknown
    return digest(
        by_type,
        cases=None,
        api_resolvable=sum(n for name, n in by_type.items() if TaskType.is_api_resolvable_type(name)),
        account_level=sum(_account_level(counted, name) for name in plan.types),
        oldest=oldest,
        counted_from="totals",
    )


def _account_level(counted: Counted, type_name: str) -> int:
    """Caseless tasks of an account-level type: those on its page, and every task past the page (not read)."""
    if not TaskType.is_account_level_type(type_name):
        return 0
    page = counted.pages[type_name]
    return sum(1 for t in page.tasks if t.is_account_level) + max(0, counted.total(type_name) - page.raw_count)
