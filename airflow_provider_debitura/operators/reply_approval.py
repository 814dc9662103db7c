"""Chat replies a person approves (and may edit) in Airflow's Required Actions before they are posted (Airflow 3.1+).

The replies are planned and rendered by the reply operator's own phases (:mod:`airflow_provider_debitura.replies`),
so templates, sandboxing and checks are the same; they are posted by the same exactly-once post phase. Design:
docs/human-in-the-loop.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hitl import compat as hitl_compat
from airflow_provider_debitura.hitl.compat import HITLOperator, refuse_fixed_args, require_hitl
from airflow_provider_debitura.hitl.markdown import escape_markdown, format_deadline
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.models import TaskType
from airflow_provider_debitura.operators.reply_plan import plan_readings
from airflow_provider_debitura.replies import (
    CaseDraft,
    CaseReading,
    ReplyReport,
    compile_templates,
    latest_partner_message,
    post_drafts,
    render_case,
    template_context,
)
from airflow_provider_debitura.replies.failures import case_failure
from airflow_provider_debitura.replies.templates import clean_reply
from airflow_provider_debitura.replies.text import display_text
from airflow_provider_debitura.triggers.human_handoff import DebituraHandoffTrigger
from airflow_provider_debitura.validation import (
    as_bool,
    as_limit,
    case_selector,
    connection_id,
    has_visible_text,
    positive_seconds,
    task_types,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["DebituraReplyApprovalOperator"]

MAX_QUOTE = 1_000
"""Characters of the partner's message quoted in the request."""


