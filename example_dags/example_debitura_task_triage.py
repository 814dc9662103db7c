"""Task triage on a schedule: reply to chat tasks from templates, tell humans about the rest in one digest.

What it shows
    1. ``auto_reply`` (:class:`DebituraReplyToChatTasksOperator`) answers the chat-driven tasks (ReplyToChat,
       ClientInputRequired, MoreInfoNeeded) with replies rendered from sandboxed Jinja templates, at most
       ``max_replies`` cases per run (oldest first). It lists only those types and reads only the cases it
       answers, and reads each case's chat history again right before posting, so a re-run, a retry or the
       next scheduled run never answers the same task twice. Its report lists what it replied to, what it
       skipped and why, and any case it could not answer (then the task fails, so someone looks).
    2. ``list_human_tasks`` (:class:`DebituraListTasksOperator` with ``needs_human_only=True`` and
       ``shape="counts"``) returns a digest: counts by type and the oldest 20 tasks with their links, a small
       XCom at any queue size. It counts from the API's totals (one page per task type, not every page), so it
       costs the same 8 requests at 500 or 50,000 open tasks; the number of cases is not known that way
       (``cases`` is None; ``shape="summary"`` reads every page and counts them).
    3. ``notify_humans`` sends that digest as one message (here: the task log). One notification per run
       scales to any queue; mapping one task per open task would hit ``[core] max_map_length`` (1,024) and
       start a worker process per task. For one item per case, use ``shape="by_case"`` and
       ``notify.expand(case=list_human_tasks.output)`` (up to 1,024 cases).

For real use
    - Point ``debitura_default`` at https://customer-api.debitura.com, with the ``user_email`` extra set to
      the teammate replies are sent as (an active user of the API key's team).
    - Write replies your collection partners can act on; start with ``dry_run=True`` and read the report.
    - Put every reply task of one Debitura account in one Airflow pool with one slot (``pool="debitura_replies"``):
      two runs started at the same instant could both answer a case.
    - Swap the ``notify_humans`` body for a real notifier, for example::

          from airflow.providers.slack.notifications.slack import SlackNotifier
          SlackNotifier(slack_conn_id="slack", channel="#collections", text=digest).notify(context)

      or ``airflow.utils.email.send_email(to=[...], subject=..., html_content=...)`` on Airflow 2, or an
      ``on_success_callback`` with ``SmtpNotifier`` on Airflow 3.

Cost per run with ``max_replies=50``: the reply operator's listing of the chat-driven types (its pages: 30 at
5,000 open tasks, of which 2,900 chat-driven) plus about four requests per answered case, and 8 requests for the
digest at any queue size (docs/operators.md). Nothing here touches the network at parse time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum

try:  # Airflow 3: the Task SDK
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_debitura.operators.list_tasks import DebituraListTasksOperator
from airflow_provider_debitura.operators.reply_to_chat import DebituraReplyToChatTasksOperator

log = logging.getLogger("airflow.task")

REPLY = (
    "Hello, thank you for your message"
    '{% if partner_message %} ("{{ partner_message | truncate(80) }}"){% endif %}. '
    "We are on it for case {{ case.creditorReference }} and will get back to you within two business days."
)

with DAG(
    dag_id="example_debitura_task_triage",
    description="Auto-reply to Debitura chat tasks, send one digest of the tasks that need a human.",
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["debitura", "example"],
):
    auto_reply = DebituraReplyToChatTasksOperator(
        task_id="auto_reply",
        reply_template=REPLY,
        reply_templates={
            "MoreInfoNeeded": "We will upload what you asked for on case {{ case.creditorReference }} today.",
        },
        max_replies=50,
        # After an ambiguous post failure, or a case that answered 404, the task fails after answering the
        # others; the retry reads each chat history first and posts only what never arrived.
        retries=2,
        retry_delay=timedelta(minutes=2),
    )

    list_human_tasks = DebituraListTasksOperator(task_id="list_human_tasks", needs_human_only=True, shape="counts")

    @task
    def notify_humans(summary: dict[str, Any]) -> str:
        """One digest of every open task a person must resolve; swap the log line for a real notifier."""
        cases = f", on {summary['cases']} case(s)" if summary["cases"] is not None else ""
        lines = [f"{summary['total']} Debitura task(s) need a person{cases}:"]
        lines += [f"  {count:>5}  {name}" for name, count in summary["by_type"].items()]
        if summary["oldest"]:
            lines.append(f"Oldest {len(summary['oldest'])}:")
        for item in summary["oldest"]:
            where = f"case {item['caseReference']}" if item["caseId"] else "the account"
            lines.append(f"  {item['type']} on {where}: {item['solutionUrl']}")
        digest = "\n".join(lines)
        log.info("%s", digest)
        return digest

    auto_reply >> list_human_tasks
    notify_humans(list_human_tasks.output)
