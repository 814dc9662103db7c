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
from airflow_provider_debitura.models import TaskType
from airflow_provider_debitura.operators.base import DebituraTaskOperatorBase
from airflow_provider_debitura.operators.reply_plan import plan_readings, reply_cost
from airflow_provider_debitura.replies import (
    CaseDraft,
    DebituraReplyCasesFailedError,
    ReplyReport,
    TemplateSet,
    compile_templates,
    post_drafts,
    render_drafts,
    template_context,
)
from airflow_provider_debitura.validation import as_bool, as_limit, task_types

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["DebituraReplyToChatTasksOperator", "reply_cost"]


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
        readings = plan_readings(
            hook,
            report,
            selector=self._selector(),
            types=types,
            templates=templates,
            max_replies=as_limit("max_replies", self.max_replies),
            posting=posting,
            log=self.log,
        )
        return render_drafts(readings, templates, template_context(context))

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