class DebituraReplyApprovalOperator(HITLOperator):
    """Render replies to Debitura's chat tasks, ask a person to approve (and edit) them, then post them exactly once.

    The request shows, per case: your reference, the partner's last message, the tasks the reply clears and the
    reply, which is also an editable field (leave it empty to send nothing to that case). **Approve** posts the
    replies as they stand then, each checked again (visible text, at most 10,000 characters; one bad text posts
    nothing); **Reject** posts nothing; at ``response_timeout`` nothing is posted unless
    ``post_on_timeout=True``. Before posting, each case is re-checked: a task solved elsewhere, a partner who
    wrote again since the reply was drafted, or a case that is gone are skipped and reported.

    Returns the reply report (``replied``, ``skipped``, ``failed``, ...) plus ``outcome`` (``approved``,
    ``rejected``, ``timed_out``, ``nothing_to_approve``), ``edited`` (case references), ``responded_by``
    and ``responded_at``.

    :param reply_template: Jinja reply for every chat type without its own template (as the reply operator).
    :param reply_templates: ``{task_type: Jinja string}``.
    :param task_types: Chat-driven types to answer (default all three).
    :param user_email: Sender; default the connection's ``user_email`` extra.
    :param max_replies: At most this many cases per request.
    :param case_id: Limit to one case (or ``creditor_reference`` / ``case_reference``).
    :param creditor_reference: Limit to the case with your own reference.
    :param case_reference: Limit to the case with Debitura's 8-character reference.
    :param debitura_conn_id: Airflow connection to Debitura.
    :param subject: Headline in Required Actions (default "Approve N Debitura chat replies"). Templated.
    :param body: Markdown shown above the cases. Templated.
    :param post_on_timeout: At ``response_timeout``, post the replies as rendered instead of nothing.
    :param response_poll_interval: Seconds between reads of the answer inside the trigger.
    :param notifiers: Airflow notifiers called when the request opens.
    :param assigned_users: Who may answer.
    :param response_timeout: How long a person has (``timedelta``).
    """

    APPROVE = "Approve"
    REJECT = "Reject"
    FIXED_ARGS = ("options", "multiple", "params", "defaults")

    template_fields: Sequence[str] = (
        "subject",
        "body",
        "debitura_conn_id",
        "case_id",
        "creditor_reference",
        "case_reference",
        "task_types",
        "user_email",
        "max_replies",
    )
    ui_color = "#fdf0d5"

    def __init__(
        self,
        *,
        reply_template: str | None = None,
        reply_templates: Mapping[str, str] | None = None,
        task_types: Sequence[str] | str | None = None,
        user_email: str | None = None,
        max_replies: int | str | None = None,
        case_id: str | None = None,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
        debitura_conn_id: str = DebituraHook.default_conn_name,
        subject: str | None = None,
        body: str | None = None,
        post_on_timeout: bool = False,
        response_poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        require_hitl(type(self).__name__)
        refuse_fixed_args(type(self).__name__, self.FIXED_ARGS, kwargs)
        self.post_on_timeout = as_bool("post_on_timeout", post_on_timeout)
        super().__init__(
            subject=subject or "",
            body=body,
            options=[self.APPROVE, self.REJECT],
            defaults=[self.APPROVE if self.post_on_timeout else self.REJECT],
            multiple=False,
            **kwargs,
        )
        self.reply_template = reply_template
        self.reply_templates = dict(reply_templates) if reply_templates is not None else None
        self.task_types = task_types
        self.user_email = user_email
        self.max_replies = max_replies
        self.case_id = case_id
        self.creditor_reference = creditor_reference
        self.case_reference = case_reference
        self.debitura_conn_id = debitura_conn_id
        self.response_poll_interval = positive_seconds("response_poll_interval", response_poll_interval)
        compile_templates(reply_template, reply_templates, self._chat_types(parse_time=True))

    def _chat_types(self, *, parse_time: bool = False) -> list[str]:
        chat = sorted(TaskType.chat_driven())
        if self.task_types is None or (parse_time and "{{" in str(self.task_types)):
            return chat
        types = task_types("task_types", self.task_types) or []
        wrong = [t for t in types if t not in TaskType.chat_driven()]
        if wrong or not types:
            raise DebituraConfigError(
                f"task_types={types} must be a non-empty subset of {chat}: only chat-driven tasks get replies."
            )
        return types

    def _hook(self) -> DebituraHook:
        return DebituraHook(debitura_conn_id=connection_id(self.debitura_conn_id))

    # -- draft and ask --

    def execute(self, context: Context) -> Any:
        """Plan and render every case's reply; ask a person when there is one, else return at once.

        :param context: the Airflow task context.
        """
        report = ReplyReport()
        readings, drafts = self._draft(context, report)
        if not drafts:
            self.log.info("No chat task needs a reply: nothing to approve.")
            return {"outcome": "nothing_to_approve", "edited": [], **report.as_xcom()}
        self.params = _reply_params(drafts)
        self.subject = (self.subject or "").strip() or f"Approve {len(drafts)} Debitura chat repl{_ies(drafts)}"
        self.body = approval_body(readings, drafts, intro=self.body)
        hitl_compat.upsert_request(
            context["task_instance"].id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=False,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        for notifier in self.notifiers:
            notifier(context)
        carry = {"drafts": [d.to_dict() for d in drafts], "report": report.as_xcom()}
        timeout_at = time.time() + self.response_timeout.total_seconds() if self.response_timeout else None
        self.log.info("Waiting for a person to approve %d reply(ies).", len(drafts))
        self.defer(
            trigger=DebituraHandoffTrigger(
                ti_id=str(context["task_instance"].id),
                tasks=[],  # nothing to watch in Debitura: the post re-checks every case
                debitura_conn_id=connection_id(self.debitura_conn_id),
                response_poll_interval=self.response_poll_interval,
                timeout_at=timeout_at,
                defaults=self.defaults,
                carry=carry,
            ),
            method_name="execute_complete",
            kwargs={"carry": carry},
        )

    def _draft(self, context: Context, report: ReplyReport) -> tuple[list[CaseReading], list[CaseDraft]]:
        """The reply operator's plan and render phases, keeping what was read (for the request's body)."""
        types = self._chat_types()
        templates = compile_templates(self.reply_template, self.reply_templates, types)
        selector = case_selector(self.case_id, self.creditor_reference, self.case_reference, required=False)
        with self._hook() as hook:
            readings = plan_readings(
                hook,
                report,
                selector=selector,
                types=types,
                templates=templates,
                max_replies=as_limit("max_replies", self.max_replies),
                posting=False,  # the posts come after a person's answer, in another try
                log=self.log,
            )
        jinja_context = template_context(context)
        return readings, [render_case(reading, templates, jinja_context) for reading in readings]

    # -- the answer --

    def execute_complete(
        self, context: Context, event: dict[str, Any], carry: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        """Post the approved (possibly edited) replies, or nothing.

        :param context: the Airflow task context.
        :param event: the trigger's event, or Airflow's resume payload of a person's answer.
        :param carry: the drafts and the draft-time report (the trigger's event carries them too).
        """
        carry = event.get("carry") or carry or {}
        drafts = [CaseDraft.from_dict(d) for d in carry.get("drafts") or []]
        self.params = _reply_params(drafts)  # the fields asked, so the answer is checked against them
        super().execute_complete(context=context, event=event)  # validates the option and the fields
        chosen, timed_out = event["chosen_options"][0], bool(event.get("timedout"))
        report = _report_from(carry.get("report") or {})
        answer = {
            "responded_by": event.get("responded_by_user"),
            "responded_at": _iso(event.get("responded_at")),
        }
        if chosen == self.REJECT:
            outcome = "timed_out" if timed_out else "rejected"
            self.log.info("%s: posting nothing.", "No answer before the timeout" if timed_out else "Rejected")
            return {"outcome": outcome, "edited": [], **answer, **report.as_xcom()}
        drafts, edited = apply_edits(drafts, event.get("params_input") or {}, report)
        with self._hook() as hook:
            sender = hook.sender_email(self.user_email, hook.settings)
            drafts = _drop_if_partner_wrote_again(hook, drafts, report, self.log)
            post_drafts(
                hook,
                drafts,
                sender=sender,
                report=report,
                recheck_open_tasks=sorted(TaskType.chat_driven()),  # one reply clears every chat task of a case
                yield_to_other_run=True,  # seen_chat_ids were just refreshed: only a concurrent run's message counts
                own_order=True,  # two approvals answered together do not walk the cases in lockstep
                log=self.log,
            )
        report.log_summary(self.log)
        outcome = "approved_on_timeout" if timed_out else "approved"
        return {"outcome": outcome, "edited": edited, **answer, **report.as_xcom()}


# ------------------------------------------------------------------------------------------------ helpers


def _ies(drafts: Sequence[CaseDraft]) -> str:
    return "y" if len(drafts) == 1 else "ies"


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _field_title(draft: CaseDraft) -> str:
    return display_text(f"Reply to {draft.creditor_reference or draft.case_id}")


def _param_key(index: int) -> str:
    return f"reply_{index + 1}"


def _reply_params(drafts: Sequence[CaseDraft]) -> Any:
    """One editable text field per case, pre-filled with the rendered reply."""
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamsDict

    return ParamsDict(
        {
            _param_key(i): Param(
                draft.message,
                type=["null", "string"],  # optional: an emptied field (null from the UI) sends nothing
                maxLength=10_000,
                format="multiline",
                title=_field_title(draft),
                description="Edit before approving; leave empty to send nothing to this case.",
            )
            for i, draft in enumerate(drafts)
        }
    )


def approval_body(readings: Sequence[CaseReading], drafts: Sequence[CaseDraft], *, intro: str | None) -> str:
    """The request's Markdown: per case, your reference, the partner's last message, the tasks the reply clears
    and the reply. Text from Debitura and the rendered replies are escaped (shown, never interpreted).

    :param readings: what was read per case (same order as ``drafts``).
    :param drafts: the rendered replies.
    :param intro: the DAG's own text, shown first.
    """
    parts = [intro.strip()] if intro and intro.strip() else []
    for index, (reading, draft) in enumerate(zip(readings, drafts, strict=True)):
        partner = latest_partner_message(reading.chats)
        lines = [f"### {index + 1}. {escape_markdown(draft.creditor_reference or draft.case_id)}"]
        cleared = ", ".join(escape_markdown(f"{t.type_label or t.type}: {t.title or t.id}") for t in reading.pending)
        lines.append(f"**Clears:** {cleared}")
        if partner is not None and partner.message:
            quote = partner.message[:MAX_QUOTE] + ("…" if len(partner.message) > MAX_QUOTE else "")
            when = format_deadline(partner.date_created.isoformat())
            lines.append(f"**The partner wrote** ({when}):\n\n" + _quote(quote))
        else:
            lines.append("**The partner wrote:** (no partner message in the chat)")
        field = escape_markdown(_field_title(draft))
        lines.append(f"**Reply** (editable below as *{field}*):\n\n" + _quote(draft.message))
        parts.append("\n\n".join(lines))
    parts.append(
        "**Approve** posts the replies as they stand in the fields below (one message per case; an emptied "
        "field sends nothing to that case). **Reject** posts nothing. Each case is checked again right before "
        "posting: a case whose chat tasks are no longer exactly the ones listed here (a task raised, changed or "
        "solved since), or whose partner wrote again meanwhile, gets nothing and is reported."
    )
    return "\n\n".join(parts)


def _quote(text: str) -> str:
    return "\n".join(f"> {escape_markdown(line)}" if line.strip() else ">" for line in text.splitlines())


def apply_edits(
    drafts: Sequence[CaseDraft], params_input: Mapping[str, Any], report: ReplyReport
) -> tuple[list[CaseDraft], list[str]]:
    """The drafts as the person left them: edited texts replace the rendered ones; an emptied field (``null``, as
    the UI sends it, empty or only whitespace) sends nothing to its case (reported as skipped) while the others
    are posted. Control characters in an edit are removed, with a warning
    (:func:`~airflow_provider_debitura.replies.templates.clean_reply`). Unknown fields or non-text
    values fail before anything is posted.

    :param drafts: the rendered drafts, in the request's order.
    :param params_input: the answer's form values (``reply_1``, ...).
    :param report: where dropped cases are recorded.
    """
    keys = {_param_key(i) for i in range(len(drafts))}
    unknown = set(params_input) - keys
    if unknown:
        raise DebituraConfigError(
            f"The answer holds fields {sorted(unknown)} that no case has (expected {sorted(keys)})."
        )
    kept: list[CaseDraft] = []
    edited: list[str] = []
    for index, draft in enumerate(drafts):
        key = _param_key(index)
        text = params_input.get(key, draft.message)
        if text is not None and not isinstance(text, str):
            raise DebituraConfigError(
                f"{key}={text!r} must be text (or empty to send nothing to case {draft.label}), "
                f"got {type(text).__name__}."
            )
        if text is None or not has_visible_text(text):
            for task in draft.tasks:
                report.skip(task.id, draft.case_id, "left empty by the approver", draft.creditor_reference)
            continue
        text = clean_reply(text, where=f"{key} (the reply to case {draft.label}, as approved)")
        if text != draft.message:
            edited.append(draft.creditor_reference or draft.case_id)
            draft = draft.with_message(text)
        kept.append(draft)
    return kept, edited


def _drop_if_partner_wrote_again(
    hook: DebituraHook, drafts: Sequence[CaseDraft], report: ReplyReport, log: Any
) -> list[CaseDraft]:
    """Drafts whose case has no partner message newer than the draft: a reply approved for an older message is
    not sent after the partner wrote again (the next run drafts one that sees the new message). One request
    per case; a case that is gone is left to the post phase, which reports it.

    The kept drafts' ``seen_chat_ids`` become the history read here, right before posting: a message of our
    own sender that appears after it comes from another run posting at the same time (e.g. a second approval
    of the same cases), and makes this run leave the rest to it; an older one only skips its case."""
    kept = []
    for draft in drafts:
        try:
            chats = hook.get_chats(draft.case_id)
        except Exception as exc:
            if case_failure(exc) is None:
                raise
            kept.append(draft)
            continue
        seen = set(draft.seen_chat_ids)
        new = [c for c in chats if c.is_from_partner and c.id not in seen]
        if not new:
            kept.append(replace(draft, seen_chat_ids=tuple(c.id for c in chats)))
            continue
        reason = (
            f"the partner wrote again (message {new[-1].id} at {new[-1].date_created.isoformat()}) while the reply "
            "waited for approval: not posting a reply to the older message; the next run drafts one"
        )
        log.warning("Not replying on case %s: %s", draft.label, reason)
        for task in draft.tasks:
            report.skip(task.id, draft.case_id, reason, draft.creditor_reference)
    return kept


def _report_from(data: Mapping[str, Any]) -> ReplyReport:
    """The draft-time report (skips, refusals, failures, cap) carried through the wait."""
    report = ReplyReport()
    for name in ("replied", "skipped", "needs_human", "failed"):
        getattr(report, name).extend(data.get(name) or [])
    report.capped = data.get("capped")
    return report
