"""Triage with people in the loop: tasks only a person can resolve go to Airflow's Required Actions (Airflow 3.1+).

What it shows
    1. ``auto_reply`` (:class:`DebituraReplyToChatTasksOperator`) answers the chat-driven tasks from templates,
       exactly once.
    2. ``list_for_people`` (:class:`DebituraListTasksOperator`, ``needs_human_only=True``) lists every task no
       API call can resolve (SignContract, AssignBankAccount, ReviewPartner, SelectQuoteWinner,
       CaseValidationNeedsInfo, Generic, and types Debitura adds later), with their full details.
    3. ``one_request_per_case`` groups those tasks: one request per case, one per task without a case.
    4. ``hand_to_a_person`` (:class:`DebituraHumanHandoffOperator`, mapped) puts each group in **Required
       Actions** with the tasks' titles, deadlines, descriptions and a link to resolve them in Debitura, and
       the answers **Done** / **Can't do** (with a note). "Done" is checked against Debitura: a task that is
       still open is named in the log and the request comes back. A task solved in the Debitura app closes its
       request by itself, and the DAG goes on without waiting for anyone.
    5. ``report`` lists what happened to each request.

For real use
    - Point ``debitura_default`` at https://customer-api.debitura.com with the ``user_email`` extra set (the
      reply sender). Run a triggerer: the requests wait there (deferred), holding no worker slot.
    - ``assigned_users`` limits who may answer; ``notifiers`` (e.g. ``SlackNotifier``,
      ``SmtpNotifier``) tell them a request is waiting; ``response_timeout`` bounds the wait
      (with ``defaults="Can't do"`` the DAG goes on when nobody answers, otherwise the request fails).
    - ``poll_interval`` is how soon a task solved in the app closes its request and what the wait costs:
      one request per case per interval (docs/human-in-the-loop.md has the formula).
    - ``max_active_runs=1`` and a schedule slower than people answer: a run waits for its requests, and the
      next run hands over only what is still open then (tasks already asked about in a waiting run would be
      asked again by an overlapping run).

On Airflow before 3.1 (no Human-in-the-loop) this file defines no DAG. Nothing here touches the network at
parse time.
"""

from __future__ import annotations

import logging

from airflow_provider_debitura.hitl_compat import HITL_AVAILABLE

log = logging.getLogger("airflow.task")  # the task's own log (a print lands in a collapsed group on Airflow 3)

if HITL_AVAILABLE:
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG, task

    from airflow_provider_debitura.operators.debitura import (
        DebituraListTasksOperator,
        DebituraReplyToChatTasksOperator,
    )
    from airflow_provider_debitura.operators.human_handoff import DebituraHumanHandoffOperator, group_tasks_by_case

    with DAG(
        dag_id="example_debitura_triage_with_approval",
        description="Auto-reply to chat tasks; hand everything else to a person in Required Actions.",
        schedule="0 8 * * 1-5",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["debitura", "example", "human-in-the-loop"],
    ):
        list_for_people = DebituraListTasksOperator(task_id="list_for_people", needs_human_only=True, shape="full")

        auto_reply = DebituraReplyToChatTasksOperator(
            task_id="auto_reply",
            reply_template=(
                "Hello, thank you for your message on case {{ case.creditorReference }}. "
                "We are on it and will get back to you by {{ ds }}."
            ),
            retries=2,
            retry_delay=timedelta(minutes=2),
        )

        @task
        def one_request_per_case(listed: list[dict]) -> list[list[dict]]:
            """The tasks for people, one group per case (or per task without a case)."""
            return group_tasks_by_case(listed)

        hand_to_a_person = DebituraHumanHandoffOperator.partial(
            task_id="hand_to_a_person",
            body="Debitura needs a person for this. Your answer is checked against Debitura.",
            poll_interval=60,
            response_timeout=timedelta(days=2),
            # assigned_users=[{"id": "alice", "name": "Alice"}],
            # notifiers=[SlackNotifier(slack_conn_id="slack", text="{{ task.subject }} needs you")],
        ).expand(debitura_tasks=one_request_per_case(list_for_people.output))

        @task(trigger_rule="all_done")
        def report(outcomes: list) -> dict:
            """How each request ended: done, cant_do, cleared_in_debitura or already_cleared."""
            summary: dict[str, int] = {}
            for outcome in outcomes:
                if outcome:
                    summary[outcome["outcome"]] = summary.get(outcome["outcome"], 0) + 1
            log.info("Handoff outcomes: %s", summary)
            return summary

        auto_reply >> list_for_people
        report(hand_to_a_person.output)
