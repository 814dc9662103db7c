"""Reply approval without a metadata DB: parameter checks, the request's content, and how an answer's edits
become the drafts that are posted (the posting itself is the reply phases' own, tested with them)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hitl_compat import HITL_AVAILABLE, HITL_UNAVAILABLE_REASON

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
