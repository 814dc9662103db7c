"""Pure helpers behind :class:`~airflow_provider_debitura.operators.debitura.DebituraReplyToChatTasksOperator`.

Kept free of I/O so that the rules which decide whether a message is sent (is the ``action`` safe to
follow, is the task already answered, is the rendered text acceptable) can be read and tested on
their own.

Rendering uses Jinja's :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: a reply template is code written by a DAG author, but the values it
sees (the partner's message, task titles) come from outside, and a typo must fail the task instead of
sending a half-empty message to a collection partner. Values are only ever *inserted*: Jinja never
re-renders a variable's content, so ``{{ 7*7 }}`` inside a partner's message stays literal.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.models import ChatMessage, Task
from airflow_provider_debitura.validation import MAX_CHAT_MESSAGE_LENGTH, chat_message

__all__ = [
    "MAX_CHAT_MESSAGE_LENGTH",
    "ReplyTemplateError",
    "action_refusal",
    "answered_by",
    "combine_replies",
    "compile_template",
    "find_own_message",
    "latest_partner_message",
    "render_reply",
    "template_context",
    "validate_reply",
]

CHAT_ACTION_METHOD = "POST"
CASE_ID_PLACEHOLDER = "{caseId}"
_CHAT_PATH = re.compile(r"^/cases/(?P<case>[^/?#\\]+)/chats$")

# Output bigger than this cannot be a valid reply anyway; stop rendering there instead of letting a
# runaway loop fill the worker's memory.
_RENDER_LIMIT = 2 * MAX_CHAT_MESSAGE_LENGTH
# ``'x' * n`` and ``n ** m`` are the cheap ways to allocate gigabytes from a one-line template.
_MAX_SEQUENCE_PRODUCT = 100_000
_MAX_EXPONENT = 100


class ReplyTemplateError(DebituraConfigError):
    """A reply template does not compile, does not render, or renders an unusable message."""


class _ReplyEnvironment(SandboxedEnvironment):
    """The stock sandbox plus limits on the two operators that turn a short template into a huge value."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right!r} is larger than the reply sandbox allows ({_MAX_EXPONENT}).")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(count, int)
                    and len(seq) * count > _MAX_SEQUENCE_PRODUCT
                ):
                    raise SecurityError(
                        f"repeating a value {count:,} times would build {len(seq) * count:,} items; the reply "
                        f"sandbox allows {_MAX_SEQUENCE_PRODUCT:,}."
                    )
        return super().call_binop(context, operator, left, right)


