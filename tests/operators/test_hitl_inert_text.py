"""Text from outside (a partner's message, a task's title or description, a solutionUrl) shown in a Required Actions
request is inert: no link, heading, list, image or bidirectional override comes from it; the only link is the
provider's own "Open in Debitura", for a clean https solutionUrl.

The oracle renders the request's Markdown with markdown-it (CommonMark, GFM tables and fuzzy autolinks) and, since
Airflow's UI renders with micromark/remark-gfm, which finds autolink literals in the *decoded* text (backslash
escapes do not stop them), also runs remark-gfm's autolink expressions over the rendered text. The real UI is
checked in tests/operators/test_hitl_browser.py.
"""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE
from airflow_provider_debitura.hitl.handoff import handoff_tasks
from airflow_provider_debitura.hitl.markdown import clean_https_url, solution_link
from airflow_provider_debitura.hitl.request import handoff_body
from airflow_provider_debitura.replies.text import BIDI_CONTROLS

PARTNER_TEXT = {
    "url": "Please log in at https://evil.example/login to pay",
    "www": "Pay at www.evil-pay.example today",
    "email": "Write to billing@evil.example now",
    "image": "See ![x](http://evil.example/pixel.png) here",
    "setext": "Urgent\n===\nplease",
    "setext2": "Urgent\n---",
    "list": "- one\n- two\n1. first\n2. second",
    "bidi": "Pay to \u202eDK50 0040 0440 1162 43\u202c please \u2066x\u2069 \u200f\u061c",
    "autolink": "<https://evil.example/a> <b>bold</b> [a](https://evil.example)",
    "entity": "&#104;ttps://evil.example &lt;",
}
IBAN = "DK50 0040 0440 1162 43"

# remark-gfm's autolink literals (mdast-util-gfm-autolink-literal), matched on decoded text
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)", re.IGNORECASE)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)")


def _render(markdown: str) -> str:
    md = MarkdownIt("gfm-like")
    md.linkify.set({"fuzzy_link": True, "fuzzy_email": True})
    return md.render(markdown)


def _assert_inert(markdown: str, *, allowed_links: tuple[str, ...] = ()) -> str:
    """The rendered HTML, after checking that nothing in it came alive."""
    rendered = _render(markdown)
    links = re.findall(r'<a href="([^"]*)"', rendered)
    assert [html.unescape(link) for link in links] == list(allowed_links), rendered
    for tag in ("h1", "h2", "ul", "ol", "li", "img", "hr", "table", "b", "code", "pre"):
        assert f"<{tag}>" not in rendered and f"<{tag} " not in rendered, (tag, rendered)
    text = html.unescape(re.sub(r"<[^>]+>", " ", rendered))
    assert not GFM_URL.search(text) and not GFM_EMAIL.search(text), text
    assert not BIDI_CONTROLS & set(markdown), "a bidirectional control reached the request"
    return rendered


@pytest.mark.parametrize("name", sorted(PARTNER_TEXT))
def test_handoff_body_shows_debitura_text_inert(name):
    text = PARTNER_TEXT[name]
    [task] = handoff_tasks("t", {"id": "T1", "type": "Generic", "title": text, "description": text})
    body = handoff_body([task], intro=None, done="Done", cant_do="Can't do")
    rendered = _assert_inert(body)
    assert rendered.count("<h3>") == 1  # the provider's own heading for the task, nothing more
    if name == "bidi":
        assert IBAN in html.unescape(rendered)  # shown in the order it was written


@pytest.mark.parametrize(
    "url",
    [
        "https://app.debitura.com/x\n\n[pay here](https://evil.example/login)",
        "https://app.debitura.com/x\n# Heading",
        "https://app.debitura.com/x y",
        " https://app.debitura.com/x",
        "https://app.debitura.com/x\u202e",
        "https://app.debitura.com@evil.example/x",
        "javascript:alert(1)//https://x",
        "http://app.debitura.com/x",
        "https:///x",
        "https://app.debitura.com/x<b>",
    ],
)
def test_only_a_clean_https_solution_url_becomes_a_link(url):
    assert clean_https_url(url) is None
    [task] = handoff_tasks("t", {"id": "T1", "type": "Generic", "solutionUrl": url})
    _assert_inert(handoff_body([task], intro=None, done="Done", cant_do="Can't do"))
    assert "Open in Debitura" not in solution_link(url)


def test_a_clean_https_solution_url_is_the_one_link():
    url = "https://app.debitura.com/creditor/tasks?task=T1&tab=(a)"
    [task] = handoff_tasks("t", {"id": "T1", "type": "Generic", "title": PARTNER_TEXT["url"], "solutionUrl": url})
    body = handoff_body([task], intro=None, done="Done", cant_do="Can't do")
    _assert_inert(body, allowed_links=("https://app.debitura.com/creditor/tasks?task=T1&tab=%28a%29",))


@pytest.mark.skipif(not HITL_AVAILABLE, reason="the approval operator needs Airflow 3.1+")
def test_approval_body_shows_the_partner_message_and_the_reply_inert():
    from helpers.fake_gateway import T0, chat, make_task

    from airflow_provider_debitura.operators.reply_approval import approval_body
    from airflow_provider_debitura.replies import CaseDraft, CaseReading, DraftTask
    from airflow_provider_debitura.replies.plan import CaseCandidate

    partner_text = "\n".join(PARTNER_TEXT.values())
    task = make_task(1, "c1", title="Reply at www.evil-pay.example", caseReference="INV-1 billing@evil.example")
    reading = CaseReading(CaseCandidate("c1", [task]), [chat("m1", 2, 1, partner_text)], None, [task])
    draft = CaseDraft("c1", "INV-1 www.evil.example", (DraftTask("t1", "ReplyToChat", T0),), partner_text)
    rendered = _assert_inert(approval_body([reading], [draft], intro=None))
    assert rendered.count("<h3>") == 1 and IBAN in html.unescape(rendered)
