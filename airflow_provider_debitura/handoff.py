"""Handing Debitura tasks to a person: what the request shows, and whether the tasks are still open.

Pure logic, no Airflow: the operator (worker, sync hook) and its trigger (triggerer, async hook) both
use it, so "still open" means the same in both places. The check is written once, as a generator of
requests (:func:`check_steps`), and driven by :func:`run_check` or :func:`arun_check`.

Cost of one check, in requests: one ``GET /cases/{id}/tasks`` per distinct case, plus, for tasks with
no case (account-level, lead or unknown tasks), ``ceil(n / 100)`` for one ``GET /tasks`` listing filtered
by their types (``n`` = open tasks of those types). When such a task looks gone and the listing had more than
one page, it is read again until two passes agree (``2 * ceil(n / 100)`` more): paging over a live queue can
miss a task, and closing a person's request on a miss is the one wrong answer that matters. One page is one
snapshot and needs no second read.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraNotFoundError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.paging import Listing, TaskListing
from airflow_provider_debitura.models import Task, TaskType
from airflow_provider_debitura.replies.text import display_text

if TYPE_CHECKING:
    from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook, DebituraHook

HANDOFF_FIELDS = (
    "id",
    "type",
    "typeLabel",
    "title",
    "description",
    "deadline",
    "caseId",
    "caseReference",
    "leadId",
    "solutionUrl",
)
"""The task fields a handoff keeps (in the request, the trigger's kwargs and the XCom report)."""

_ALIASES = {"task_id": "id", "solution_url": "solutionUrl", "case_id": "caseId", "type_label": "typeLabel"}
"""snake_case names accepted on input, e.g. the reply operator's ``needs_human`` entries."""

MAX_SUBJECT = 200


# ----------------------------------------------------------------------------------------- input


def handoff_tasks(name: str, value: Any) -> list[dict[str, Any]]:
    """The tasks to hand over, from one task dict, a list of them, or their JSON/Python-literal text
    (a template field rendered without ``render_template_as_native_obj``).

    :param name: the parameter name, for errors.
    :param value: what the DAG passed (e.g. an element of ``DebituraListTasksOperator``'s output).
    """
    if isinstance(value, str):
        value = _parse_text(name, value)
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise DebituraConfigError(
            f"{name}={value!r} must be a Debitura task (a dict with at least 'id', as DebituraListTasksOperator "
            "returns them) or a non-empty list of such dicts."
        )
    tasks: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        task = _one_task(f"{name}[{index}]", item)
        tasks.setdefault(task["id"].lower(), task)
    return list(tasks.values())


def _parse_text(name: str, text: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    raise DebituraConfigError(
        f"{name}={text[:200]!r} is text, not a task: pass the task dict itself (e.g. .expand({name}=list_op.output)) "
        "or set render_template_as_native_obj=True on the DAG."
    )


def _one_task(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise DebituraConfigError(f"{where}={item!r} is not a task dict (need at least 'id').")
    data = {_ALIASES.get(key, key): value for key, value in item.items()}
    task_id = data.get("id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise DebituraConfigError(f"{where} has no task 'id' (got keys {sorted(item)}); pass Debitura task dicts.")
    task = {key: data.get(key) for key in HANDOFF_FIELDS}
    task["id"] = task_id.strip()
    return task


# --------------------------------------------------------------------------------- the request


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
    return _one_line(subject)[:MAX_SUBJECT]


def _scope(task: Mapping[str, Any]) -> str:
    if task.get("caseReference") or task.get("caseId"):
        return f"case {task.get('caseReference') or task.get('caseId')}"
    if task.get("leadId"):
        return f"lead {task['leadId']}"
    return "account"


def handoff_body(tasks: Sequence[Mapping[str, Any]], *, intro: str | None, done: str, cant_do: str) -> str:
    """The request's Markdown: each task with its type, scope, deadline, description and a link to
    resolve it in Debitura, then what each answer does. Text from Debitura is escaped (it is data, not
    Markdown); only ``https`` solution URLs become links.

    :param tasks: the tasks (handoff dicts).
    :param intro: the DAG's own text, shown first (the operator's ``body``).
    :param done: label of the "done" option.
    :param cant_do: label of the "can't do" option.
    """
    parts = [intro.strip()] if intro and intro.strip() else []
    for number, task in enumerate(tasks, start=1):
        parts.append(_task_section(task, number if len(tasks) > 1 else None))
    parts.append(
        f"Resolve {'them' if len(tasks) > 1 else 'it'} in Debitura, then answer **{done}**: Airflow checks Debitura, "
        f"and if {'a task' if len(tasks) > 1 else 'the task'} is still open there it tells you and asks again. "
        f"If {'they are' if len(tasks) > 1 else 'it is'} solved in Debitura first, this request closes by itself. "
        f"**{cant_do}** lets the DAG go on without it; say why in *note*."
    )
    return "\n\n".join(parts)


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


_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
"""Every ASCII punctuation character: CommonMark lets each be backslash-escaped, and escaped it starts nothing
(no heading, list, quote, table, code, emphasis, entity, HTML or link)."""

_LINK_FORMING = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)|(?<=@)", re.IGNORECASE)
"""Where GFM's autolink literals start: ``scheme://``, ``www.``, ``user@host``. Backslash escapes do not stop
them (the renderer matches them on the decoded text), a zero-width joiner inside them does."""

ZERO_WIDTH_JOINER = "\u200d"


def escape_markdown(text: Any) -> str:
    """Text shown as itself in a request's Markdown, inert: no link (not even a bare URL, ``www.`` or an e-mail
    address), no heading, list, quote or HTML, and no bidirectional override (those and control characters are
    removed, :func:`~airflow_provider_debitura.replies.text.display_text`). Newlines stay (as soft breaks).

    :param text: text from outside: Debitura, a collection partner, a template.
    """
    inert = _LINK_FORMING.sub(ZERO_WIDTH_JOINER, display_text(str(text)))
    return _MD_PUNCTUATION.sub(r"\\\1", inert)


def _one_line(text: str) -> str:
    return " ".join(display_text(str(text)).split())


_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]!$&'()*+,;=%]+")
"""What an https URL may hold here (RFC 3986's characters, without ``@``): no whitespace, no control or
bidirectional character, nothing that ends a Markdown link."""


def clean_https_url(url: Any) -> str | None:
    """``url`` when it is a clean ``https`` URL with a host (nothing else becomes a link), else None.

    Refused: any whitespace or control character anywhere (``urlparse`` silently drops an embedded newline),
    another scheme, no host, user info (``https://app.debitura.com@evil.example``).

    :param url: the task's ``solutionUrl``.
    """
    if not isinstance(url, str) or not _URL_CHARACTERS.fullmatch(url):
        return None
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError:
        return None
    if parsed.scheme != "https" or not host or not parsed.netloc:
        return None
    return url


def solution_link(url: Any) -> str:
    """A clickable Markdown link for a clean ``https`` URL (:func:`clean_https_url`); anything else is shown
    as inert text, not linked.

    :param url: the task's ``solutionUrl``.
    """
    clean = clean_https_url(url)
    if clean is not None:
        safe = clean.replace("(", "%28").replace(")", "%29")
        return f"**[Open in Debitura]({safe})**"
    if isinstance(url, str) and url.strip():
        return f"Link not shown as a link (not a clean https URL): {escape_markdown(_one_line(url))}"
    return "No solutionUrl on this task: find it in the Debitura app."


def format_deadline(value: Any) -> str | None:
    """``2026-12-01 09:30 UTC`` from an API timestamp (naive means UTC); None when there is none.

    :param value: the task's ``deadline``.
    """
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return escape_markdown(str(value))
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC")


# -------------------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class HandoffCheck:
    """What Debitura says about the handed-over tasks right now.

    :param still_open: tasks Debitura still lists open.
    :param gone: tasks Debitura no longer lists open (solved).
    :param notes: remarks for the log (e.g. a listing that could not verify itself).
    :param missing: tasks on a case that is gone (404): not solved, not open; the handoff fails.
    :param missing_cases: the ids of those cases.
    """

    still_open: tuple[dict[str, Any], ...]
    gone: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    missing: tuple[dict[str, Any], ...] = ()
    missing_cases: tuple[str, ...] = ()

    @property
    def cleared(self) -> bool:
        """Every task is solved (a task whose case is gone is not)."""
        return not self.still_open and not self.missing

    def describe(self) -> str:
        """One log line: counts, then each open task with its link, then notes."""
        parts = [f"{len(self.still_open)} still open, {len(self.gone)} solved"]
        if self.missing:
            parts[0] += f", {len(self.missing)} on a case that is gone ({', '.join(self.missing_cases)})"
        parts += [f"{t.get('type')} {t['id']}: {t.get('solutionUrl') or '(no solutionUrl)'}" for t in self.still_open]
        return "; ".join(parts + list(self.notes))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (a trigger event carries it)."""
        return {
            "still_open": list(self.still_open),
            "gone": list(self.gone),
            "notes": list(self.notes),
            "missing": list(self.missing),
            "missing_cases": list(self.missing_cases),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoffCheck:
        """The check :meth:`to_dict` wrote.

        :param data: the dict.
        """
        return cls(
            tuple(data.get("still_open") or ()),
            tuple(data.get("gone") or ()),
            tuple(data.get("notes") or ()),
            tuple(data.get("missing") or ()),
            tuple(data.get("missing_cases") or ()),
        )


Step = ApiCall[Any] | TaskListing


def check_steps(tasks: Sequence[Mapping[str, Any]]) -> Generator[Step, Any, HandoffCheck]:
    """The requests of one check, as a generator: send each step's result (or throw its error) back in.

    Case tasks: the case's open tasks (one request, no paging, so no drift); a 404 means the case is gone:
    its tasks are reported as ``missing`` (never as solved). Tasks without a case: one type-filtered account
    listing, which returns every task open for the whole listing (``hooks.paging``): a task missing from it was
    solved. A listing that could not verify itself proves nothing gone, so its missing tasks count as still open.

    :param tasks: the handed-over tasks (handoff dicts).
    """
    open_ids: set[str] = set()
    notes: list[str] = []
    missing_cases: list[str] = []
    for case_id in sorted({str(t["caseId"]).lower() for t in tasks if t.get("caseId")}):
        try:
            listed: list[Task] = yield endpoints.get_case_tasks(case_id, status="Open")
        except DebituraNotFoundError:
            notes.append(f"case {case_id} no longer exists (404): its tasks were not solved, the case is gone")
            missing_cases.append(case_id)
            continue
        open_ids.update(t.id.lower() for t in listed if t.is_open)
    caseless = [t for t in tasks if not t.get("caseId")]
    if caseless:
        types = _listing_types(caseless)
        wanted = {str(t["id"]).lower() for t in caseless}
        found: Listing = yield TaskListing(status="Open", types=types)
        seen = {t.id.lower() for t in found if t.is_open}
        seen |= {str(r.id).lower() for r in found.rejected if r.id}  # unreadable, so not proven gone
        if not found.verified:
            notes.append(
                f"the account listing could not be verified ({found.unverified_reason}): nothing counts as gone"
            )
            seen |= wanted
        open_ids.update(seen & wanted)
    missing = tuple(dict(t) for t in tasks if t.get("caseId") and str(t["caseId"]).lower() in missing_cases)
    still = tuple(dict(t) for t in tasks if str(t["id"]).lower() in open_ids)
    gone = tuple(dict(t) for t in tasks if str(t["id"]).lower() not in open_ids and dict(t) not in missing)
    return HandoffCheck(still, gone, tuple(notes), missing, tuple(missing_cases))


def _listing_types(tasks: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """Filter the account listing by the tasks' types; None (no filter) when one has no usable type."""
    types = {t.get("type") for t in tasks}
    if any(not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) for name in types):
        return None
    return sorted(types, key=lambda name: (name not in TaskType.known(), name))  # type: ignore[arg-type]


def run_check(hook: DebituraHook, tasks: Sequence[Mapping[str, Any]]) -> HandoffCheck:
    """Drive :func:`check_steps` with a :class:`~airflow_provider_debitura.hooks.debitura.DebituraHook`.

    :param hook: the sync hook (in a worker).
    :param tasks: the handed-over tasks.
    """
    steps = check_steps(tasks)
    value: Any = None
    error: DebituraNotFoundError | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: HandoffCheck = stop.value
            return result
        value, error = None, None
        try:
            value = hook.run_listing(step) if isinstance(step, TaskListing) else hook.run(step)
        except DebituraNotFoundError as exc:
            error = exc


async def arun_check(hook: DebituraAsyncHook, tasks: Sequence[Mapping[str, Any]]) -> HandoffCheck:
    """Drive :func:`check_steps` with a :class:`~airflow_provider_debitura.hooks.debitura.DebituraAsyncHook`.

    :param hook: the async hook (in the triggerer).
    :param tasks: the handed-over tasks.
    """
    steps = check_steps(tasks)
    value: Any = None
    error: DebituraNotFoundError | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: HandoffCheck = stop.value
            return result
        value, error = None, None
        try:
            value = await (hook.run_listing(step) if isinstance(step, TaskListing) else hook.run(step))
        except DebituraNotFoundError as exc:
            error = exc
