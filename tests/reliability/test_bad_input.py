# ruff: noqa: E501
"""Bad input, one table across the sensor and both operators: a clear error naming the parameter and
the fix, raised before any request where the input alone shows the mistake, and never a post.

Per-operator details (booleans, limits, per-type templates...) are in tests/operators and tests/sensors;
this is the issue's list, run through every component it applies to. Each row's real message and
request count is written to ``<pytest basetemp>/bad_input.json`` for docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from helpers.reliability import REL_KEY, cid, context, load_world

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

GUID = cid("INV-1002")
ALL = ("sensor", "list", "reply")
ROWS: list[dict[str, Any]] = []


def build_and_run(component: str, kwargs: dict[str, Any]) -> Any:
    kwargs = dict(kwargs)
    if component == "sensor":
        kwargs.setdefault("poke_interval", 1)
        kwargs.setdefault("timeout", 30)
        if not any(k in kwargs for k in ("case_id", "creditor_reference", "case_reference", "_no_case")):
            kwargs["creditor_reference"] = "INV-1002"
        kwargs.pop("_no_case", None)
        kwargs["blocking_task_types"] = kwargs.pop("task_types", None)
        return DebituraCaseUnblockedSensor(task_id="gate", **kwargs).poke(context())
    kwargs.pop("_no_case", None)
    if component == "list":
        return DebituraListTasksOperator(task_id="list", **kwargs).execute(context())
    kwargs.setdefault("reply_template", "Thanks, noted.")
    return DebituraReplyToChatTasksOperator(task_id="reply", **kwargs).execute(context())


def conn(sb: Any, **changes: Any) -> str:
    data = json.loads(sb.conn_json())
    extra = changes.pop("extra", {})
    data |= changes
    data["extra"] = {k: v for k, v in {**data["extra"], **extra}.items() if v is not None}
    return json.dumps(data)


# (row id, components, operator kwargs, connection changes or None, message pattern, raised before any request)
CASES: list[tuple[str, tuple[str, ...], dict[str, Any], dict[str, Any] | None, str, bool]] = [
    ("non-GUID case_id", ALL, {"case_id": "INV-1002"}, None, r"case_id='INV-1002' is not a Debitura case id.*creditor_reference=", True),
    ("two case identifiers", ALL, {"case_id": GUID, "creditor_reference": "INV-1002"}, None, "Give exactly one of case_id, creditor_reference or case_reference", True),
    ("three case identifiers", ALL, {"case_id": GUID, "creditor_reference": "INV-1002", "case_reference": "ABCDEFGH"}, None, "Give exactly one of", True),
    ("no case identifier (sensor needs one)", ("sensor",), {"_no_case": True}, None, "No case given: set exactly one of case_id", True),
    ("misspelt task type", ALL, {"task_types": ["ReplyToCht"]}, None, "'ReplyToCht' is not a Debitura task type; did you mean 'ReplyToChat'", True),
    ("wrong case of a task type", ("sensor", "list"), {"task_types": ["replytochat"]}, None, "did you mean 'ReplyToChat'", True),
    ("malformed task type", ("sensor", "list"), {"task_types": ["Payment; DROP"]}, None, "not a well-formed task type name", True),
    ("bad status", ("list",), {"status": "Closed"}, None, r"status='Closed' is not a task status; use one of \['Open', 'Solved'\]", True),
    ("template syntax error", ("reply",), {"reply_template": "Hello {{ task.title "}, None, "reply_template is not a valid Jinja template", True),
    ("undefined template variable", ("reply",), {"reply_template": "Invoice {{ invoice_no }}"}, None, "uses an undefined value: 'invoice_no' is undefined.*default", False),
    ("empty rendered reply", ("reply",), {"reply_template": "{% if false %}x{% endif %}  "}, None, r"the rendered message is empty \(nothing visible once whitespace and zero-width characters are ignored\); Debitura needs 1 to 10,000", False),
    ("over-long rendered reply", ("reply",), {"reply_template": "{{ 'x' * 10001 }}"}, None, "the rendered message is 10,001 characters long; Debitura accepts at most 10,000.*Shorten", False),
    ("missing sender email", ("reply",), {}, {"extra": {"user_email": None}}, "No chat sender: pass user_email=.*or set the 'user_email' extra", True),
    ("missing connection", ALL, {"debitura_conn_id": "debitura_missing"}, None, "connection 'debitura_missing' is not defined.*AIRFLOW_CONN_DEBITURA_MISSING", True),
    ("connection without an API key", ALL, {}, {"password": ""}, "has no API key. Put the Debitura API key in the connection's password field", True),
    ("http:// to a non-loopback host", ALL, {}, {"host": "http://api.example.com"}, "plain http to a non-loopback host.*'allow_insecure_http'", True),
    ("hook timeout extra 0", ALL, {}, {"extra": {"timeout": 0}}, "extra 'timeout'=0 must be a positive number of seconds", True),
    ("hook timeout extra negative", ALL, {}, {"extra": {"timeout": -5}}, "extra 'timeout'=-5 must be a positive number of seconds", True),
    ("max_attempts extra 0", ALL, {}, {"extra": {"max_attempts": 0}}, "extra 'max_attempts'=0 must be a whole number >= 1", True),
    ("sensor poke_interval 0", ("sensor",), {"poke_interval": 0}, None, "poke_interval=0.* must be a positive number of seconds", True),
    ("sensor poke_interval negative", ("sensor",), {"poke_interval": -1}, None, "poke_interval", True),
    ("sensor timeout 0", ("sensor",), {"timeout": 0}, None, "timeout=0.* must be a positive number of seconds", True),
    ("sensor timeout negative", ("sensor",), {"timeout": -60}, None, "timeout", True),
    ("sensor poll_interval 0", ("sensor",), {"poll_interval": 0}, None, "poll_interval=0 must be a positive number of seconds", True),
    ("sensor poll_interval negative", ("sensor",), {"poll_interval": -2.5}, None, "poll_interval=-2.5 must be a positive number of seconds", True),
]  # fmt: skip

PARAMS = [pytest.param(row, comp, id=f"{row[0]}-{comp}") for row in CASES for comp in row[1]]


@pytest.fixture(scope="module")
def bad_input_rows(tmp_path_factory: pytest.TempPathFactory):
    yield ROWS
    (tmp_path_factory.getbasetemp() / "bad_input.json").write_text(json.dumps(ROWS, indent=1))


@pytest.mark.parametrize(("row", "component"), PARAMS)
def test_bad_input_fails_clearly_and_posts_nothing(rel_sb, monkeypatch, bad_input_rows, row, component) -> None:
    name, _, kwargs, conn_changes, pattern, before_request = row
    load_world(rel_sb, {"name": "demo"})
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", conn(rel_sb, **(conn_changes or {})))
    monkeypatch.delenv("AIRFLOW_CONN_DEBITURA_MISSING", raising=False)
    with pytest.raises(Exception) as err:
        build_and_run(component, kwargs)
    message = str(err.value)
    counters = rel_sb.control("GET", "/counters").json()
    ROWS.append(
        {
            "input": name,
            "component": component,
            "error": type(err.value).__name__,
            "message": message,
            "requests": counters.get("total", 0),
            "posts": counters.get("POST /cases/{id}/chats", 0),
        }
    )
    # DebituraConfigError (a ValueError); the sensor fails its task at once with AirflowFailException
    # caused by one; Airflow's own check of negative sensor intervals raises ValueError naming the argument.
    cause = err.value.__cause__
    assert isinstance(err.value, ValueError) or isinstance(cause, DebituraConfigError), repr(err.value)
    assert re.search(pattern, message, re.DOTALL), message
    assert REL_KEY not in message
    assert counters.get("POST /cases/{id}/chats", 0) == 0
    if before_request:
        assert counters.get("total", 0) == 0, counters


@pytest.mark.parametrize("component", ["sensor", "list"])
def test_unknown_but_well_formed_type_passes_with_a_warning(rel_sb, monkeypatch, caplog, component) -> None:
    load_world(rel_sb, {"name": "demo"})
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", rel_sb.conn_json())
    with caplog.at_level(logging.WARNING, logger="airflow_provider_debitura.validation"):
        build_and_run(component, {"task_types": ["PayoutApprovalNeeded"]})
    assert "'PayoutApprovalNeeded' is not a task type this provider knows" in caplog.text
    assert "since Debitura adds new types over time" in caplog.text


def test_reply_refuses_an_unknown_type_because_only_chat_types_can_be_answered(rel_sb, monkeypatch) -> None:
    load_world(rel_sb, {"name": "demo"})
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", rel_sb.conn_json())
    with pytest.raises(DebituraConfigError, match="cannot be resolved with a chat reply"):
        build_and_run("reply", {"task_types": ["PayoutApprovalNeeded"]})
    assert rel_sb.control("GET", "/counters").json().get("total", 0) == 0


def test_insecure_http_is_accepted_only_with_the_explicit_extra(rel_sb, monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT",
        conn(rel_sb, host="http://api.example.com", extra={"allow_insecure_http": True}),
    )
    assert DebituraHook().settings.base_url == "http://api.example.com"
