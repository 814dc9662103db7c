"""Phase 1 of a reply run, for every operator that answers chat tasks: which cases to answer, read within the
request budget (docs/operators.md, "The reply run" and "Cost, in requests").

- the whole account with ``max_replies``: only the listing pages the run needs, each case read directly
  (:func:`~airflow_provider_debitura.replies.pages.read_pages`);
- a case scope, or no cap: the scope's every task first (``list_scope``), then the cases in order.

The budget is checked before the first request and again once the listing tells the run's size.
"""

from __future__ import annotations

from logging import Logger
from typing import Any

from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.models import TaskPage
from airflow_provider_debitura.operators.base import scope_label
from airflow_provider_debitura.operators.listing import describe_rejected, list_scope
from airflow_provider_debitura.replies import CaseReading, ReplyReport, TemplateSet, read_cases, select_cases
from airflow_provider_debitura.replies.pages import ListingPages, describe_pages, pages_needed, read_pages
from airflow_provider_debitura.validation import CaseSelector

__all__ = ["plan_readings", "reply_cost"]


def plan_readings(
    hook: DebituraHook,
    report: ReplyReport,
    *,
    selector: CaseSelector | None,
    types: list[str],
    templates: TemplateSet,
    max_replies: int | None,
    posting: bool,
    log: Logger | Any,
) -> list[CaseReading]:
    """Read what a reply run answers: up to ``max_replies`` cases that need an answer, in order.

    :param hook: the connection.
    :param report: where skips, refusals, failures and the cap are recorded.
    :param selector: one case, or None for the whole account.
    :param types: the chat-driven types answered.
    :param templates: the compiled templates (``uses_case`` decides the case reads).
    :param max_replies: the run's cap (None: none).
    :param posting: the drafts are posted right after (their cost counts in the budget check).
    :param log: the operator's logger.
    """
    if selector is None and max_replies is not None:
        return _read_pages(hook, report, types, templates, max_replies, posting=posting, log=log)
    return _read_listing(hook, report, selector, types, templates, max_replies, posting=posting, log=log)


def reply_cost(
    cases: int,
    max_replies: int | None,
    *,
    read_case: bool,
    posting: bool,
    task_reads: bool = False,
    pages: int = 0,
) -> int:
    """The requests a reply run needs after what it has read of the listing, about (docs/operators.md, "Cost, in
    requests"): ``pages + T + E + R + 2P + 1`` for ``K = min(cases, max_replies)``: the listing pages still to read
    (``pages``), a direct read of each case's open chat tasks when the listing is read only in part (``T``), a history
    read per case (``E``, more when some are already answered), a case read per case when a template uses ``case``
    (``R``), and when posting, a re-read and a post per case (``2P``) plus the one read after the first post.

    :param cases: candidate cases the listing found (or may find).
    :param max_replies: the run's cap (None: none).
    :param read_case: a template uses ``case``.
    :param posting: the run posts (not a dry run, not drafts that wait for a person).
    :param task_reads: each case's open chat tasks are read directly (``GET /cases/{id}/tasks``) before its history.
    :param pages: listing pages still to read.
    """
    k = cases if max_replies is None else min(cases, max_replies)
    reads = k + (k if task_reads else 0) + (k if read_case else 0)
    return pages + reads + (2 * k + 1 if posting and k else 0)


def _read_listing(
    hook: DebituraHook,
    report: ReplyReport,
    selector: CaseSelector | None,
    types: list[str],
    templates: TemplateSet,
    max_replies: int | None,
    *,
    posting: bool,
    log: Logger,
) -> list[CaseReading]:
    """A case scope, or the whole account without a cap: the scope's every task (``list_scope``), then the
    cases read in order. The full verified listing already holds every open chat task of each case, so no
    case is read directly again (docs/operators.md)."""
    hook.budget.require(1 if selector is None else 2, what=f"listing the chat tasks of {scope_label(selector)}")
    scope_case, tasks = list_scope(hook, selector, status="Open", types=types)
    selection = select_cases(tasks, types, tasks.rejected)
    cases = len(selection.candidates)
    hook.budget.require(
        reply_cost(cases, max_replies, read_case=templates.uses_case, posting=posting),
        what=f"answering {cases if max_replies is None else min(cases, max_replies):,} case(s) after the listing",
    )
    if tasks.rejected:
        log.warning("%s", describe_rejected(tasks.rejected))
    log.info(
        "%d open chat task(s) on %d case(s) in %s; %d refused.",
        sum(len(c.tasks) for c in selection.candidates),
        len(selection.candidates),
        scope_label(selector),
        len(selection.refused),
    )
    known = {scope_case.id.lower(): scope_case} if scope_case is not None else None
    return read_cases(
        hook, selection, report, max_replies=max_replies, read_case=templates.uses_case, known_cases=known
    )


def _read_pages(
    hook: DebituraHook,
    report: ReplyReport,
    types: list[str],
    templates: TemplateSet,
    max_replies: int,
    *,
    posting: bool,
    log: Logger,
) -> list[CaseReading]:
    """The whole account with ``max_replies``: only the listing pages the run needs, each case read directly
    (``replies.pages``); the budget is checked before page 1 and after it for the rest."""
    hook.budget.require(1, what="the first page of the chat-task listing of the whole account")

    def after_first_page(listing: ListingPages, page: TaskPage, cases: int) -> None:
        pages = 1 if listing.ended else pages_needed(cases, max_replies, listing.total)
        k = min(cases, max_replies) if listing.ended else max_replies
        total = f"{listing.total:,} open chat tasks, " if listing.total is not None else ""
        hook.budget.require(
            reply_cost(k, max_replies, read_case=templates.uses_case, posting=posting, task_reads=True) + pages - 1,
            what=f"answering up to {k:,} case(s) after the listing's first page ({total}about {pages - 1:,} "
            "more page(s), a task read and a history read per case)",
        )
        if page.rejected:
            log.warning("%s", describe_rejected(page.rejected))

    readings, listing = read_pages(
        hook,
        report,
        types=types,
        max_replies=max_replies,
        read_case=templates.uses_case,
        after_first_page=after_first_page,
    )
    log.info("%s", describe_pages(listing, len(readings), max_replies))
    return readings
