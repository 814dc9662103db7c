"""Event-driven: a DAG run starts by itself when a new Debitura task appears (Airflow 3 only).

What it shows
    1. An ``Asset`` watched by an ``AssetWatcher`` whose trigger, :class:`DebituraNewTasksTrigger`, runs in
       the triggerer: it polls the open queue (sharing the case gates' account-wide poll), and fires one
       asset event per *newly seen* open task of the watched types, with the task's JSON as the payload.
       No run for tasks that were already open when the watcher first started; never a second run for a
       task while it stays open, however large the queue, across triggerer restarts and across a change
       of ``WATCHED_TYPES`` (what it has seen is kept in the asset's state in Airflow's metadata DB).
    2. ``new_tasks`` reads the run's triggering asset events (``triggering_asset_events``; each event's
       ``extra["payload"]`` is a task); ``chat_cases`` and ``for_humans`` split them into cases with a
       chat-driven task (ReplyToChat, ClientInputRequired, MoreInfoNeeded) and tasks a person must resolve.
    3. ``auto_reply`` is mapped over those cases: :class:`DebituraReplyToChatTasksOperator` scoped to the
       case answers it within one poll interval of the partner's message (it reads the chat history
       first, so a replayed event never answers twice).
    4. ``notify_human`` is mapped over the rest (SignContract, AssignBankAccount, ...) with the
       ``solutionUrl`` that opens the task in Debitura.

For real use
    - Point ``debitura_default`` at https://customer-api.debitura.com, with the ``user_email`` extra set
      to the teammate replies are sent as. The DAG must be unpaused; the triggerer must be running.
    - ``poll_interval`` is the reaction time and the request cost: each interval reads the whole open
      queue once per connection per triggerer (ceil(open/100) requests), shared with every case gate.
    - Several events that arrive before the scheduler creates a run land in one run: ``new_tasks`` reads
      them all, never just the first event.
    - Swap the ``notify_human`` body for a real notifier (Slack, e-mail, a ticket).
    - Changing ``WATCHED_TYPES`` and redeploying keeps what was fired: tasks of a newly added type that
      were already open count as backlog (``replay_existing=True`` fires them), tasks created while the
      new version deploys fire. See docs/event-driven.md for first start, restarts, filter changes and limits.

Nothing here touches the network at parse time. On Airflow 2.11 (no ``AssetWatcher``) the file defines
no DAG.
"""

from __future__ import annotations

import logging

log = logging.getLogger("airflow.task")  # the task's own log (a print lands in a collapsed group on Airflow 3)

try:  # Airflow 3: the Task SDK with asset watchers
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11: event-driven scheduling does not exist; define nothing
    AssetWatcher = None

if AssetWatcher is not None:
    from datetime import timedelta

    import pendulum

    from airflow_provider_debitura.models import TaskType
    from airflow_provider_debitura.operators.reply_to_chat import DebituraReplyToChatTasksOperator
    from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger

    WATCHED_TYPES = [
        "ReplyToChat",
        "ClientInputRequired",
        "MoreInfoNeeded",
        "SignContract",
        "AssignBankAccount",
    ]

    debitura_new_tasks = Asset(
        name="debitura_new_tasks",
        uri="debitura://debitura_default/tasks/new",
        watchers=[
            AssetWatcher(
                name="debitura_new_tasks_watcher",
                trigger=DebituraNewTasksTrigger(
                    debitura_conn_id="debitura_default",
                    task_types=WATCHED_TYPES,
                    poll_interval=60,
                ),
            )
        ],
    )

    REPLY = (
        "Hello, thank you for your message"
        '{% if partner_message %} ("{{ partner_message | truncate(80) }}"){% endif %}. '
        "We are looking into case {{ case.creditorReference }} and will get back to you within one business day."
    )

    with DAG(
        dag_id="example_debitura_new_tasks_asset",
        description="Starts when a new Debitura task appears: auto-reply to chat tasks, notify humans about the rest.",
        schedule=[debitura_new_tasks],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # queued events wait and land in the next run, so two runs never answer one case
        tags=["debitura", "example", "event-driven"],
    ):

        @task
        def new_tasks(triggering_asset_events=None) -> list[dict]:
            """Every task this run was started for: one asset event each, possibly several per run."""
            tasks = [
                event.extra["payload"]
                for events in (triggering_asset_events or {}).values()
                for event in events
                if isinstance(event.extra, dict) and isinstance(event.extra.get("payload"), dict)
            ]
            for t in tasks:
                log.info("new %s task %s on case %s", t.get("type"), t["id"], t.get("caseId") or "(account)")
            return tasks

        @task
        def chat_cases(tasks: list[dict]) -> list[str]:
            """Cases with a new chat-driven task: the reply operator answers each case with one message."""
            return sorted(
                {t["caseId"] for t in tasks if TaskType.is_api_resolvable_type(t.get("type")) and t.get("caseId")}
            )

        @task
        def for_humans(tasks: list[dict]) -> list[dict]:
            return [
                {
                    "task_id": t["id"],
                    "type": t.get("type"),
                    "title": t.get("title"),
                    "solution_url": t.get("solutionUrl"),
                }
                for t in tasks
                if not TaskType.is_api_resolvable_type(t.get("type"))
            ]

        found = new_tasks()

        DebituraReplyToChatTasksOperator.partial(
            task_id="auto_reply",
            reply_template=REPLY,
            reply_templates={
                "MoreInfoNeeded": "We will upload what you asked for on case {{ case.creditorReference }} today.",
            },
            # An ambiguous post failure fails the task without posting again; the retry reads the history
            # first. For real use add pool="debitura_replies" (one slot), shared with every reply task on
            # this account, so two runs never answer the same case at the same time.
            retries=2,
            retry_delay=timedelta(minutes=2),
        ).expand(case_id=chat_cases(found))

        @task
        def notify_human(item: dict) -> str:
            """One mapped task per new task a person must resolve; swap the log line for a real notifier."""
            message = f"ACTION NEEDED: {item['type']} {item['title'] or ''} -> {item['solution_url']}"
            log.info("%s", message)
            return message

        notify_human.expand(item=for_humans(found))
