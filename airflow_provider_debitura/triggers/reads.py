"""The async reads behind gates and watchers: a round of direct checks, and one read of the whole queue.

Short drivers: the calls and what their answers mean come from :mod:`airflow_provider_debitura.gate`
(:class:`~airflow_provider_debitura.gate.DirectReads`, the compact page parser); the consistency of a
multi-page read comes from the hook's listing (:mod:`airflow_provider_debitura.hooks.paging`). This
module only sends, within a per-connection limit, and never raises for a failed read: a failure is
an answer ("unknown", or "failed" when checking again cannot help).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from airflow_provider_debitura.exceptions import DebituraAuthError, DebituraError
from airflow_provider_debitura.gate import (
    CompactTask,
    DirectReads,
    PageInfo,
    RecordBatch,
    Rejected,
    TaskPageBatch,
    compact_page_call,
)
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.models import TaskPage

log = logging.getLogger(__name__)

T = TypeVar("T")


async def send(hook: DebituraAsyncHook, call: ApiCall[T]) -> T | BaseException:
    """The call's answer, or the error it ended with (cancellation still propagates). An error that is not a
    :class:`DebituraError` is a bug: logged with its traceback, and answered as a transient doubt."""
    try:
        return await hook.run(call)
    except asyncio.CancelledError:
        raise
    except DebituraError as exc:
        return exc
    except Exception as exc:
        log.exception("Unexpected error reading %s from Debitura", call.label)
        return _Unexpected(f"{type(exc).__name__}: {exc}")


class _Unexpected(DebituraError):
    transient = True


async def drive_direct(hook: DebituraAsyncHook, reads: DirectReads, slots: asyncio.Semaphore) -> None:
    """Send one round of direct reads: the cases concurrently (within ``slots``), then the account-level pages.

    :param hook: the connection's async hook.
    :param reads: the round's reads (filled in place).
    :param slots: the connection's limit on concurrent requests.
    """

    async def one(case_id: str, call: ApiCall[RecordBatch]) -> None:
        async with slots:
            if reads.tripped:
                reads.skip_case(case_id)
                return
            reads.feed_case(case_id, await send(hook, call))

    await asyncio.gather(*(one(case_id, call) for case_id, call in reads.case_calls()))
    while (account_call := reads.account_call()) is not None:
        async with slots:
            reads.feed_account(await send(hook, account_call))


# ------------------------------------------------------------------------------- the whole queue


class _Listed(str):
    """A task id with the ``.id`` the listing state machine reads (it only compares ids)."""

    __slots__ = ()

    @property
    def id(self) -> str:
        return str(self)


class ListedIds:
    """The listing's id objects, kept from one full read to the next.

    The listing state machine holds one object per task for the whole read, and Python's collector tracks
    each (a ``str`` subclass is tracked, a ``str`` is not). New ones every read would be promoted to the
    oldest generation every round (5,000 for 5,000 open tasks) and bring on a full collection of the
    triggerer's heap every few rounds; kept, only the tasks that are new since the last read cost anything.
    """

    def __init__(self) -> None:
        self._ids: dict[str, _Listed] = {}
        self._seen: dict[str, _Listed] = {}

    def __call__(self, task_id: str) -> _Listed:
        listed = self._ids.get(task_id) or _Listed(task_id)
        self._seen[task_id] = listed
        return listed

    def begin(self) -> None:
        """Before a read."""
        self._seen = {}

    def forget_unseen(self) -> None:
        """After a read: drop the ids that read did not list."""
        self._ids, self._seen = self._seen, {}


@dataclass(frozen=True)
class _ListingPage:
    page: PageInfo
    tasks: list[_Listed]


@dataclass
class QueueRead:
    """What one read of the whole open queue returned: its records, or why there are none.

    ``abandoned`` is set when the caller's ``keep_going`` decided after page 1 that the rest is not
    worth reading (the page then served as a probe of the queue's size).
    """

    batch: RecordBatch | None = None
    verified: bool = False
    total: int | None = None
    pages: tuple[str, ...] = ()
    error: BaseException | None = None
    abandoned: bool = False
    requests: int = 0

    @property
    def page_count(self) -> int | None:
        return None if self.total is None else pages_for(self.total)


def pages_for(total: int) -> int:
    """Requests a full read of ``total`` open tasks costs (an empty queue still answers one page)."""
    return max(1, math.ceil(total / endpoints.MAX_PAGE_SIZE))


def _verified(listing: TaskListing) -> bool:
    """Whether the listing guarantees that it missed no task open for the whole read. The offset listing
    on main cannot rule out one change (a task solved on an earlier page while another is created), so
    it reports nothing and counts as unverified; the churn-proof listing sets ``verified`` itself."""
    return bool(getattr(listing, "verified", False))


async def read_queue(
    hook: DebituraAsyncHook,
    *,
    keep_pages: bool = False,
    keep_going: Callable[[int], bool] | None = None,
    listed: ListedIds | None = None,
) -> QueueRead:
    """Read every open task of the account once, as compact records (never raises for a failed read).

    :param hook: the connection's async hook.
    :param keep_pages: also keep each page's records as JSON text (for subscribers that need full records).
    :param keep_going: called with ``totalResults`` after page 1; False stops there (``abandoned``).
    :param listed: the id objects of earlier reads, to reuse (see :class:`ListedIds`).
    """
    listed = listed if listed is not None else ListedIds()
    listed.begin()
    listing = TaskListing(status="Open")
    result = QueueRead()
    seen: dict[str, CompactTask | Rejected] = {}
    texts: dict[int, str] = {}
    try:
        while (call := listing.next_call()) is not None:
            result.requests += 1
            answer = cast(TaskPageBatch, await hook.run(compact_page_call(call, keep_text=keep_pages)))
            _collect(answer, seen, texts)
            listing.feed(cast(TaskPage, _ListingPage(answer.page, [listed(i) for i in answer.batch.ids])))
            if result.requests == 1 and keep_going is not None and not keep_going(answer.page.total_results):
                result.total, result.abandoned = answer.page.total_results, True
                return result
        ids: Sequence[str] = [str(task) for task in listing.result()]
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if isinstance(exc, DebituraAuthError):
            await hook.reset_connection()  # a rotated key takes effect without a triggerer restart
        result.error = exc
        return result
    listed.forget_unseen()
    result.total, result.verified = listing.total_results, _verified(listing)
    result.batch = _batch(ids, seen)
    result.pages = tuple(texts[page] for page in sorted(texts))
    return result


def _collect(answer: TaskPageBatch, seen: dict[str, CompactTask | Rejected], texts: dict[int, str]) -> None:
    rejected = iter(answer.batch.rejected)
    open_by_id = {task[0]: task for task in answer.batch.open}
    for task_id in answer.batch.ids:
        if task_id.startswith("\x00"):
            seen[task_id] = next(rejected)
        elif task_id in open_by_id:
            seen[task_id] = open_by_id[task_id]
        else:
            seen.pop(task_id, None)  # listed but not open (solved meanwhile)
    if answer.text is not None:
        texts[answer.page.current_page] = answer.text


def _batch(ids: Sequence[str], seen: dict[str, CompactTask | Rejected]) -> RecordBatch:
    records = [seen[i] for i in ids if i in seen]
    return RecordBatch(
        tuple(ids),
        tuple(r for r in records if isinstance(r, tuple)),
        tuple(r for r in records if isinstance(r, Rejected)),
    )
