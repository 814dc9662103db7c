"""Task triage on a schedule: reply to chat tasks from templates, send the rest to humans.

What it shows
    1. ``list_open_tasks`` (:class:`DebituraListTasksOperator`) puts the whole open queue into XCom as task
       dicts with Debitura's own field names, every page read.
    2. ``auto_reply`` (:class:`DebituraReplyToChatTasksOperator`) answers the chat-driven tasks (ReplyToChat,
       ClientInputRequired, MoreInfoNeeded) with replies rendered from sandboxed Jinja templates. It checks
       each case's chat history first, so a re-run, a retry or the next scheduled run never answers the same
       task twice. Its report lists what it replied to, what it skipped and why, and what needs a human.
    3. ``notify_human`` is mapped over every task no API call can resolve (sign a contract, assign a bank
       account, review a partner, ...): one mapped task each, carrying the task's ``solutionUrl``.

For real use
    - Point ``debitura_default`` at https://customer-api.debitura.com, with the ``user_email`` extra set to
      the teammate replies are sent as (an active user of the API key's team).
    - Write replies your collection partners can act on; start with ``dry_run=True`` and read the report.
    - Swap the ``notify_human`` body for a real notifier, for example::

          from airflow.providers.slack.notifications.slack import SlackNotifier
          SlackNotifier(slack_conn_id="slack", channel="#collections",
                        text="{{ params.type }} needs you: {{ params.url }}").notify(context)

      or ``airflow.utils.email.send_email(to=[...], subject=..., html_content=...)`` on Airflow 2, or an
      ``on_success_callback`` with ``SmtpNotifier`` on Airflow 3.

Nothing here touches the network at parse time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3: the Task SDK
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_debitura.operators.debitura import (
    DebituraListTasksOperator,
    DebituraReplyToChatTasksOperator,
)

REPLY = (
    "Hello, thank you for your message"
    '{% if partner_message %} ("{{ partner_message | truncate(80) }}"){% endif %}. '
    "We are on it for case {{ case.creditorReference }} and will get back to you by {{ ds }}."
)

with DAG(
    dag_id="example_debitura_task_triage",
    description="List the open Debitura queue, auto-reply to chat tasks, notify humans about the rest.",
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["debitura", "example"],
):
    list_open_tasks = DebituraListTasksOperator(task_id="list_open_tasks", status="Open")

    auto_reply = DebituraReplyToChatTasksOperator(
        task_id="auto_reply",
        reply_template=REPLY,
        reply_templates={
            "MoreInfoNeeded": "We will upload what you asked for on case {{ case.creditorReference }} today.",
        },
        max_replies=50,
        # After an ambiguous post failure the task fails without posting again; the retry reads the chat
        # history first and posts only if the first message never arrived.
        retries=2,
        retry_delay=timedelta(minutes=2),
        # For real use, also pool="debitura_replies" (one slot): two reply tasks running at the same time on
        # one account could both answer a case before either sees the other's message.
    )

    @task
    def tasks_for_humans(report: dict) -> list[dict]:
        return report["needs_human"]

    @task
    def notify_human(item: dict) -> str:
        """One mapped task per open task a person must resolve; swap the print for a real notifier."""
        message = f"ACTION NEEDED: {item['type']} task {item['task_id']} -> {item['solution_url']}"
        print(message)
        return message

    list_open_tasks >> auto_reply
    notify_human.expand(item=tasks_for_humans(auto_reply.output))
