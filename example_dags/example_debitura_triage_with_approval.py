"""Triage with people in the loop: a person approves the chat replies, and gets the tasks only a person can
resolve, both in Airflow's Required Actions (Airflow 3.1+).

What it shows
    1. ``approve_replies`` (:class:`DebituraReplyApprovalOperator`) renders one reply per case for the
       chat-driven tasks and asks a person in **Required Actions** (Browse -> Required Actions): per case your
       reference, the partner's last message, the tasks the reply clears and the reply, editable. **Approve**
       posts the replies as the person left them (an emptied field sends nothing to that case), exactly once,
       after checking each case again (a new task, a partner who wrote again, a task solved elsewhere: that
       case is skipped and reported); **Reject** posts nothing.
    2. ``list_for_people`` (:class:`DebituraListTasksOperator`, ``needs_human_only=True``) lists every task no
       API call can resolve (SignContract, AssignBankAccount, ReviewPartner, SelectQuoteWinner,
       CaseValidationNeedsInfo, Generic, and types Debitura adds later), with their full details.
    3. ``one_request_per_case`` groups those tasks: one request per case, one per task without a case.
    4. ``hand_to_a_person`` (:class:`DebituraHumanHandoffOperator`, mapped) puts each group in Required
       Actions with the tasks' titles, deadlines, descriptions and a link to resolve them in Debitura, and
       the answers **Done** / **Can't do** (with a note). "Done" is checked against Debitura: a task that is
       still open is named in the log, and the request comes back while every task it lists is still open
       (Airflow never re-words a request; when only some are solved it ends ``partly_done``, the rest listed in
       ``still_open``). A task solved in the Debitura app closes its request by itself, and the DAG goes on
       without waiting for anyone.
    5. ``report`` lists what happened to the replies and to each handoff.

    It has no schedule: triggering it (also in ``make airflow``) starts exactly that run, and its requests
    appear in Required Actions within seconds.

For real use
    - Point ``debitura_default`` at https://customer-api.debitura.com with the ``user_email`` extra set (the
      reply sender). Run a triggerer: the requests wait there (deferred), holding no worker slot.
    - A schedule (e.g. ``schedule="0 8 * * 1-5"``) with ``max_active_runs=1``: a run waits for its people,
      and the next run asks only about what is still open then. Note that triggering a paused scheduled DAG
      from the UI unpauses it, so its schedule starts a run at once and the manual run waits behind it.
    - ``assigned_users`` limits who may answer; ``notifiers`` (e.g. ``SlackNotifier``,
      ``SmtpNotifier``) tell them a request is waiting; ``response_timeout`` bounds the wait
      (nothing is posted at the timeout unless ``post_on_timeout=True``; a handoff with
      ``defaults="Can't do"`` goes on, otherwise it fails).
    - ``pool="debitura_replies"`` (one slot) for every reply and approval task of an account; two approvals
      of the same cases never answer a case twice anyway (docs/human-in-the-loop.md).
    - ``poll_interval`` is how soon a task solved in the app closes its handoff request and what the wait
      costs: one request per case per interval (docs/human-in-the-loop.md has the formula).

On Airflow before 3.1 (no Human-in-the-loop) this file defines no DAG. Nothing here touches the network at
parse time.
"""

from __future__ import annotations

import logging

from airflow_provider_debitura.hitl import HITL_AVAILABLE

log = logging.getLogger("airflow.task")  # the task's own log (a print lands in a collapsed group on Airflow 3)

if HITL_AVAILABLE:
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG, task

    from airflow_provider_debitura.operators.human_handoff import DebituraHumanHandoffOperator, group_tasks_by_case
    from airflow_provider_debitura.operators.list_tasks import DebituraListTasksOperator
    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator

    with DAG(
        dag_id="example_debitura_triage_with_approval",
        description="A person approves the chat replies and gets the other tasks, in Required Actions.",
        schedule=None,  # each trigger is one run, asked at once (see "For real use" for a schedule)
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["debitura", "example", "human-in-the-loop"],
    ):
        list_for_people = DebituraListTasksOperator(task_id="list_for_people", needs_human_only=True, shape="full")

        approve_replies = DebituraReplyApprovalOperator(
            task_id="approve_replies",
            reply_template=(
                "Hello, thank you for your message on case {{ case.creditorReference }}. "
                "We are on it and will get back to you within two business days."
            ),
            max_replies=20,
            body="Replies to the collection partners' chat messages. Edit any of them before approving.",
            response_timeout=timedelta(days=1),
            # assigned_users=[{"id": "alice", "name": "Alice"}],
            # pool="debitura_replies",
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
        def report(replies: dict | None, outcomes: list) -> dict:
            """What the approval posted, and how each handoff ended (done, partly_done, cant_do, cleared_in_debitura,
            ...)."""
            summary: dict[str, int] = {}
            for outcome in outcomes:
                if outcome:
                    summary[outcome["outcome"]] = summary.get(outcome["outcome"], 0) + 1
            replied = len((replies or {}).get("replied") or [])
            log.info(
                "Replies: %s, %d task(s) answered. Handoff outcomes: %s",
                (replies or {}).get("outcome"),
                replied,
                summary,
            )
            return {"replies": (replies or {}).get("outcome"), "replied_tasks": replied, "handoffs": summary}

        report(approve_replies.output, hand_to_a_person.output)
