"""One read of the whole open queue for gates and watchers (:func:`read_queue`), as compact records.

The consistency of a multi-page read comes from the hook's listing (:mod:`airflow_provider_debitura.hooks.paging`),
the compact page parser from :mod:`airflow_provider_debitura.gate`; the async hook's exchange driver sends
(``hooks.exchange``). A failed read is never raised: it is the result's ``error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from airflow_provider_debitura.exceptions import DebituraAuthError
from airflow_provider_debitura.gate import (
    TASK_ID,
    PackedTask,
    RecordBatch,
    TaskPageBatch,
    compact_page_call,
)
from airflow_provider_debitura.hooks import endpoints, paging
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import Exchange, unwrap
from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.models import PageData, RejectedRecord, TaskPage

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- the whole queue


class LastReadTasks:
    """The last complete read's open tasks by id, kept for the next read: a page's unchanged task is this same
    packed tuple (``gate.compact_page_call(known=)``), so a read of the whole queue holds each task's strings
    once, not once per read."""

    def __init__(self) -> None:
        self.tasks: dict[str, PackedTask] = {}

    def forget_unseen(self, tasks: Iterable[PackedTask] = ()) -> None:
        """After a complete read: keep its open tasks, and only them.

        :param tasks: the read's open tasks.
        """
        self.tasks = {task[TASK_ID]: task for task in tasks}


@dataclass(frozen=True)
class _ListingPage:
    """What the listing state machine reads of a page (the attributes of ``models.TaskPage`` it uses): its tasks
    as plain ``(id, dateCreated)`` pairs (``paging.pair_key``), which the garbage collector does not track."""

    page: PageData
    tasks: tuple[tuple[str, datetime], ...]
    rejected: tuple[RejectedRecord, ...]
    raw_count: int


@dataclass
class QueueRead:
    """What one read of the whole open queue returned: its records, or why there are none.

    ``abandoned`` is set when the caller's ``keep_going`` decided after the first answer that the rest is
    not worth reading (that answer then served as a probe of the queue's size).
    """

    batch: RecordBatch | None = None
    verified: bool = False
    unverified_reason: str | None = None
    total: int | None = None
    pages: tuple[str, ...] = ()
    error: BaseException | None = None
    abandoned: bool = False
    requests: int = 0
    atomic: bool = False
    """The read was one answer, a page that is not full and whose records match its own total: nothing can have
    been missed (no order, no second page), so it is as good as a direct read of the account-level tasks."""


def pages_for(total: int) -> int:
    """Pages of ``total`` open tasks (an empty queue still answers one page): the listing's ``pages_hint``.

    :param total: open tasks.
    """
    return paging.pages_for(total, endpoints.MAX_PAGE_SIZE)


def full_read_cost(total: int) -> int:
    """Requests a full read of ``total`` open tasks costs with a right hint: its pages, and the page after a full
    last page (``hooks.paging``): ``total // 100 + 1``, the P of ``docs/gates.md``.

    :param total: open tasks.
    """
    return paging.full_read_requests(total, endpoints.MAX_PAGE_SIZE)


async def read_queue(
    hook: DebituraAsyncHook,
    *,
    keep_pages: bool = False,
    keep_going: Callable[[int], bool] | None = None,
    listed: LastReadTasks | None = None,
    pages_hint: int | None = None,
    max_rereads: int = paging.DEFAULT_MAX_REREADS,
) -> QueueRead:
    """Read every open task of the account once with the hook's listing, as compact records (never raises
    for a failed read). The listing guarantees that every task open for the whole read is in it once, and
    says when it could not verify that (``QueueRead.verified``).

    :param hook: the connection's async hook.
    :param keep_pages: also keep each page's records as JSON text (for subscribers that need full records).
    :param keep_going: called with ``totalResults`` after the first answer; False stops there (``abandoned``).
    :param listed: the last complete read's open tasks, to reuse (see :class:`LastReadTasks`).
    :param pages_hint: pages the queue had last time (saves the listing's size probe).
    :param max_rereads: passes the listing adds when a check fails (0: none; gates open only on direct reads).
    """
    listed = listed if listed is not None else LastReadTasks()
    listing = TaskListing(status="Open", pages_hint=pages_hint, max_rereads=max_rereads, key=paging.pair_key)
    reading = CompactListing(listing, keep_pages=keep_pages, keep_going=keep_going, listed=listed)
    try:
        result = await hook.exchange(reading)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if isinstance(exc, DebituraAuthError):
            await hook.reset_connection()  # a rotated key takes effect without a triggerer restart
        reading.read.error = exc
        return reading.read
    if not result.abandoned:
        listed.forget_unseen(result.batch.open if result.batch is not None else ())
    return result


class CompactListing(Exchange[QueueRead]):
    """A :class:`~airflow_provider_debitura.hooks.paging.TaskListing` whose pages are read compact
    (:func:`~airflow_provider_debitura.gate.compact_page_call`): each task kept once as a compact record (and its
    page's JSON text when asked), the listing fed only what its checks need.

    :param listing: a fresh listing.
    :param keep_pages: also keep each page's records as JSON text.
    :param keep_going: called with ``totalResults`` after the first answer; False stops there (``abandoned``).
    :param listed: the last complete read's open tasks, to reuse (see :class:`LastReadTasks`).
    """

    def __init__(
        self,
        listing: TaskListing,
        *,
        keep_pages: bool = False,
        keep_going: Callable[[int], bool] | None = None,
        listed: LastReadTasks | None = None,
    ) -> None:
        self.listing, self.keep_pages, self.keep_going = listing, keep_pages, keep_going
        self.listed = listed if listed is not None else LastReadTasks()
        self.read = QueueRead()
        """What the read found so far (``error`` is set by :func:`read_queue` when it ends in one)."""
        self._open_by_id: dict[str, PackedTask] = {}
        self._texts: dict[int, str] = {}
        self._sent: list[tuple[ApiCall[Any], ApiCall[Any]]] = []

    def next_calls(self) -> list[ApiCall[Any]]:
        """The listing's next page, as a compact page call; none once finished or abandoned."""
        if self.read.abandoned:
            return []
        known = self.listed.tasks
        self._sent = [
            (compact_page_call(c, keep_text=self.keep_pages, known=known), c) for c in self.listing.next_calls()
        ]
        return [compact for compact, _ in self._sent]

    def feed(self, call: ApiCall[Any], answer: object) -> None:
        """Take a compact page (an error the call ended with is raised).

        :param call: the compact call.
        :param answer: the page, or the error.
        """
        original = next(listed for compact, listed in self._sent if compact is call)
        self.read.requests += 1
        page: TaskPageBatch = unwrap(answer)
        _collect(page, self._open_by_id, self._texts, self.read.requests)
        self.listing.feed(
            original, cast(TaskPage, _ListingPage(page.page, page.batch.listed, page.batch.rejected, page.raw_count))
        )
        total = page.page.total_results
        if self.read.requests == 1 and self.keep_going is not None and total is not None and not self.keep_going(total):
            self.read.total, self.read.abandoned = total, True

    def result(self) -> QueueRead:
        """The read: every open task of the listing as compact records, its verdict and its pages."""
        result = self.read
        if result.abandoned:
            return result
        outcome = self.listing.result()
        open_by_id = self._open_by_id
        pairs = cast(Iterable[tuple[str, datetime]], outcome)  # the listing holds what it was fed (pair_key)
        result.batch = RecordBatch(
            tuple(open_by_id[task_id] for task_id, _ in pairs if task_id in open_by_id), tuple(outcome.rejected)
        )
        result.verified, result.unverified_reason = outcome.verified, outcome.unverified_reason
        result.total = outcome.total
        result.pages = tuple(self._texts[key] for key in sorted(self._texts))
        records = len(outcome) + len(outcome.rejected)
        result.atomic = outcome.requests == 1 and outcome.total == records < endpoints.MAX_PAGE_SIZE
        return result


def _collect(answer: TaskPageBatch, open_by_id: dict[str, PackedTask], texts: dict[int, str], index: int) -> None:
    """Keep the latest copy of every task the page lists (a task listed but not open is dropped)."""
    open_here = {task[TASK_ID]: task for task in answer.batch.open}
    for task_id, _created in answer.batch.listed:
        if task_id in open_here:
            open_by_id[task_id] = open_here[task_id]
        else:
            open_by_id.pop(task_id, None)
    if answer.text is not None:
        texts[answer.page.current_page or index] = answer.text
