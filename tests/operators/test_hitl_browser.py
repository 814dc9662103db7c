"""Looks through a real browser: Airflow's Required Actions page shows a handoff request waiting (with its
Debitura link) and a reply awaiting approval (with its editable reply). Headless Debian Chromium driven by
Playwright; skipped with the reason where either is missing.

The screenshots go to a temporary folder, or to ``docs/images/`` with ``make screenshots``, which retakes the
docs' pictures.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.api_server import ApiServer, logged_in_page, run_until_request
from helpers.browser import browser_skip_reason
from helpers.screenshots import screenshot_dir

from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE, MIN_AIRFLOW

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("hitl-browser"),  # one api-server for the module, on one pytest-xdist worker
    pytest.mark.timeout(900),
    pytest.mark.skipif(not HITL_AVAILABLE, reason=f"Human-in-the-loop needs Airflow {MIN_AIRFLOW}+"),
]

RUN_TIMEOUT = 300


def _keep(shot: Path) -> None:
    shutil.copy(shot, screenshot_dir() / shot.name)


@pytest.fixture(scope="module")
def browser_api(module_airflow_env) -> Iterator[ApiServer]:
    """One api-server over an Airflow of the module's own: Required Actions lists every request in the DB, so
    not the worker's shared one (other tests' requests would show). Skips where there is no browser."""
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with ApiServer(module_airflow_env) as api:
        yield api


def test_required_actions_page_shows_the_waiting_handoff(browser_api, sandbox, tmp_path) -> None:
    [review] = [t for t in sandbox.state.list_tasks("Open") if t["type"] == "ReviewPartner"]
    api = browser_api
    run, request = run_until_request(api, "hitl_handoff_wait", sandbox.conn_json(), RUN_TIMEOUT)
    try:
        with logged_in_page(api) as page:
            page.goto(f"{api.url}/required_actions", wait_until="networkidle")
            page.get_by_text(request["subject"]).first.wait_for(timeout=60_000)
            page.screenshot(path=tmp_path / "hitl_handoff_required_actions.png", full_page=True)
            _keep(tmp_path / "hitl_handoff_required_actions.png")

            page.get_by_text(request["subject"]).first.click()
            link = page.get_by_role("link", name="Open in Debitura")
            link.first.wait_for(timeout=60_000)
            assert link.first.get_attribute("href") == review["solutionUrl"]
            for option in ("Done", "Can't do"):
                assert page.get_by_role("button", name=option).count() >= 1
            page.screenshot(path=tmp_path / "hitl_handoff_request.png", full_page=True)
            _keep(tmp_path / "hitl_handoff_request.png")
    finally:
        api.answer(request, ["Can't do"], {"note": "browser check done"})
        result = run.result(timeout=RUN_TIMEOUT)
    assert result.xcom("summarise") == ["cant_do"], result.explain()


def test_required_actions_page_shows_a_reply_awaiting_approval(browser_api, sandbox, tmp_path) -> None:
    api = browser_api
    run, request = run_until_request(api, "hitl_approval", sandbox.conn_json(), RUN_TIMEOUT)
    try:
        with logged_in_page(api) as page:
            page.goto(f"{api.url}/required_actions", wait_until="networkidle")
            page.get_by_text(request["subject"]).first.click()
            page.get_by_text("Could you confirm the debtor's current address?").first.wait_for(timeout=60_000)
            assert page.get_by_role("button", name="Approve").count() >= 1
            assert page.get_by_text("Reply to INV-1002").count() >= 1  # the editable field's title
            page.screenshot(path=tmp_path / "hitl_reply_approval.png", full_page=True)
            _keep(tmp_path / "hitl_reply_approval.png")
    finally:
        api.answer(request, ["Reject"], {k: p["value"] for k, p in request["params"].items()})
        result = run.result(timeout=RUN_TIMEOUT)
    assert result.xcom("approve_replies")["outcome"] == "rejected", result.explain()
    assert sandbox.control("GET", "/counters").json().get("POST /cases/{id}/chats", 0) == 0


HOSTILE_DESCRIPTION = (
    "URGENT-NOTICE\n===\n- item-one\n1. item-first\n"
    "Log in at https://evil.example/login or www.evil-pay.example, write to billing@evil.example "
    "![x](http://evil.example/pixel.png)\n"
    "Pay to \u202eDK50 0040 0440 1162 43\u202c"
)


def _texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent || '')")


def test_partner_text_in_a_request_is_inert_in_the_browser(browser_api, sandbox, tmp_path) -> None:
    """Issue 21, item 4: partner text and titles render as text (no link, heading, list, image or bidi override);
    a solutionUrl with an embedded newline is not a link, and what follows it renders as text."""
    [review] = [t for t in sandbox.state.list_tasks("Open") if t["type"] == "ReviewPartner"]
    sandbox.control("POST", f"/tasks/{review['id']}/solve")
    hostile = {
        "type": "ReviewPartner",
        "caseId": review["caseId"],
        "title": "Pay at www.evil-pay.example",
        "description": HOSTILE_DESCRIPTION,
        "solutionUrl": "https://app.debitura.com/x\n\n[Pay here](https://evil.example/login)",
    }
    assert sandbox.control("POST", "/tasks", json=hostile).status_code in (200, 201)
    api = browser_api
    run, request = run_until_request(api, "hitl_handoff_wait", sandbox.conn_json(), RUN_TIMEOUT)
    try:
        with logged_in_page(api) as page:
            page.goto(f"{api.url}/required_actions", wait_until="networkidle")
            page.get_by_text(request["subject"]).first.click()
            page.get_by_text("URGENT-NOTICE", exact=False).first.wait_for(timeout=60_000)
            page.screenshot(path=tmp_path / "hitl_inert_partner_text.png", full_page=True)
            hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href') || '')")
            assert [h for h in hrefs if "evil" in h] == [], hrefs
            assert page.get_by_role("link", name="Open in Debitura").count() == 0
            assert _texts(page, "img[src*='evil']") == []
            for selector in ("h1", "h2", "ul", "ol", "li", "a", "h3 a"):  # the title is the task's own h3
                marked = [t for t in _texts(page, selector) if "URGENT-NOTICE" in t or "item-" in t or "evil" in t]
                assert marked == [], (selector, marked)
            body = page.inner_text("body")
            assert "DK50 0040 0440 1162 43" in body and "\u202e" not in body
            assert "Pay here" in body  # what followed the newline in the solutionUrl is shown as text
    finally:
        api.answer(request, ["Can't do"], {"note": "browser check done"})
        result = run.result(timeout=RUN_TIMEOUT)
    assert result.xcom("summarise") == ["cant_do"], result.explain()
