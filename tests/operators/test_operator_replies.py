"""The pure rules behind the reply operator: rendering sandbox, action checks, "already answered"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.models import ChatMessage, Task
from airflow_provider_debitura.replies import (
    ReplyTemplateError,
    action_refusal,
    answered_by,
    combine_replies,
    compile_template,
    compile_templates,
    find_own_message,
    latest_partner_message,
    render_reply,
    template_context,
)

CASE = "1d8d5c67-3e4d-53f7-8813-e864d30bea02"
OTHER = "d5ba0833-fd38-506d-8521-5ec5ae679c33"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def make_task(action: dict | None = None, case_id: str | None = CASE, **kw) -> Task:
    body = {
        "id": kw.pop("id", "6da3aa29-e603-5495-8255-0305500ab240"),
        "type": kw.pop("type", "ReplyToChat"),
        "title": "Reply to the collection partner",
        "caseId": case_id,
        "caseReference": "INV-1002",
        "dateCreated": kw.pop("date_created", T0).isoformat(),
        "solutionUrl": "https://app.debitura.com/x",
        "action": {"method": "POST", "path": "/cases/{caseId}/chats"} if action is None else action,
        **kw,
    }
    return Task.model_validate(body)


def chat(role: int, minutes: float, text: str = "hi", cid: str | None = None) -> ChatMessage:
    return ChatMessage.model_validate(
        {
            "id": cid or f"chat-{role}-{minutes}",
            "dateCreated": (T0 + timedelta(minutes=minutes)).isoformat(),
            "role": role,
            "message": text,
        }
    )


def render(source: str, *, partner: str | None = "Could you confirm the address?", context: dict | None = None) -> str:
    task = make_task().to_api_dict()
    return render_reply(
        compile_template("reply_template", source),
        template_name="reply_template",
        task=task,
        case={"id": CASE, "creditorReference": "INV-1002"},
        partner_message=partner,
        context=context or {"ds": "2026-11-01", "params": {"signature": "Olivia"}},
    )


# ---------------------------------------------------------------------------------- rendering


def test_render_sees_task_case_partner_and_context() -> None:
    text = render(
        "Re {{ task.title }} on {{ case.creditorReference }} ({{ task.type }}): you asked "
        "'{{ partner_message }}'. {{ ds }} / {{ params.signature }}"
    )
    assert text == (
        "Re Reply to the collection partner on INV-1002 (ReplyToChat): you asked "
        "'Could you confirm the address?'. 2026-11-01 / Olivia"
    )


def test_partner_text_is_inserted_literally_never_rendered() -> None:
    evil = "{{ 7*7 }} {% for x in range(3) %}loop{% endfor %} {{ ''.__class__ }}"
    assert render("You wrote: {{ partner_message }}", partner=evil) == f"You wrote: {evil}"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ task.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ partner_message.__class__.__base__ }}",
        "{{ '{0.__class__}'.format(task) }}",
        "{{ 'x' * 100000000 }}",
        "{{ 10 ** 100000 }}",
    ],
)
def test_sandbox_escapes_fail_with_a_clear_error(source: str) -> None:
    with pytest.raises(ReplyTemplateError) as err:
        render(source)
    message = str(err.value)
    assert "reply_template for task 6da3aa29" in message
    assert "sandbox" in message or "undefined" in message or "unsafe" in message


def test_undefined_variable_names_it_and_lists_what_exists() -> None:
    with pytest.raises(ReplyTemplateError, match=r"undefined value: 'invoice_no' is undefined.*task.title") as err:
        render("Invoice {{ invoice_no }}")
    assert "ds, params" in str(err.value)


def test_undefined_attribute_of_task_fails() -> None:
    with pytest.raises(ReplyTemplateError, match="undefined"):
        render("{{ task.no_such_field }}")


def test_default_filter_makes_optional_values_possible() -> None:
    assert render("{{ invoice_no | default('n/a') }}") == "n/a"


def test_partner_message_none_can_be_tested() -> None:
    assert render("{% if partner_message %}x{% else %}no message{% endif %}", partner=None) == "no message"


def test_empty_and_too_long_replies_fail() -> None:
    with pytest.raises(ReplyTemplateError, match="the rendered message is empty"):
        render("{{ '' }}   ")
    with pytest.raises(ReplyTemplateError, match="the rendered message is empty"):
        render("\u200b \u200d\ufeff\n")  # zero-width characters only: nothing a partner could read
    with pytest.raises(ReplyTemplateError, match="10,001 characters long; Debitura accepts at most 10,000"):
        render("{{ 'x' * 10001 }}")
    assert len(render("{{ 'x' * 10000 }}")) == 10_000


def test_runaway_output_stops_early() -> None:
    with pytest.raises(ReplyTemplateError, match="more than 20,000 characters"):
        render("{% for i in range(90000) %}{{ 'abcdefghij' * 1000 }}{% endfor %}")


def test_syntax_error_fails_at_compile_with_line() -> None:
    with pytest.raises(ReplyTemplateError, match=r"reply_template is not a valid Jinja template \(line 2"):
        compile_template("reply_template", "Hello\n{{ task.title ")
    with pytest.raises(ReplyTemplateError, match="non-empty Jinja string"):
        compile_template("reply_template", "  ")


def test_include_cannot_read_files() -> None:
    with pytest.raises(ReplyTemplateError):
        render("{% include '/etc/passwd' %}")


def test_compile_templates_rules() -> None:
    chat = ["ClientInputRequired", "MoreInfoNeeded", "ReplyToChat"]
    ts = compile_templates("default", {"ReplyToChat": "special"}, chat)
    assert ts.for_type("ReplyToChat")[0] == "reply_templates['ReplyToChat']"
    assert ts.for_type("MoreInfoNeeded")[0] == "reply_template"
    with pytest.raises(ReplyTemplateError, match="No reply template for ClientInputRequired, MoreInfoNeeded"):
        compile_templates(None, {"ReplyToChat": "x"}, chat)
    with pytest.raises(ReplyTemplateError, match="'ReviewPartner', which is not one of the task types"):
        compile_templates("x", {"ReviewPartner": "x"}, chat)
    with pytest.raises(ReplyTemplateError, match="must be a dict"):
        compile_templates("x", ["ReplyToChat"], chat)  # type: ignore[arg-type]
    assert issubclass(ReplyTemplateError, DebituraConfigError)


def test_template_context_keeps_plain_values_only() -> None:
    dag_run = SimpleNamespace(run_id="manual__1", conf={"k": [1, 2]}, run_type="manual", logical_date=T0)
    ti = SimpleNamespace(task_id="reply", dag_id="d", try_number=2, map_index=-1, run_id="manual__1")
    ctx = {
        "ds": "2026-11-01",
        "params": {"a": 1},
        "dag_run": dag_run,
        "ti": ti,
        "conn": object(),
        "var": object(),
        "macros": object(),
        "something_else": "not on the allow-list",
    }
    out = template_context(ctx)
    assert out["ds"] == "2026-11-01"
    assert out["params"] == {"a": 1}
    assert out["dag_run"]["conf"] == {"k": [1, 2]}
    assert out["dag_run"]["run_id"] == "manual__1"
    assert out["ti"]["try_number"] == 2
    assert "conn" not in out and "var" not in out and "macros" not in out and "something_else" not in out
    assert template_context(None) == {}


def test_combine_replies_dedupes_and_keeps_order() -> None:
    assert combine_replies(["a ", "b", "a"]) == "a\n\nb"


# ---------------------------------------------------------------------------------- actions


def test_action_template_path_and_prefilled_own_case_accepted() -> None:
    assert action_refusal(make_task()) is None
    assert action_refusal(make_task({"method": "post", "path": f"/cases/{CASE}/chats"})) is None
    assert action_refusal(make_task({"method": "POST", "path": f"/cases/{CASE.upper()}/chats"})) is None


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ({"method": "POST", "path": f"/cases/{OTHER}/chats"}, "another case"),
        ({"method": "POST", "path": "https://evil.example/cases/{caseId}/chats"}, "not /cases/{caseId}/chats"),
        ({"method": "POST", "path": "//evil.example/cases/{caseId}/chats"}, "not /cases/{caseId}/chats"),
        ({"method": "POST", "path": "cases/{caseId}/chats"}, "not /cases/{caseId}/chats"),
        ({"method": "POST", "path": "/cases/{caseId}/files"}, "not /cases/{caseId}/chats"),
        ({"method": "POST", "path": "/cases/{caseId}/chats?x=1"}, "not /cases/{caseId}/chats"),
        ({"method": "POST", "path": "/cases/../tasks/chats"}, "not /cases/{caseId}/chats"),
        ({"method": "POST", "path": "/cases/%2e%2e/chats"}, "another case"),
        ({"method": "POST", "path": "/cases/{id}/chats"}, "another case"),
        ({"method": "DELETE", "path": "/cases/{caseId}/chats"}, "not POST"),
        ({"method": "GET", "path": "/cases/{caseId}/chats"}, "not POST"),
    ],
)
def test_action_elsewhere_refused(action: dict, reason: str) -> None:
    refusal = action_refusal(make_task(action))
    assert refusal is not None and reason in refusal


def test_no_action_or_no_case_refused() -> None:
    task = Task.model_validate(
        {"id": "t", "type": "ReplyToChat", "caseId": CASE, "dateCreated": T0.isoformat(), "action": None}
    )
    assert "no action" in (action_refusal(task) or "")
    assert "no caseId" in (action_refusal(make_task(case_id=None)) or "")


# ---------------------------------------------------------------------------------- answered?


def test_answered_by_needs_a_creditor_message_not_older_than_the_task() -> None:
    task = make_task()
    assert answered_by(task, [chat(1, -5), chat(0, 5)]) is None  # old creditor msg, newer partner msg
    assert answered_by(task, [chat(1, 0, cid="same-instant")]).id == "same-instant"
    assert answered_by(task, [chat(1, 1, cid="a"), chat(1, 3, cid="b"), chat(2, 9)]).id == "b"


def test_latest_partner_message_ignores_creditor_and_counts_managed_by_partner() -> None:
    chats = [chat(0, 1, "first"), chat(2, 5, "managed"), chat(1, 9, "mine")]
    assert latest_partner_message(chats).message == "managed"
    assert latest_partner_message([chat(1, 1)]) is None


def test_find_own_message_matches_new_creditor_message_with_our_text() -> None:
    before = [chat(1, 1, "Hello", cid="old")]
    after = [*before, chat(0, 2, "Hello", cid="partner"), chat(1, 3, "Hello\r\n", cid="new")]
    found = find_own_message(after, "Hello", not_before=T0, known_ids=["old"])
    assert found is not None and found.id == "new"
    assert find_own_message(after, "Other text", not_before=T0, known_ids=["old"]) is None
    assert find_own_message(before, "Hello", not_before=T0, known_ids=["old"]) is None


@pytest.mark.parametrize("case_id", ["..", ".", "x/../y", "%2e%2e", CASE.replace("-", ""), "{" + CASE + "}", " "])
def test_a_case_id_that_is_not_a_guid_is_refused(case_id: str) -> None:
    """On main a task with caseId '..' and the template path was followed: the post went to '/cases/../chats',
    which httpx normalises to POST /chats, outside any case."""
    refusal = action_refusal(make_task(case_id=case_id))
    assert refusal is not None and ("not a GUID" in refusal or "no caseId" in refusal)