def _environment() -> _ReplyEnvironment:
    # No loader: {% include %}/{% import %} cannot read files. No autoescape: the output is plain text.
    return _ReplyEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def _excerpt(source: str, limit: int = 80) -> str:
    flat = " ".join(source.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compile_template(name: str, source: Any) -> Template:
    """Compile one template up front, so a syntax error fails the task before any request."""
    if not isinstance(source, str) or not source.strip():
        raise ReplyTemplateError(
            f"{name} is {source!r}; it must be a non-empty Jinja string such as "
            "'Hello, here is the information you asked for: ...'."
        )
    try:
        return _environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise ReplyTemplateError(
            f"{name} is not a valid Jinja template (line {exc.lineno}: {exc.message}). Template: {_excerpt(source)!r}"
        ) from None


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-ish copy of ``value`` (datetimes kept, for ``strftime``); raises TypeError for anything else."""
    if value is None or isinstance(value, (str, bool, int, float, datetime, date, timedelta)):
        return value
    if depth > 8:
        raise TypeError("nested too deeply")
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    raise TypeError(type(value).__name__)


def _object_view(obj: Any, attributes: Iterable[str]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for attribute in attributes:
        try:
            value = getattr(obj, attribute, None)
            if hasattr(value, "value") and type(value).__module__.startswith("airflow"):  # Airflow enums
                value = value.value
            view[attribute] = _plain(value)
        except Exception:  # a lazy attribute that needs a DB session, etc.: leave it out
            continue
    return view


_DAG_RUN_FIELDS = (
    "run_id",
    "run_type",
    "conf",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "start_date",
    "run_after",
)
_TI_FIELDS = ("dag_id", "task_id", "run_id", "try_number", "map_index")


_CONTEXT_VALUES = (
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "run_id",
    "expanded_ti_count",
    "templates_dict",
)


def template_context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of the Airflow context a reply template may see: plain values only.

    An allow-list, not the whole context: a chat message goes to a third party, so a template must
    not reach connection secrets (``conn``), Variables or the metadata database through live objects,
    and several context entries are lazy proxies that would query the database (2.x) or the
    supervisor (3.x) when merely read. The DAG run, task instance and DAG become plain views.
    """
    if not context:
        return {}
    out: dict[str, Any] = {}
    for key in _CONTEXT_VALUES:
        if key not in context:
            continue
        try:
            out[key] = _plain(context[key])
        except Exception:
            continue
    if context.get("params") is not None:
        with contextlib.suppress(Exception):
            out["params"] = _plain(dict(context["params"]))
    if context.get("dag_run") is not None:
        out["dag_run"] = _object_view(context["dag_run"], _DAG_RUN_FIELDS)
    ti = context.get("ti") or context.get("task_instance")
    if ti is not None:
        out["ti"] = _object_view(ti, _TI_FIELDS)
    if context.get("dag") is not None:
        out["dag"] = _object_view(context["dag"], ("dag_id",))
    return out


def render_reply(
    template: Template,
    *,
    template_name: str,
    task: Mapping[str, Any],
    case: Mapping[str, Any] | None,
    partner_message: str | None,
    context: Mapping[str, Any],
) -> str:
    """Render and validate one reply; every failure names the task and what to fix."""
    variables = {
        **context,
        "task": dict(task),
        "case": dict(case) if case else None,
        "partner_message": partner_message,
    }
    where = f"{template_name} for task {task.get('id')} ({task.get('type')}, case {task.get('caseId')})"
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            chunks.append(chunk)
            size += len(chunk)
            if size > _RENDER_LIMIT:
                raise ReplyTemplateError(
                    f"{where} rendered more than {_RENDER_LIMIT:,} characters (rendering stopped there); Debitura "
                    f"accepts at most {MAX_CHAT_MESSAGE_LENGTH:,}. Shorten the template."
                )
        text = "".join(chunks)
    except ReplyTemplateError:
        raise
    except SecurityError as exc:
        raise ReplyTemplateError(
            f"{where} tried something the reply sandbox forbids: {exc}. Templates may use task, case, "
            "partner_message and the plain Airflow context values (ds, params, dag_run, ...), not Python internals."
        ) from None
    except UndefinedError as exc:
        raise ReplyTemplateError(
            f"{where} uses an undefined value: {exc}. Available: task (the task's API fields, e.g. task.title, "
            "task.caseReference), case (e.g. case.creditorReference), partner_message (text or None), "
            f"and {', '.join(sorted(k for k in context if k not in ('task', 'case')))}. "
            "Use {{ x | default('...') }} for optional values."
        ) from None
    except TemplateError as exc:
        raise ReplyTemplateError(f"{where} failed to render: {exc}") from None
    except Exception as exc:  # e.g. ZeroDivisionError or a TypeError from a filter
        raise ReplyTemplateError(f"{where} failed to render: {type(exc).__name__}: {exc}") from None
    return validate_reply(text, where=where)


def validate_reply(text: str, *, where: str) -> str:
    """The chat-message check (:func:`~airflow_provider_debitura.validation.chat_message`) with a
    reply-template error that names the template and task."""
    return chat_message(text, where=f"{where}: the rendered message", error=ReplyTemplateError)


def combine_replies(replies: Sequence[str]) -> str:
    """One message for a case: its tasks' distinct replies in order, separated by a blank line.

    Identical replies (the common case: one template for every chat type) collapse into one.
    """
    return "\n\n".join(dict.fromkeys(r.strip() for r in replies))


def action_refusal(task: Task) -> str | None:
    """Why this task's ``action`` must not be followed, or None when it is the expected chat post.

    Only ``POST /cases/{caseId}/chats`` for the task's own case is followed: the path comes from the
    server, and following whatever it says would let a bad or spoofed value send a message (with the
    API key) to another case or another host.
    """
    if not task.case_id:
        return "task has no caseId, so there is no case chat to reply in"
    action = task.action
    if action is None:
        return "task has no action (Debitura offers no API resolution for it)"
    method = (action.method or "").strip().upper()
    if method != CHAT_ACTION_METHOD:
        return f"action method {action.method!r} is not POST; only POST /cases/{{caseId}}/chats is followed"
    path = action.path or ""
    match = _CHAT_PATH.match(path)
    if match is None:
        return (
            f"action path {path!r} is not /cases/{{caseId}}/chats relative to the connection's base URL; refused, "
            "not called"
        )
    segment = match.group("case")
    if segment != CASE_ID_PLACEHOLDER and segment.strip().lower() != task.case_id.strip().lower():
        return f"action path {path!r} points at another case than the task's own ({task.case_id}); refused, not called"
    return None


def answered_by(task: Task, chats: Iterable[ChatMessage]) -> ChatMessage | None:
    """The creditor message that already answers ``task``: the newest one at or after its creation.

    "At or after" (not strictly after): if a reply and the task carry the same timestamp, treating the
    task as answered risks one missed reply (visible in the report), the other choice a second message
    to the partner.
    """
    candidates = [c for c in chats if c.is_from_creditor and c.date_created >= task.date_created]
    return max(candidates, key=lambda c: c.date_created, default=None)


def latest_partner_message(chats: Iterable[ChatMessage]) -> ChatMessage | None:
    return max((c for c in chats if c.is_from_partner), key=lambda c: c.date_created, default=None)


def _normalise(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").strip()


def find_own_message(
    chats: Iterable[ChatMessage], message: str, *, not_before: datetime, known_ids: Iterable[str]
) -> ChatMessage | None:
    """After an ambiguous post: the creditor message with our text that was not there before we posted."""
    known = set(known_ids)
    wanted = _normalise(message)
    for chat in sorted(chats, key=lambda c: c.date_created):
        if (
            chat.id not in known
            and chat.is_from_creditor
            and chat.date_created >= not_before
            and _normalise(chat.message) == wanted
        ):
            return chat
    return None


@dataclass(frozen=True)
class TemplateSet:
    """The compiled templates by task type (``reply_templates`` overriding ``reply_template``)."""

    default: Template | None
    by_type: dict[str, Template]

    def for_type(self, task_type: str) -> tuple[str, Template]:
        if task_type in self.by_type:
            return f"reply_templates[{task_type!r}]", self.by_type[task_type]
        assert self.default is not None  # checked when the set is built
        return "reply_template", self.default


def compile_templates(
    reply_template: str | None, reply_templates: Mapping[str, str] | None, task_types: Sequence[str]
) -> TemplateSet:
    """Compile every template and check that each selected task type has one."""
    if reply_templates is not None and not isinstance(reply_templates, Mapping):
        raise ReplyTemplateError(
            f"reply_templates must be a dict of task type to Jinja string, got {type(reply_templates).__name__}."
        )
    default = None if reply_template is None else compile_template("reply_template", reply_template)
    by_type: dict[str, Template] = {}
    for task_type, source in (reply_templates or {}).items():
        if task_type not in task_types:
            raise ReplyTemplateError(
                f"reply_templates has a template for {task_type!r}, which is not one of the task types this "
                f"operator replies to ({', '.join(task_types)}). Fix the key or add it to task_types."
            )
        by_type[task_type] = compile_template(f"reply_templates[{task_type!r}]", source)
    missing = [t for t in task_types if t not in by_type and default is None]
    if missing:
        raise ReplyTemplateError(
            f"No reply template for {', '.join(missing)}: set reply_template (used for every type) or add "
            f"{', '.join(repr(m) for m in missing)} to reply_templates."
        )
    return TemplateSet(default, by_type)
