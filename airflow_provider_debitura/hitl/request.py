"""What a handoff request shows: its subject and its Markdown body, built from one Debitura check.

Airflow writes a task instance's request once and never rewrites its subject, body or form: re-opening it
(``upsert_hitl_detail``) keeps them, and so does every later try (the request follows the task instance to each
try's new id). So a request only says what stays true while it can be open: the tasks Debitura showed open when
it was asked, the ones already solved, and that it opens again after **Done** only while every task it lists is
still open (docs/hitl-reasking.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_debitura.hitl.markdown import escape_markdown, format_deadline, one_line, solution_link

MAX_SUBJECT = 200
"""Characters of a subject (Airflow shows it as one line in Required Actions)."""


def default_subject(tasks: Sequence[Mapping[str, Any]]) -> str:
    """``"Sign contract: Sign the new agreement (account)"``, or ``"3 Debitura tasks on case INV-1002"``.

    :param tasks: the handed-over tasks (handoff dicts).
    """
    if len(tasks) == 1:
        task = tasks[0]
        kind = task.get("typeLabel") or task.get("type") or "Debitura task"
        title = task.get("title") or task["id"]
        subject = f"{kind}: {title} ({_scope(task)})"
    else:
        scopes = {_scope(t) for t in tasks}
        where = f" on {scopes.pop()}" if len(scopes) == 1 else ""
        subject = f"{len(tasks)} Debitura tasks{where}"
    return one_line(subject)[:MAX_SUBJECT]


def _scope(task: Mapping[str, Any]) -> str:
    if task.get("caseReference") or task.get("caseId"):
        return f"case {task.get('caseReference') or task.get('caseId')}"
    if task.get("leadId"):
        return f"lead {task['leadId']}"
    return "account"


def handoff_body(
    tasks: Sequence[Mapping[str, Any]],
    *,
    intro: str | None,
    done: str,
    cant_do: str,
    solved: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The request's Markdown: what Debitura showed when it was asked (:func:`state_line`), each open task (type,
    scope, deadline, description, a link to resolve it), then what each answer does. Text from Debitura is inert
    (:func:`~airflow_provider_debitura.hitl.markdown.escape_markdown`); only clean ``https`` solution URLs link.

    :param tasks: the tasks asked about: open in Debitura.
    :param intro: the DAG's own text, shown first (the operator's ``body``).
    :param done: label of the "done" option.
    :param cant_do: label of the "can't do" option.
    :param solved: handed-over tasks Debitura already showed solved (listed as such, not asked about).
    """
    parts = [intro.strip()] if intro and intro.strip() else []
    parts.append(state_line(tasks, solved, done=done))
    for number, task in enumerate(tasks, start=1):
        parts.append(_task_section(task, number if len(tasks) > 1 else None))
    many = len(tasks) > 1
    parts.append(
        f"Resolve {'them' if many else 'it'} in Debitura, then answer **{done}**: Airflow checks Debitura. "
        f"If {'they are' if many else 'it is'} solved there first, this request closes by itself. "
        f"**{cant_do}** lets the DAG go on without {'them' if many else 'it'}; say why in *note*."
    )
    return "\n\n".join(parts)


def state_line(still_open: Sequence[Mapping[str, Any]], solved: Sequence[Mapping[str, Any]], *, done: str) -> str:
    """What Debitura showed when the request was asked, and when it opens again, in words that stay true for as
    long as the request can be open (Airflow never rewrites it).

    :param still_open: the open tasks (asked about below).
    :param solved: handed-over tasks Debitura already showed solved.
    :param done: label of the "done" option.
    """
    if len(still_open) == 1:
        line = (
            f"**Open in Debitura** when this was asked. This request opens again after **{done}** only while "
            "Debitura still shows this task open: if you see it again, it still is."
        )
    else:
        line = (
            f"**{len(still_open)} tasks open in Debitura** when this was asked. This request opens again after "
            f"**{done}** only while Debitura still shows every one of them open: if you see it again, they all "
            "are. When only some are solved it does not open again (it would list solved tasks); the rest are "
            "reported as still open, for a new request."
        )
    if solved:
        line += " Already solved in Debitura, not asked: " + "; ".join(_label(t) for t in solved) + "."
    return line


def _label(task: Mapping[str, Any]) -> str:
    kind = task.get("typeLabel") or task.get("type") or "Debitura task"
    return escape_markdown(f"{kind}: {task.get('title') or task['id']} ({_scope(task)})")


def _task_section(task: Mapping[str, Any], number: int | None) -> str:
    title = escape_markdown(task.get("title") or task.get("typeLabel") or task.get("type") or task["id"])
    heading = f"### {number}. {title}" if number else f"### {title}"
    facts = [f"**{escape_markdown(task.get('typeLabel') or task.get('type') or 'Unknown type')}**"]
    facts.append(escape_markdown(_scope(task)))
    deadline = format_deadline(task.get("deadline"))
    if deadline:
        facts.append(f"deadline **{deadline}**")
    lines = [heading, " · ".join(facts)]
    if task.get("description"):
        lines.append(escape_markdown(str(task["description"])))
    lines.append(solution_link(task.get("solutionUrl")))
    return "\n\n".join(lines)
