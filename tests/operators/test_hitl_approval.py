"""Reply approval without a metadata DB: parameter checks, the request's content, and how an answer's edits
become the drafts that are posted (the posting itself is the reply phases' own, tested with them)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE, HITL_UNAVAILABLE_REASON

pytestmark = [
    pytest.mark.hitl,
    pytest.mark.skipif(not HITL_AVAILABLE, reason=f"Human-in-the-loop: {HITL_UNAVAILABLE_REASON}"),
]

WHEN = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


def _drafts():
    from airflow_provider_debitura.replies import CaseDraft, DraftTask

    return [
        CaseDraft("c1", "INV-1", (DraftTask("t1", "ReplyToChat", WHEN),), "Hello *one*"),
        CaseDraft("c2", "INV-2", (DraftTask("t2", "MoreInfoNeeded", WHEN),), "Hello two"),
    ]


def test_constructor_checks_before_any_request():
    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator

    with pytest.raises(DebituraConfigError, match="sets defaults itself"):
        DebituraReplyApprovalOperator(task_id="a", reply_template="x", defaults="Approve")
    with pytest.raises(DebituraConfigError, match="subset"):
        DebituraReplyApprovalOperator(task_id="a", reply_template="x", task_types=["SignContract"])
    with pytest.raises(Exception, match="template"):
        DebituraReplyApprovalOperator(task_id="a")  # no template at all
    op = DebituraReplyApprovalOperator(task_id="a", reply_template="x", post_on_timeout=True)
    assert op.options == ["Approve", "Reject"] and op.defaults == ["Approve"]
    assert DebituraReplyApprovalOperator(task_id="b", reply_template="x").defaults == ["Reject"]


def test_edits_replace_the_rendered_text_and_an_emptied_field_skips_its_case():
    from airflow_provider_debitura.operators.reply_approval import apply_edits
    from airflow_provider_debitura.replies import ReplyReport

    report = ReplyReport()
    kept, edited = apply_edits(_drafts(), {"reply_1": "Hello *one*", "reply_2": " \u200b "}, report)
    assert [d.case_id for d in kept] == ["c1"] and edited == []
    assert report.skipped[0]["reason"] == "left empty by the approver"
    kept, edited = apply_edits(_drafts(), {"reply_1": "Changed", "reply_2": "Hello two"}, ReplyReport())
    assert [d.message for d in kept] == ["Changed", "Hello two"] and edited == ["INV-1"]
    kept, _ = apply_edits(_drafts(), {}, ReplyReport())  # no fields sent: the rendered texts
    assert [d.message for d in kept] == ["Hello *one*", "Hello two"]
    with pytest.raises(DebituraConfigError, match="reply_9"):
        apply_edits(_drafts(), {"reply_9": "x"}, ReplyReport())
    with pytest.raises(DebituraConfigError, match="must be text"):
        apply_edits(_drafts(), {"reply_1": 5}, ReplyReport())


# -------------------------------------------------------------- an emptied field (issue 21, item 3)


def test_every_reply_field_is_optional_so_an_emptied_one_can_be_approved():
    from airflow_provider_debitura.operators.reply_approval import _reply_params

    params = _reply_params(_drafts())
    for key in params:
        assert "null" in params.get_param(key).schema["type"], (
            key
        )  # the UI marks a field required unless null is allowed
    params["reply_1"] = None  # what the UI sends for an emptied textarea: no ParamValidationError
    params["reply_2"] = ""


def _answer(fields: dict, option: str = "Approve") -> dict:
    return {
        "chosen_options": [option],
        "params_input": fields,
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": {"id": "alice", "name": "Alice"},
        "timedout": False,
    }


def test_approve_with_an_emptied_field_posts_the_other_cases(debitura_conn, monkeypatch):
    import uuid
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_debitura.hitl import compat as hitl_compat
    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator

    upserts: list[dict] = []
    monkeypatch.setattr(hitl_compat, "upsert_request", lambda ti_id, **kwargs: upserts.append(kwargs))
    context = {"task_instance": SimpleNamespace(id=uuid.uuid4())}
    template = "Regarding {{ task.caseReference }}: noted."
    with pytest.raises(TaskDeferred) as deferred:
        DebituraReplyApprovalOperator(task_id="approve", reply_template=template).execute(context)
    [request] = upserts
    fields = {key: param["value"] for key, param in request["params"].items()}
    titles = {key: param["schema"]["title"] for key, param in request["params"].items()}
    assert sorted(titles.values()) == ["Reply to INV-1002", "Reply to INV-1003"]
    emptied = next(key for key, title in titles.items() if title == "Reply to INV-1002")
    fields[emptied] = None  # the UI's body for an emptied textarea

    op = DebituraReplyApprovalOperator(task_id="approve", reply_template=template)
    report = op.execute_complete(context, _answer(fields), **deferred.value.kwargs)
    assert report["outcome"] == "approved"
    assert {r["creditor_reference"] for r in report["replied"]} == {"INV-1003"}
    assert {s["creditor_reference"]: s["reason"] for s in report["skipped"]} == {
        "INV-1002": "left empty by the approver"
    }
    posts = debitura_conn.control("GET", "/counters").json().get("POST /cases/{id}/chats", 0)
    assert posts == 1


def test_null_empty_and_whitespace_fields_all_mean_nothing_to_that_case():
    from airflow_provider_debitura.operators.reply_approval import apply_edits
    from airflow_provider_debitura.replies import ReplyReport

    for emptied in (None, "", "  \n\t "):
        report = ReplyReport()
        kept, edited = apply_edits(_drafts(), {"reply_1": emptied, "reply_2": "Hello two"}, report)
        assert [d.case_id for d in kept] == ["c2"] and edited == []
        assert [(s["creditor_reference"], s["reason"]) for s in report.skipped] == [
            ("INV-1", "left empty by the approver")
        ]


# ------------------------------------------------------- control characters in a reply (issue 21, item 5)

DIRTY = "Hello\x00 there\x07, \x1b[31mred\x1b[0m and \u202eDK50 0040 0440 1162 43\u202c.\r\nLine two\tand a tab"
CLEAN = "Hello there, red and DK50 0040 0440 1162 43.\nLine two\tand a tab"


def test_control_characters_in_an_edit_are_removed_with_a_warning(caplog):
    from airflow_provider_debitura.operators.reply_approval import apply_edits
    from airflow_provider_debitura.replies import ReplyReport

    with caplog.at_level("WARNING"):
        kept, edited = apply_edits(_drafts(), {"reply_1": DIRTY, "reply_2": "Hello two"}, ReplyReport())
    assert kept[0].message == CLEAN and edited == ["INV-1"]
    [warning] = [r.getMessage() for r in caplog.records if "control character" in r.getMessage()]
    assert warning.startswith("reply_1 (the reply to case INV-1")
    assert "U+0000" in warning and "U+0007" in warning and "U+001B" in warning and "U+202E" in warning


def test_a_rendered_reply_loses_control_characters_the_same_way(caplog):
    from airflow_provider_debitura.replies import compile_template, render_reply

    template = compile_template("reply_template", "You wrote: {{ partner_message }}")
    task = {"id": "t1", "type": "ReplyToChat", "caseId": "c1"}
    with caplog.at_level("WARNING"):
        text = render_reply(
            template, template_name="reply_template", task=task, case=None, partner_message=DIRTY, context={}
        )
    assert text == "You wrote: " + CLEAN
    assert any("reply_template for task t1" in r.getMessage() and "U+202E" in r.getMessage() for r in caplog.records)


def test_a_draft_that_still_holds_control_characters_is_not_posted():
    from airflow_provider_debitura.replies import CaseDraft, DraftTask, ReplyTemplateError, validate_drafts

    draft = CaseDraft("c1", "INV-1", (DraftTask("t1", "ReplyToChat", WHEN),), "Pay \u202eDK50\x07")
    with pytest.raises(ReplyTemplateError, match=r"case INV-1.*U\+202E RIGHT-TO-LEFT OVERRIDE.*U\+0007") as err:
        validate_drafts([draft])
    assert "newlines and tabs" in str(err.value)
    validate_drafts([draft.with_message(CLEAN)])  # tab and newline stay


def test_drafting_for_approval_reads_only_the_listing_pages_it_needs(monkeypatch):
    """The approval operator plans like the reply operator (``operators/reply_plan.py``): over the whole account
    with ``max_replies``, page 1 of the chat listing and each case's own tasks and history, at any queue size."""
    import uuid
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_debitura.hitl import compat as hitl_compat
    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator
    from airflow_provider_debitura.sandbox import SandboxServer

    upserts: list[dict] = []
    monkeypatch.setattr(hitl_compat, "upsert_request", lambda ti_id, **kwargs: upserts.append(kwargs))
    context = {"task_instance": SimpleNamespace(id=uuid.uuid4())}
    with SandboxServer(scenario="large:5000", api_key="approval-pages-key") as sb:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sb.conn_json())
        sb.control("DELETE", "/requests")
        op = DebituraReplyApprovalOperator(task_id="approve", reply_template="Noted: {{ task.type }}.", max_replies=5)
        with pytest.raises(TaskDeferred):
            op.execute(context)
        counts = sb.control("GET", "/counters").json()
    assert len(upserts[0]["params"]) == 5
    assert counts == {"GET /tasks": 1, "GET /cases/{id}/tasks": 5, "GET /cases/{id}/chats": 5, "total": 11}, counts
