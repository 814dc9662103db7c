"""Reply templates: compile, render in a sandbox, check the text (pure, no I/O).

Rendering uses Jinja's :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: a reply template is code written by a DAG author, but the values it
sees (the partner's message, task titles) come from outside, and a typo must fail the task instead of
sending a half-empty message to a collection partner. Values are only ever *inserted*: Jinja never
re-renders a variable's content, so ``{{ 7*7 }}`` inside a partner's message stays literal.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from airflow_provider_debitura.exceptions import ReplyTemplateError  # defined there; re-exported here
from airflow_provider_debitura.replies.text import clean_text, describe_characters, unsafe_characters
from airflow_provider_debitura.validation import MAX_CHAT_MESSAGE_LENGTH, chat_message

__all__ = [
    "MAX_CHAT_MESSAGE_LENGTH",
    "ReplyTemplateError",
    "TemplateSet",
    "clean_reply",
    "combine_replies",
    "compile_template",
    "compile_templates",
    "render_reply",
    "template_context",
    "validate_reply",
]

# Output bigger than this cannot be a valid reply anyway; stop rendering there instead of letting a
# runaway loop fill the worker's memory.
_RENDER_LIMIT = 2 * MAX_CHAT_MESSAGE_LENGTH
# ``'x' * n`` and ``n ** m`` are the cheap ways to allocate gigabytes from a one-line template.
_MAX_SEQUENCE_PRODUCT = 100_000
_MAX_EXPONENT = 100

log = logging.getLogger(__name__)


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
    """Compile one template up front, so a syntax error fails the task before any request.

    :param name: how the error names the template (e.g. ``reply_template``).
    :param source: the Jinja source.
    """
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
            value: Any = getattr(obj, attribute, None)
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

    :param context: the Airflow task context (or None).
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
    """Render and validate one reply; every failure names the task and what to fix.

    :param template: the compiled template.
    :param template_name: its name, for errors.
    :param task: the task's API dict.
    :param case: the case's API dict, or None when it was not read.
    :param partner_message: the case's latest partner message, or None.
    :param context: the plain Airflow context values (:func:`template_context`).
    """
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
    return validate_reply(clean_reply(text, where=where), where=where)


def clean_reply(text: str, *, where: str) -> str:
    """``text`` without control characters (NUL, BEL, terminal escapes, ...) and bidirectional controls
    (:mod:`.text`: tab and newline stay), with a warning naming what was removed.

    :param text: the rendered (or edited) message.
    :param where: what the message is, for the warning.
    """
    cleaned, removed = clean_text(text)
    if removed:
        log.warning(
            "%s: removed %d control character(s) before posting (%s); newlines and tabs are kept.",
            where,
            len(removed),
            describe_characters(removed),
        )
    return cleaned


def validate_reply(text: str, *, where: str) -> str:
    """The chat-message check (:func:`~airflow_provider_debitura.validation.chat_message`), raising a
    :class:`ReplyTemplateError` that names the template and task.

    Also refuses control and bidirectional-control characters (:mod:`.text`), which :func:`clean_reply`
    removes from rendered and edited texts: a text that skipped the cleaning is not posted.

    :param text: the rendered (or edited) message.
    :param where: what the message is, for the error.
    """
    text = chat_message(text, where=f"{where}: the rendered message", error=ReplyTemplateError)
    unsafe = unsafe_characters(text)
    if unsafe:
        raise ReplyTemplateError(
            f"{where}: the message contains control characters ({describe_characters(unsafe)}); a chat reply may "
            "hold text, newlines and tabs only. Remove them (clean_reply does) and try again."
        )
    return text


def combine_replies(replies: Sequence[str]) -> str:
    """One message for a case: its tasks' distinct replies in order, separated by a blank line.

    Identical replies (the common case: one template for every chat type) collapse into one.

    :param replies: the rendered replies of one case's tasks, in task order.
    """
    return "\n\n".join(dict.fromkeys(r.strip() for r in replies))


@dataclass(frozen=True)
class TemplateSet:
    """The compiled templates by task type (``reply_templates`` overriding ``reply_template``).

    :param default: the template for every type without its own.
    :param by_type: per-type templates.
    :param variables: every top-level variable the templates read (``case`` decides whether the case
        is read from the API).
    """

    default: Template | None
    by_type: dict[str, Template]
    variables: frozenset[str] = frozenset()

    @property
    def uses_case(self) -> bool:
        """True when some template reads ``case`` (so each answered case is read once)."""
        return "case" in self.variables

    def for_type(self, task_type: str) -> tuple[str, Template]:
        """The template (and its name, for errors) that answers ``task_type``.

        :param task_type: the task's type.
        """
        if task_type in self.by_type:
            return f"reply_templates[{task_type!r}]", self.by_type[task_type]
        assert self.default is not None  # checked when the set is built
        return "reply_template", self.default


def compile_templates(
    reply_template: str | None, reply_templates: Mapping[str, str] | None, task_types: Sequence[str]
) -> TemplateSet:
    """Compile every template and check that each selected task type has one.

    :param reply_template: the template for every type without its own.
    :param reply_templates: ``{task_type: template}``.
    :param task_types: the types the operator answers.
    """
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
    sources = [s for s in (reply_template, *(reply_templates or {}).values()) if isinstance(s, str)]
    return TemplateSet(default, by_type, _variables(sources))


def _variables(sources: Sequence[str]) -> frozenset[str]:
    env = _environment()
    found: set[str] = set()
    for source in sources:
        found |= meta.find_undeclared_variables(env.parse(source))
    return frozenset(found)
