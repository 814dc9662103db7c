"""DebituraReplyToChatTasksOperator against the real sandbox server (HTTP on loopback).

Nothing here mocks Debitura: the operator talks HTTP to the sandbox, and the assertions read the
sandbox's own state (tasks, chats) and request counters.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.context import FakeTI

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError, DebituraConfigError
from airflow_provider_debitura.links import SOLUTION_URL_XCOM_KEY
from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator
from airflow_provider_debitura.replies import ReplyTemplateError

POSTS = "POST /cases/{id}/chats"
TEMPLATE = (
    "Hello from {{ params.team }}: about '{{ task.title }}' on {{ case.creditorReference }}. "
    "You wrote: {{ partner_message }}"
)
CHAT_TYPES = {"ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"}


def reply(
    template: str = TEMPLATE, *, context_extra: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    context = {"ds": "2026-11-27", "params": {"team": "Nordic Widgets"}, "ti": FakeTI(), **(context_extra or {})}
    op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template=template, **kwargs)
    report = op.execute(context)
    json.dumps(report)  # XCom-safe
    return report, context["ti"].xcom


def posts(sb) -> int:
    return sb.control("GET", "/counters").json().get(POSTS, 0)


def state(sb) -> dict[str, Any]:
    return sb.control("GET", "/state").json()


def creditor_chats(sb, creditor_reference: str) -> list[dict[str, Any]]:
    case_id = sb.state.case_id(creditor_reference)
    return [c for c in state(sb)["chats"][case_id] if c["role"] == 1]


def open_chat_tasks(sb) -> list[dict[str, Any]]:
    return [t for t in state(sb)["tasks"] if t["status"] == "Open" and t["type"] in CHAT_TYPES]


def delay_solving(sb, seconds: float = 3600) -> None:
    """Like the real API: a replied task stays open until the case leaves its needs-info state."""
    assert sb.control("PUT", "/config", json={"chatSolveDelaySeconds": seconds}).status_code == 200


def set_faults(sb, *rules: dict[str, Any]) -> None:
    assert sb.control("PUT", "/faults", json={"rules": list(rules)}).status_code == 200


# ------------------------------------------------------------------------------------ happy path


def test_replies_to_three_chat_tasks_on_two_cases_and_rerun_posts_nothing(debitura_conn) -> None:
    sb = debitura_conn
    report, xcom = reply()
    assert report["dry_run"] is False
    assert len(report["replied"]) == 3 and report["skipped"] == []
    assert posts(sb) == 2  # one message per case
    by_case: dict[str, set[str]] = {}
    for entry in report["replied"]:
        by_case.setdefault(entry["case_id"], set()).add(entry["chat_message_id"])
    assert {k: len(v) for k, v in by_case.items()} == {
        sb.state.case_id("INV-1002"): 1,
        sb.state.case_id("INV-1003"): 1,
    }
    # the sandbox solved them
    assert open_chat_tasks(sb) == []
    solved = {t["id"] for t in state(sb)["tasks"] if t["status"] == "Solved"}
    assert {e["task_id"] for e in report["replied"]} <= solved
    # the text: rendered per task, partner text inserted, one message per case
    [m1002] = creditor_chats(sb, "INV-1002")
    assert m1002["message"] == (
        "Hello from Nordic Widgets: about 'Reply to the collection partner' on INV-1002. "
        "You wrote: Could you confirm the debtor's current address?"
    )
    [m1003] = creditor_chats(sb, "INV-1003")
    assert m1003["message"].split("\n\n") == [
        "Hello from Nordic Widgets: about 'The partner needs your input' on INV-1003. "
        "You wrote: We need the original invoice and the contract date.",
        "Hello from Nordic Widgets: about 'More information needed' on INV-1003. "
        "You wrote: We need the original invoice and the contract date.",
    ]
    assert m1003["user"]["email"] == "ops@example.com"
    # only the chat-driven types are listed (issue 12): the other tasks are the list operator's to report
    assert report["needs_human"] == [] and report["failed"] == [] and report["capped"] is None
    assert SOLUTION_URL_XCOM_KEY not in xcom
    assert {e["creditor_reference"] for e in report["replied"]} == {"INV-1002", "INV-1003"}

    again, _ = reply()
    assert again["replied"] == [] and posts(sb) == 2


def test_rerun_while_tasks_stay_open_posts_nothing(debitura_conn) -> None:
    sb = debitura_conn
    delay_solving(sb)
    first, _ = reply()
    assert len(first["replied"]) == 3 and posts(sb) == 2
    assert len(open_chat_tasks(sb)) == 3  # still open: Debitura has not cleared them yet
    second, _ = reply()
    assert posts(sb) == 2
    assert second["replied"] == []
    assert {s["task_id"] for s in second["skipped"]} == {e["task_id"] for e in first["replied"]}
    assert all(s["reason"].startswith("already answered: creditor message") for s in second["skipped"])


def test_a_human_reply_counts_as_answered(debitura_conn) -> None:
    sb = debitura_conn
    delay_solving(sb)
    case_id = sb.state.case_id("INV-1002")
    with sb.client() as client:
        client.post(f"/cases/{case_id}/chats", json={"message": "On it - Frank", "userEmail": "finance@example.com"})
    report, _ = reply()
    assert [s["reason"][:16] for s in report["skipped"]] == ["already answered"]
    assert {e["case_id"] for e in report["replied"]} == {sb.state.case_id("INV-1003")}
    assert posts(sb) == 2  # Frank's + ours on INV-1003


def test_a_new_question_after_our_reply_gets_a_new_reply(debitura_conn) -> None:
    sb = debitura_conn
    reply()
    case_id = sb.state.case_id("INV-1002")
    made = sb.control(
        "POST", f"/cases/{case_id}/partner-message", json={"message": "And the phone number?", "task": "ReplyToChat"}
    )
    assert made.status_code == 201
    report, _ = reply("Answer to: {{ partner_message }}")
    assert [e["task_id"] for e in report["replied"]] == [made.json()["task"]["id"]]
    assert creditor_chats(sb, "INV-1002")[-1]["message"] == "Answer to: And the phone number?"
    assert posts(sb) == 3


def test_per_type_templates_override_and_identical_replies_collapse(debitura_conn) -> None:
    sb = debitura_conn
    report, _ = reply(
        "We will get back to you.",
        reply_templates={"MoreInfoNeeded": "Contract date: {{ dag_run.conf.contract_date }} ({{ dag_run.run_id }})"},
        context_extra={"dag_run": SimpleNamespace(run_id="manual__1", conf={"contract_date": "2026-01-15"})},
    )
    assert len(report["replied"]) == 3
    assert creditor_chats(sb, "INV-1002")[0]["message"] == "We will get back to you."
    assert (
        creditor_chats(sb, "INV-1003")[0]["message"]
        == "We will get back to you.\n\nContract date: 2026-01-15 (manual__1)"
    )


def test_case_scope_and_type_filter(debitura_conn) -> None:
    sb = debitura_conn
    report, xcom = reply(creditor_reference="INV-1003", task_types=["MoreInfoNeeded"])
    assert [e["case_id"] for e in report["replied"]] == [sb.state.case_id("INV-1003")]
    assert report["needs_human"] == []  # the case has no non-chat task; account-level ones are out of scope
    assert SOLUTION_URL_XCOM_KEY not in xcom
    assert posts(sb) == 1
    assert creditor_chats(sb, "INV-1002") == []
    report, _ = reply(creditor_reference="INV-1004")  # only tasks needing a human: nothing to answer
    assert report["replied"] == [] and report["needs_human"] == [] and report["skipped"] == []


def test_max_replies_caps_posts(debitura_conn) -> None:
    sb = debitura_conn
    report, _ = reply(max_replies="1")
    assert posts(sb) == 1
    assert len({e["case_id"] for e in report["replied"]}) == 1
    # the cases beyond the cap are left for the next run, unread: counted, not listed task by task
    assert report["capped"] == {"max_replies": 1, "cases": 1, "tasks": 3 - len(report["replied"])}
    first_case = {e["case_id"] for e in report["replied"]}
    report, _ = reply(max_replies=1)
    assert posts(sb) == 2
    assert {e["case_id"] for e in report["replied"]}.isdisjoint(first_case)
    assert open_chat_tasks(sb) == []
    report, _ = reply(max_replies=0)
    assert posts(sb) == 2


# ------------------------------------------------------------------------------------ dry run


def test_dry_run_renders_everything_and_posts_nothing(debitura_conn) -> None:
    sb = debitura_conn
    report, _ = reply(dry_run="true")  # as a rendered template field would be
    assert report["dry_run"] is True and report["replied"] == []
    assert posts(sb) == 0
    assert len(open_chat_tasks(sb)) == 3
    rendered = {r["task_id"]: r for r in report["rendered"]}
    assert len(rendered) == 3
    assert all("You wrote:" in r["message"] for r in rendered.values())
    inv1002 = sb.state.case_id("INV-1002")
    assert [r["message"] for r in rendered.values() if r["case_id"] == inv1002] == [
        "Hello from Nordic Widgets: about 'Reply to the collection partner' on INV-1002. "
        "You wrote: Could you confirm the debtor's current address?"
    ]
    assert report["needs_human"] == []
    real, _ = reply()
    assert {r["case_id"]: r["message"] for r in report["rendered"]} == {
        c: m
        for c, m in (
            (e["case_id"], next(x["message"] for x in state(sb)["chats"][e["case_id"]] if x["role"] == 1))
            for e in real["replied"]
        )
    }


# ------------------------------------------------------------------------------------ exactly once under faults


def test_commit_then_drop_stores_exactly_one_message(debitura_conn) -> None:
    sb = debitura_conn
    set_faults(sb, {"kind": "commitThenDrop", "method": "POST", "path": "/cases/", "count": 1})
    report, _ = reply()
    assert len(report["replied"]) == 3
    assert posts(sb) == 2  # the dropped one was found in the history, not posted again
    assert len(creditor_chats(sb, "INV-1002")) == 1
    assert len(creditor_chats(sb, "INV-1003")) == 1
    ids = {c["id"] for ref in ("INV-1002", "INV-1003") for c in creditor_chats(sb, ref)}
    assert {e["chat_message_id"] for e in report["replied"]} == ids


def test_commit_then_drop_with_tasks_left_open_then_rerun(debitura_conn) -> None:
    sb = debitura_conn
    delay_solving(sb)
    set_faults(sb, {"kind": "commitThenDrop", "method": "POST", "path": "/cases/", "count": 2})
    reply()
    again, _ = reply()
    assert again["replied"] == [] and posts(sb) == 2
    assert len(creditor_chats(sb, "INV-1002")) == 1 and len(creditor_chats(sb, "INV-1003")) == 1


def test_dropped_connection_is_not_reposted_in_the_same_run(debitura_conn) -> None:
    """A dropped connection may be a post still in flight: only the next run, after reading the history,
    may post again (here the drop happened before the sandbox stored anything, so it does, once)."""
    sb = debitura_conn
    set_faults(sb, {"kind": "drop", "method": "POST", "path": "/cases/", "count": 1})
    with pytest.raises(DebituraAmbiguousWriteError, match="Not posting again in this run"):
        reply()
    assert posts(sb) == 1
    report, _ = reply()
    assert len(report["replied"]) == 3
    assert len(creditor_chats(sb, "INV-1002")) == 1 and len(creditor_chats(sb, "INV-1003")) == 1
    assert posts(sb) == 3  # the dropped attempt, then one post per case on the re-run


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_the_post_is_never_reposted_in_the_same_run(debitura_conn, status: int) -> None:
    """A proxy's 5xx can come after the backend stored the message: only the re-run, after reading the
    history, may post again. Here the sandbox stored nothing, so the re-run answers everything once."""
    sb = debitura_conn
    set_faults(sb, {"kind": "status", "status": status, "method": "POST", "path": "/cases/", "count": 1})
    with pytest.raises(DebituraAmbiguousWriteError, match="Not posting again in this run"):
        reply()
    assert posts(sb) == 1  # the failed post; the other case is not tried either
    assert creditor_chats(sb, "INV-1002") == [] and creditor_chats(sb, "INV-1003") == []
    report, _ = reply()
    assert len(report["replied"]) == 3 and posts(sb) == 3


# ------------------------------------------------------------------------------------ bad templates post nothing


@pytest.mark.parametrize(
    ("template", "kwargs", "message"),
    [
        ("Invoice {{ invoice_number }}", {}, "uses an undefined value: 'invoice_number' is undefined"),
        ("{{ 'x' * 10001 }}", {}, "the rendered message is 10,001 characters long; Debitura accepts at most 10,000"),
        ("{{ partner_message * 300 }}", {}, "Debitura accepts at most 10,000"),
        ("{{ ''.__class__.__mro__ }}", {}, "unsafe"),
        ("{{ task.__init__.__globals__ }}", {}, "unsafe"),
        ("{{ cycler.__init__.__globals__.os.system('id') }}", {}, "reply_template for task"),
        ("ok", {"reply_templates": {"MoreInfoNeeded": "{{ nope.nope }}"}}, "reply_templates['MoreInfoNeeded']"),
        ("{% if %}", {}, "not a valid Jinja template"),
    ],
)
def test_bad_template_fails_clearly_and_posts_nothing(debitura_conn, template: str, kwargs: dict, message: str) -> None:
    sb = debitura_conn
    with pytest.raises(ReplyTemplateError) as err:
        reply(template, **kwargs)
    assert message in str(err.value)
    assert posts(sb) == 0
    assert len(open_chat_tasks(sb)) == 3


def test_combined_case_message_over_the_limit_posts_nothing(debitura_conn) -> None:
    sb = debitura_conn
    with pytest.raises(ReplyTemplateError, match="combined reply for case .* 10,0"):
        reply("{{ task.type }} {{ 'x' * 6000 }}")  # 6,0xx per task: fine alone, too long as one message
    assert posts(sb) == 0


def test_partner_text_with_template_syntax_is_inserted_literally(debitura_conn) -> None:
    sb = debitura_conn
    case_id = sb.state.case_id("INV-1005")
    text = "Total? {{ 7*7 }} {% raw %} {{ ''.__class__ }}"
    sb.control("POST", f"/cases/{case_id}/partner-message", json={"message": text, "task": "ReplyToChat"})
    report, _ = reply("You wrote: {{ partner_message }}", creditor_reference="INV-1005")
    assert len(report["replied"]) == 1
    assert creditor_chats(sb, "INV-1005")[0]["message"] == f"You wrote: {text}"


# ------------------------------------------------------------------------------------ actions


def test_action_pointing_elsewhere_is_refused_and_never_called(debitura_conn) -> None:
    sb = debitura_conn
    sb.reset("demo")
    delay_solving(sb)
    other = sb.state.case_id("INV-1001")
    target = "INV-1005"
    bad_actions = [
        {"method": "POST", "path": f"/cases/{other}/chats"},
        {"method": "POST", "path": "http://127.0.0.1:1/cases/{caseId}/chats"},
        {"method": "DELETE", "path": "/cases/{caseId}/chats"},
        {"method": "POST", "path": "/cases/{caseId}/files"},
        None,
    ]
    refused = set()
    for action in bad_actions:
        made = sb.control(
            "POST", "/tasks", json={"type": "ReplyToChat", "caseCreditorReference": target, "action": action}
        )
        assert made.status_code == 201, made.text
        refused.add(made.json()["id"])
    sb.control("DELETE", "/requests")
    report, _ = reply(creditor_reference=target)
    assert report["replied"] == []
    assert {s["task_id"] for s in report["skipped"]} == refused
    assert all(
        "refused" in s["reason"] or "not POST" in s["reason"] or "no action" in s["reason"] for s in report["skipped"]
    )
    assert {h["task_id"] for h in report["needs_human"]} == refused
    assert posts(sb) == 0
    assert creditor_chats(sb, "INV-1001") == [] and creditor_chats(sb, target) == []
    paths = [r["path"] for r in sb.control("GET", "/requests").json()]
    assert not any(p.endswith("/files") for p in paths)


def test_prefilled_action_path_for_the_own_case_is_followed(debitura_conn) -> None:
    sb = debitura_conn
    case_id = sb.state.case_id("INV-1005")
    sb.control(
        "POST",
        "/tasks",
        json={
            "type": "MoreInfoNeeded",
            "caseCreditorReference": "INV-1005",
            "action": {"method": "POST", "path": f"/cases/{case_id}/chats"},
        },
    )
    report, _ = reply("Here you go", creditor_reference="INV-1005")
    assert [e["case_id"] for e in report["replied"]] == [case_id]


# ------------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_types": ["ReviewPartner"]}, "cannot be resolved with a chat reply"),
        ({"task_types": ["ReplyToChat", "SignContract"]}, "cannot be resolved with a chat reply"),
        ({"task_types": ["MoreInfoNeded"]}, "did you mean 'MoreInfoNeeded'"),
        ({"task_types": []}, "task_types is empty"),
        ({"reply_template": None}, "No reply template for"),
        ({"reply_templates": {"ReplyToChta": "x"}}, "not one of the task types"),
        ({"max_replies": -1}, "max_replies=-1 must be a whole number"),
        ({"max_replies": "many"}, "max_replies='many' must be a whole number"),
        ({"dry_run": "maybe"}, "dry_run='maybe' is not a boolean"),
        ({"case_id": "INV-1002"}, "is not a Debitura case id"),
        ({"creditor_reference": "INV-1002", "case_reference": "ABCDEFGH"}, "exactly one of"),
    ],
)
def test_bad_parameters_fail_before_any_request(debitura_conn, kwargs: dict, message: str) -> None:
    sb = debitura_conn
    sb.control("DELETE", "/requests")
    template = kwargs.pop("reply_template", TEMPLATE)
    with pytest.raises(DebituraConfigError) as err:
        reply(template, **kwargs)
    assert message in str(err.value)
    assert sb.control("GET", "/counters").json().get("total", 0) == 0


def test_missing_sender_fails_before_any_request(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(sandbox.conn_json())
    conn["extra"] = {}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    with pytest.raises(DebituraConfigError, match="No chat sender: pass user_email="):
        reply()
    assert sandbox.control("GET", "/counters").json().get("total", 0) == 0
    report, _ = reply(user_email="finance@example.com")
    assert len(report["replied"]) == 3
    assert creditor_chats(sandbox, "INV-1002")[0]["user"]["email"] == "finance@example.com"


def test_templates_are_not_airflow_template_fields() -> None:
    fields = set(DebituraReplyToChatTasksOperator.template_fields)
    assert "reply_template" not in fields and "reply_templates" not in fields
    assert {"case_id", "creditor_reference", "case_reference", "task_types", "user_email", "dry_run"} <= fields


def test_api_key_never_in_report_or_logs(debitura_conn, capsys: pytest.CaptureFixture[str]) -> None:
    sb = debitura_conn
    report, _ = reply(dry_run=True)
    report2, _ = reply()
    out = capsys.readouterr()
    for blob in (json.dumps(report), json.dumps(report2), out.out, out.err):
        assert sb.api_key not in blob
