"""Operators for Debitura's task queue: list tasks into XCom, and answer the chat-driven ones.

Both validate every parameter before the first request (after Airflow has rendered the template
fields), so a typo fails at once with a message naming the parameter, the value and the fix.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError, DebituraConfigError
from airflow_provider_debitura.hooks.debitura import DebituraHook, case_lookup
from airflow_provider_debitura.links import DebituraResolveLink, push_solution_url
from airflow_provider_debitura.models import Case, ChatMessage, Task, TaskType
from airflow_provider_debitura.replies import (
    TemplateSet,
    action_refusal,
    answered_by,
    combine_replies,
    compile_templates,
    find_own_message,
    latest_partner_message,
    render_reply,
    template_context,
    validate_reply,
)
from airflow_provider_debitura.validation import (
    CaseSelector,
    as_bool,
    as_limit,
    case_selector,
    connection_id,
    task_status,
    task_types,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["DebituraListTasksOperator", "DebituraReplyToChatTasksOperator"]

log = logging.getLogger(__name__)


def _scope_label(selector: CaseSelector | None) -> str:
    return "the whole account" if selector is None else selector.description


class _DebituraTaskOperatorBase(BaseOperator):
    """What both operators share: connection, case scope and type filter."""

    operator_extra_links = (DebituraResolveLink(),)
    ui_color = "#e8f1fb"
    template_fields: Sequence[str] = (
        "debitura_conn_id",
        "case_id",
        "creditor_reference",
        "case_reference",
        "task_types",
    )

    def __init__(
        self,
        *,
        debitura_conn_id: str = DebituraHook.default_conn_name,
        case_id: str | None = None,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
        task_types: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.debitura_conn_id = debitura_conn_id
        self.case_id = case_id
        self.creditor_reference = creditor_reference
        self.case_reference = case_reference
        self.task_types = task_types

    def _selector(self) -> CaseSelector | None:
        return case_selector(self.case_id, self.creditor_reference, self.case_reference, required=False)

    def _hook(self) -> DebituraHook:
        return DebituraHook(debitura_conn_id=connection_id(self.debitura_conn_id))


# --------------------------------------------------------------------------------------------- list


class DebituraListTasksOperator(_DebituraTaskOperatorBase):
    """List Debitura tasks (every page) and return them as the API's own JSON (camelCase) dicts.

    The return value is a plain list, so downstream tasks can map over it
    (``notify.expand(task=list_tasks.output)``) and XCom never has to deserialise a model class.

    :param debitura_conn_id: Airflow connection to use.
    :param case_id: Limit to one case by Debitura GUID (or use ``creditor_reference`` /
        ``case_reference``; at most one of the three). None of them: the whole account.
    :param task_types: Only these types (list or comma-separated string).
    :param status: ``Open`` (default) or ``Solved``.
    :param api_resolvable_only: Only tasks an integration can clear itself (the chat-driven types).
    :param include_account_level: With a case scope, also return the account-level tasks
        (``SignContract``, ``AssignBankAccount``), which block every case but which
        ``GET /cases/{id}/tasks`` never lists. Default False: a case scope returns exactly the case's
        own tasks. Ignored for the account scope, which always includes them.
    """

    template_fields: Sequence[str] = (
        *_DebituraTaskOperatorBase.template_fields,
        "status",
        "api_resolvable_only",
        "include_account_level",
    )

    def __init__(
        self,
        *,
        status: str = "Open",
        api_resolvable_only: bool | str = False,
        include_account_level: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.status = status
        self.api_resolvable_only = api_resolvable_only
        self.include_account_level = include_account_level

    def execute(self, context: Context) -> list[dict[str, Any]]:
        selector = self._selector()
        types = task_types("task_types", self.task_types)
        status = task_status("status", self.status)
        resolvable_only = as_bool("api_resolvable_only", self.api_resolvable_only)
        with_account = as_bool("include_account_level", self.include_account_level)
        if resolvable_only and types is not None and not any(TaskType.is_api_resolvable_type(t) for t in types):
            raise DebituraConfigError(
                f"api_resolvable_only=True with task_types={types} can never match: none of those types can "
                f"be resolved through the API ({', '.join(sorted(TaskType.chat_driven()))}). Drop one of the two."
            )
        query_types = types
        if resolvable_only and types is None:
            query_types = sorted(TaskType.chat_driven())

        with self._hook() as hook:
            if selector is None:
                tasks = hook.list_tasks(status=status, types=query_types, confirm=True)
            else:
                case = hook.run(case_lookup(selector))
                tasks = hook.get_case_tasks(case.id, status=status, types=query_types)
                if with_account:
                    account_types = [
                        t
                        for t in (query_types or sorted(TaskType.account_level()))
                        if TaskType.is_account_level_type(t)
                    ]
                    if account_types:
                        tasks += [
                            t
                            for t in hook.list_tasks(status=status, types=account_types, confirm=True)
                            if t.is_account_level
                        ]
        if resolvable_only:
            tasks = [t for t in tasks if t.is_api_resolvable]

        self.log.info("%s", _summary_table(tasks, f"{status} tasks in {_scope_label(selector)}"))
        first_human = next((t for t in tasks if not t.is_api_resolvable and t.solution_url), None)
        push_solution_url(context, first_human.solution_url if first_human else None)
        return [t.to_api_dict() for t in tasks]


def _summary_table(tasks: Sequence[Task], title: str) -> str:
    by_type = Counter(t.type or "(none)" for t in tasks)
    resolvable = sum(1 for t in tasks if t.is_api_resolvable)
    account = sum(1 for t in tasks if t.is_account_level)
    width = max([len("API-resolvable"), *(len(k) for k in by_type)])
    lines = [f"{len(tasks)} {title}", f"  {'type':<{width}}  count"]
    lines += [f"  {name:<{width}}  {count:>5}" for name, count in sorted(by_type.items())]
    lines += [
        f"  {'-' * width}  -----",
        f"  {'API-resolvable':<{width}}  {resolvable:>5}",
        f"  {'account-level':<{width}}  {account:>5}",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- reply


@dataclass
class _CasePlan:
    """Everything decided about one case before the first post."""

    case_id: str
    tasks: list[Task] = field(default_factory=list)
    chats: list[ChatMessage] = field(default_factory=list)
    message: str = ""


@dataclass
class _Report:
    dry_run: bool
    replied: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    needs_human: list[dict[str, Any]] = field(default_factory=list)
    rendered: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, task: Task, reason: str) -> None:
        self.skipped.append({"task_id": task.id, "reason": reason})

    def human(self, task: Task) -> None:
        self.needs_human.append({"task_id": task.id, "type": task.type, "solution_url": task.solution_url})

    def as_xcom(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "replied": self.replied,
            "skipped": self.skipped,
            "needs_human": self.needs_human,
            "dry_run": self.dry_run,
        }
        if self.dry_run:
            out["rendered"] = self.rendered
        return out


class DebituraReplyToChatTasksOperator(_DebituraTaskOperatorBase):
    """Answer Debitura's chat-driven tasks (ReplyToChat, ClientInputRequired, MoreInfoNeeded) with a templated reply.

    **One message per case.** Debitura's chat belongs to the case, not to a task, and any creditor
    message clears all of the case's chat tasks. So the replies of a case's open chat tasks are
    combined (distinct texts, in task order, blank-line separated) into one message, posted once, and
    every one of those tasks is reported as replied with that message's id. Posting one message per
    task would send the partner several e-mails, and after a crash between two posts the next run could
    not tell which task the first message answered.

    **Exactly once.** Before posting, the case's chat history is read: a creditor message at or after a
    task's ``dateCreated`` means the task is already answered (by an earlier run, a retry, or a person),
    and it is skipped, even while Debitura still shows it open. When a post fails ambiguously
    (timeout, dropped connection, 5xx, garbled 200), the history is read again: if our message is there it
    counts as sent. Otherwise the post is never repeated in the same run (the server may still store it, and
    a proxy's 5xx can come after the backend did): the task fails, nothing more is posted, and the next run
    (a task retry), which reads the history first, decides. Posts happen in the worker only.

    **Templates.** ``reply_template`` (and the per-type ``reply_templates``) are rendered per task in a
    Jinja sandbox with ``StrictUndefined``; they see ``task`` and ``case`` (API field names, e.g.
    ``task.title``, ``case.creditorReference``), ``partner_message`` (the case's latest partner message,
    or None) and plain Airflow context values (``ds``, ``ts``, ``logical_date``, ``params``,
    ``dag_run.conf``, ``dag_run.run_id``, ``ti.try_number``, ...). They are deliberately *not* Airflow
    template fields: Airflow would render them first, once per operator, without the per-task
    variables and outside the sandbox. Every reply is rendered and checked (1 to 10,000 characters)
    before the first post, so one bad template posts nothing.

    **Actions.** A task's ``action`` is followed only when it is ``POST /cases/{caseId}/chats`` for the
    task's own case, relative to the connection's base URL; anything else is reported in ``skipped``
    (and ``needs_human``) and never called.

    Returns ``{"replied": [{task_id, case_id, chat_message_id}], "skipped": [{task_id, reason}],
    "needs_human": [{task_id, type, solution_url}], "dry_run": bool}``, plus ``"rendered": [{task_id,
    case_id, message}]`` with ``dry_run=True`` (``message`` is the exact text the case would receive).

    :param reply_template: Jinja string used for every selected task type without its own template.
    :param reply_templates: ``{task_type: Jinja string}``, overriding ``reply_template`` per type.
    :param task_types: Which chat-driven types to answer (default: all three). Other types are refused.
    :param user_email: Sender; default the connection's ``user_email`` extra.
    :param dry_run: Read and render everything, post nothing.
    :param max_replies: At most this many posts (case messages) per run; the rest are skipped with
        reason "max_replies reached". None: no limit.
    """

    template_fields: Sequence[str] = (
        *_DebituraTaskOperatorBase.template_fields,
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
        self.dry_run = dry_run
        self.max_replies = max_replies

    # -- validation (no requests) --

    def _chat_types(self) -> list[str]:
        chat = sorted(TaskType.chat_driven())
        if self.task_types is None:
            return chat
        types = task_types("task_types", self.task_types) or []
        wrong = [t for t in types if t not in TaskType.chat_driven()]
        if wrong:
            raise DebituraConfigError(
                f"task_types={types} includes {wrong}, which cannot be resolved with a chat reply. This operator "
                f"answers only {', '.join(chat)}; tasks of other types are reported under needs_human."
            )
        if not types:
            raise DebituraConfigError(f"task_types is empty; give at least one of {', '.join(chat)} (or None for all).")
        return types

    def execute(self, context: Context) -> dict[str, Any]:
        selector = self._selector()
        types = self._chat_types()
        templates = compile_templates(self.reply_template, self.reply_templates, types)
        dry_run = as_bool("dry_run", self.dry_run)
        max_replies = as_limit("max_replies", self.max_replies)
        jinja_context = template_context(context)
        report = _Report(dry_run=dry_run)

        with self._hook() as hook:
            sender = hook.sender_email(self.user_email, hook.settings)
            # ---- read everything
            if selector is None:
                scope_case: Case | None = None
                open_tasks = hook.list_tasks(status="Open", confirm=True)
            else:
                scope_case = hook.run(case_lookup(selector))
                open_tasks = hook.get_case_tasks(scope_case.id, status="Open")
            plans = self._plan(open_tasks, types, report)
            cases: dict[str, Case] = {scope_case.id: scope_case} if scope_case else {}
            for plan in plans.values():
                plan.chats = hook.get_chats(plan.case_id)
                pending = []
                for task in plan.tasks:
                    answer = answered_by(task, plan.chats)
                    if answer is None:
                        pending.append(task)
                    else:
                        report.skip(
                            task,
                            f"already answered: creditor message {answer.id} at {answer.date_created.isoformat()} "
                            "is not older than the task",
                        )
                plan.tasks = pending
                if pending and plan.case_id not in cases:
                    cases[plan.case_id] = hook.get_case(plan.case_id)
            todo = [p for p in plans.values() if p.tasks]

            # ---- render and validate every reply before the first post
            for plan in todo:
                plan.message = self._render_case(plan, cases.get(plan.case_id), templates, jinja_context)

            # ---- cap, then post (or not)
            if max_replies is not None and len(todo) > max_replies:
                for plan in todo[max_replies:]:
                    for task in plan.tasks:
                        report.skip(task, f"max_replies reached ({max_replies} per run)")
                todo = todo[:max_replies]
            if dry_run:
                report.rendered = [
                    {"task_id": t.id, "case_id": p.case_id, "message": p.message} for p in todo for t in p.tasks
                ]
                self.log.info(
                    "dry_run: %d message(s) rendered for %d task(s); nothing posted.", len(todo), len(report.rendered)
                )
            else:
                try:
                    for plan in todo:
                        self._post_case(hook, plan, sender, report)
                finally:
                    self.log.info(
                        "Replied to %d task(s), skipped %d, %d need a human.",
                        len(report.replied),
                        len(report.skipped),
                        len(report.needs_human),
                    )

        for entry in report.skipped:
            self.log.info("Skipped task %s: %s", entry["task_id"], entry["reason"])
        if report.needs_human:
            self.log.info(
                "Needs a human in Debitura: %s",
                ", ".join(f"{h['task_id']} ({h['type']})" for h in report.needs_human),
            )
        push_solution_url(context, next((h["solution_url"] for h in report.needs_human if h["solution_url"]), None))
        return report.as_xcom()

    def _plan(self, open_tasks: Sequence[Task], types: Sequence[str], report: _Report) -> dict[str, _CasePlan]:
        """Sort the open tasks into: to answer (grouped by case, in API order), refused, needs a human."""
        plans: dict[str, _CasePlan] = {}
        for task in open_tasks:
            if not task.is_api_resolvable:
                report.human(task)
                continue
            if task.type not in types:
                continue  # a chat type the DAG chose not to answer: out of scope
            refusal = action_refusal(task)
            if refusal is not None:
                report.skip(task, refusal)
                report.human(task)
                continue
            assert task.case_id is not None  # action_refusal checked it
            plans.setdefault(task.case_id, _CasePlan(case_id=task.case_id)).tasks.append(task)
        return plans

    @staticmethod
    def _render_case(plan: _CasePlan, case: Case | None, templates: TemplateSet, jinja_context: dict[str, Any]) -> str:
        partner = latest_partner_message(plan.chats)
        case_dict = case.to_api_dict() if case else None
        replies = []
        for task in sorted(plan.tasks, key=lambda t: t.date_created):
            name, template = templates.for_type(task.type or "")
            replies.append(
                render_reply(
                    template,
                    template_name=name,
                    task=task.to_api_dict(),
                    case=case_dict,
                    partner_message=partner.message if partner else None,
                    context=jinja_context,
                )
            )
        return validate_reply(
            combine_replies(replies),
            where=f"the combined reply for case {plan.case_id} ({len(plan.tasks)} chat tasks)",
        )

    def _post_case(self, hook: DebituraHook, plan: _CasePlan, sender: str, report: _Report) -> None:
        not_before = min(t.date_created for t in plan.tasks)
        known_ids = [c.id for c in plan.chats]
        try:
            posted = hook.post_chat(plan.case_id, plan.message, user_email=sender)
        except DebituraAmbiguousWriteError as exc:
            self.log.warning(
                "Posting to case %s may or may not have worked (%s); reading the chat before anything else.",
                plan.case_id,
                exc,
            )
            chats = hook.get_chats(plan.case_id)
            posted = find_own_message(chats, plan.message, not_before=not_before, known_ids=known_ids)
            if posted is None:
                new = [c for c in chats if c.id not in set(known_ids)]
                if all(answered_by(t, new) is not None for t in plan.tasks):
                    for task in plan.tasks:
                        report.skip(task, "answered by another creditor message while our post was in doubt")
                    return
                # Even a 5xx can come back after the backend stored the message (a proxy's 502, a gateway's
                # 504), and the chat history may show it only later: never post again in this run.
                raise DebituraAmbiguousWriteError(
                    f"Posting the reply to case {plan.case_id} failed after the request was sent ({exc}), so "
                    "Debitura may still have stored it, and it is not in the case's chat history yet. Not posting "
                    "again in this run. A re-run (task retry) reads the history first, so it sends the reply only "
                    "if this one never arrived.",
                    method=exc.method,
                    path=exc.path,
                    cause=exc,
                    status=exc.status,
                ) from exc
            self.log.info("Our message is in case %s's chat (id %s): counted as sent.", plan.case_id, posted.id)
        for task in plan.tasks:
            report.replied.append({"task_id": task.id, "case_id": plan.case_id, "chat_message_id": posted.id})
        self.log.info("Replied on case %s (message %s) for %d task(s).", plan.case_id, posted.id, len(plan.tasks))
