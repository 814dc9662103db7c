"""``DebituraReplyToChatTasksOperator``: answer the chat-driven tasks with templated replies, exactly once.

The run is three phases from :mod:`airflow_provider_debitura.replies` (plan, render, post); the design
and the request cost are in docs/operators.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.links import push_solution_url
from airflow_provider_debitura.models import TaskPage, TaskType
from airflow_provider_debitura.operators.base import DebituraTaskOperatorBase, scope_label
from airflow_provider_debitura.operators.listing import describe_rejected, list_scope
from airflow_provider_debitura.replies import (
    CaseDraft,
    CaseReading,
    DebituraReplyCasesFailedError,
    ReplyReport,
    TemplateSet,
    compile_templates,
    post_drafts,
    read_cases,
    render_drafts,
    select_cases,
    template_context,
)
from airflow_provider_debitura.replies.pages import ListingPages, describe_pages, pages_needed, read_pages
from airflow_provider_debitura.validation import as_bool, as_limit, task_types

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["DebituraReplyToChatTasksOperator", "reply_cost"]


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


class DebituraReplyToChatTasksOperator(DebituraTaskOperatorBase):
    """Answer Debitura's chat-driven tasks (ReplyToChat, ClientInputRequired, MoreInfoNeeded) with a templated reply.

    One message per case (a chat belongs to the case, and one creditor message clears all of its chat
    tasks), posted exactly once: each case's history is read before rendering and again right before
    posting, and an ambiguous post is never repeated in the same run. Every reply is rendered and
    checked before the first post, so one bad template posts nothing. A task's ``action`` is followed
    only when it is ``POST /cases/{caseId}/chats`` for its own case. A case that answers 404 (merged or
    deleted) is skipped and reported; the others are answered, and the task fails at the end so that a
    person looks. Design, cost formula and the XCom report: docs/operators.md.

    :param debitura_conn_id: Airflow connection to use.
    :param case_id: Answer only this case (Debitura GUID); or ``creditor_reference`` / ``case_reference``.
    :param creditor_reference: Answer only the case with your own reference.
    :param case_reference: Answer only the case with Debitura's 8-character reference.
    :param reply_template: Jinja string used for every selected task type without its own template.
        Rendered per task in a sandbox; sees ``task``, ``case``, ``partner_message`` and plain Airflow
        context values (``ds``, ``params``, ``dag_run.conf``, ...). Not an Airflow template field.
    :param reply_templates: ``{task_type: Jinja string}``, overriding ``reply_template`` per type.
    :param task_types: Which chat-driven types to answer (default: all three). Other types are refused.
    :param user_email: Sender; default the connection's ``user_email`` extra.
    :param dry_run: Read and render everything, post nothing.
    :param max_replies: At most this many case messages per run; further cases are left for the next
        run without being read (``capped`` in the report). None: no limit.
    """

    template_fields: Sequence[str] = (
        *DebituraTaskOperatorBase.template_fields,
        "user_email",
        "dry_run",
        "max_replies",
    )

    def __init__(
        self,
        *,
        reply_template: str | None = None,
        reply_templates: Mapping[str, str] | None = None,
        user_email: str | None = None,
        dry_run: bool | str = False,
        max_replies: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reply_template = reply_template
        self.reply_templates = dict(reply_templates) if reply_templates is not None else None
        self.user_email = user_email
        # Shadows BaseOperator.dry_run() (kept: the parameter's public name since the first release).
        self.dry_run = dry_run  # type: ignore[assignment,method-assign]
        self.max_replies = max_replies

    def chat_types(self) -> list[str]:
        """The chat-driven types this operator answers (validated ``task_types``)."""
        chat = sorted(TaskType.chat_driven())
        if self.task_types is None:
            return chat
        types = task_types("task_types", self.task_types) or []
        wrong = [t for t in types if t not in TaskType.chat_driven()]
        if wrong:
            raise DebituraConfigError(
                f"task_types={types} includes {wrong}, which cannot be resolved with a chat reply. This operator "
                f"answers only {', '.join(chat)}; list the other types with DebituraListTasksOperator."
            )
        if not types:
            raise DebituraConfigError(f"task_types is empty; give at least one of {', '.join(chat)} (or None for all).")
        return types

    def templates(self) -> TemplateSet:
        """The compiled reply templates (fails before any request on a syntax error or a missing type)."""
        return compile_templates(self.reply_template, self.reply_templates, self.chat_types())

    def plan_and_render(
        self, hook: DebituraHook, context: Context, report: ReplyReport, *, posting: bool = False
    ) -> list[CaseDraft]:
        """Phases 1 and 2: list the chat tasks, read up to ``max_replies`` cases, render one draft per case.

        In the account scope with ``max_replies``, only the listing pages the run needs are read and each case's
        open chat tasks are read directly (``replies.pages``); otherwise the scope's every task is listed first.

        Another operator (e.g. one that asks a person first) can call this and keep the drafts as JSON
        (:meth:`CaseDraft.to_dict`) until it posts them with :func:`~airflow_provider_debitura.replies.post_drafts`.

        :param hook: the connection.
        :param context: the Airflow task context (its plain values reach the templates).
        :param report: where skips, refusals, failures and the cap are recorded.
        :param posting: the drafts are posted right after (their cost counts in the budget check).
        """
        types = self.chat_types()
        templates = compile_templates(self.reply_template, self.reply_templates, types)
        max_replies = as_limit("max_replies", self.max_replies)
        selector = self._selector()
        if selector is None and max_replies is not None:
            readings = self._read_pages(hook, report, types, templates, max_replies, posting=posting)
        else:
            readings = self._read_listing(hook, report, types, templates, max_replies, posting=posting)
        return render_drafts(readings, templates, template_context(context))

    def _read_listing(
        self,
        hook: DebituraHook,
        report: ReplyReport,
        types: list[str],
        templates: TemplateSet,
        max_replies: int | None,
        *,
        posting: bool,
    ) -> list[CaseReading]:
        """A case scope, or the whole account without a cap: the scope's every task (``list_scope``), then the
        cases read in order. The full verified listing already holds every open chat task of each case, so no
        case is read directly again (docs/operators.md)."""
        selector = self._selector()
        hook.budget.require(1 if selector is None else 2, what=f"listing the chat tasks of {scope_label(selector)}")
        scope_case, tasks = list_scope(hook, selector, status="Open", types=types)
        selection = select_cases(tasks, types, tasks.rejected)
        cases = len(selection.candidates)
        hook.budget.require(
            reply_cost(cases, max_replies, read_case=templates.uses_case, posting=posting),
            what=f"answering {cases if max_replies is None else min(cases, max_replies):,} case(s) after the listing",
        )
        if tasks.rejected:
            self.log.warning("%s", describe_rejected(tasks.rejected))
        self.log.info(
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
        self,
        hook: DebituraHook,
        report: ReplyReport,
        types: list[str],
        templates: TemplateSet,
        max_replies: int,
        *,
        posting: bool,
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
                self.log.warning("%s", describe_rejected(page.rejected))

        readings, listing = read_pages(
            hook,
            report,
            types=types,
            max_replies=max_replies,
            read_case=templates.uses_case,
            after_first_page=after_first_page,
        )
        self.log.info("%s", describe_pages(listing, len(readings), max_replies))
        return readings

    def draft(self, context: Context) -> tuple[list[CaseDraft], ReplyReport]:
        """Plan and render without posting: the drafts (JSON via ``to_dict``) and the report so far.

        :param context: the Airflow task context.
        """
        self.templates()  # template errors fail before any request
        report = ReplyReport(dry_run=True)
        with self._hook() as hook:
            return self.plan_and_render(hook, context, report), report

    def post(
        self, drafts: Sequence[CaseDraft], *, recheck_open_tasks: bool = True, report: ReplyReport | None = None
    ) -> ReplyReport:
        """Post drafts made earlier (possibly edited), exactly once, re-checking each case first.

        :param drafts: the drafts (e.g. ``CaseDraft.from_dict`` of what :meth:`draft` returned).
        :param recheck_open_tasks: also re-read each case's open chat tasks and answer only those still open.
        :param report: a report to add to (default: a new one).
        """
        report = report or ReplyReport()
        with self._hook() as hook:
            sender = hook.sender_email(self.user_email, hook.settings)
            recheck = self.chat_types() if recheck_open_tasks else None
            post_drafts(
                hook, drafts, sender=sender, report=report, recheck_open_tasks=recheck, own_order=True, log=self.log
            )
        return report

    def execute(self, context: Context) -> dict[str, Any]:
        """Plan, render, then post (or, with ``dry_run``, only report the rendered messages).

        :param context: the Airflow task context.
        """
        self.templates()  # template errors fail before any request
        as_limit("max_replies", self.max_replies)
        report = ReplyReport(dry_run=as_bool("dry_run", self.dry_run))
        with self._hook() as hook:
            sender = hook.sender_email(self.user_email, hook.settings)
            try:
                drafts = self.plan_and_render(hook, context, report, posting=not report.dry_run)
                if report.dry_run:
                    report.rendered = [
                        {"task_id": t.id, "case_id": d.case_id, "message": d.message} for d in drafts for t in d.tasks
                    ]
                    self.log.info("dry_run: %d message(s) rendered; nothing posted.", len(drafts))
                else:
                    post_drafts(hook, drafts, sender=sender, report=report, own_order=True, log=self.log)
            finally:
                report.log_summary(self.log)
        push_solution_url(context, report.first_solution_url)
        return self._finish(context, report)

    def _finish(self, context: Context, report: ReplyReport) -> dict[str, Any]:
        value = report.as_xcom()
        if report.failed:
            ti = context.get("ti")
            if ti is not None:  # the report stays readable on the failed task instance
                ti.xcom_push(key="return_value", value=value)
            raise DebituraReplyCasesFailedError(report.failed, len({r["case_id"] for r in report.replied}))
        return value
