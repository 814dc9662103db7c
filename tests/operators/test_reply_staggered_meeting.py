"""Two runs that meet with staggered starts (the flake of tests/reliability/test_reply_race.py).

Run X started earlier and has answered the cases before run Y's random start; Y begins just as X reaches
that start, so from there on each re-read of one comes before the other's post (they walk in lockstep). Y's
post came first there. Each run reads a case once more only after its own first post, so X never looks at
Y's start again: before the fix, Y took X for the later run that leaves and went on, and both answered
every case from Y's start to the end of the circle (13 duplicates in 20 cases in a real run).
"""

from __future__ import annotations

import random
from typing import Any

from helpers.fake_gateway import FakeGateway, make_task
from helpers.reply_drafts import draft_replies

from airflow_provider_debitura.models import ChatMessage
from airflow_provider_debitura.replies import ReplyReport, post_drafts

CASES = [f"0e0e0e0e-0000-4000-8000-{i:012d}" for i in range(20)]
SENDER = "ops@example.com"
SEED = 7  # Y's own order starts at case 10 of 20


class LockstepTwin:
    """Y's gateway: after each of Y's posts, run X posts on the same case (its message is the later one)."""

    def __init__(self, store: FakeGateway) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def post_chat(self, case_id: str, message: str, *, user_email: str | None = None) -> ChatMessage:
        posted = self.store.post_chat(case_id, message, user_email=user_email)
        self.store.store(case_id, message, SENDER)  # X, in the same step
        return posted


def _meeting(x_came_through: bool) -> tuple[FakeGateway, ReplyReport, int]:
    store = FakeGateway()
    drafts = draft_replies(store, [make_task(i, case, minutes=i) for i, case in enumerate(CASES)])[1]
    start = random.Random(SEED).randrange(len(drafts))
    assert 0 < start < len(drafts) - 1
    if x_came_through:  # X answered the cases before Y's start after Y read them
        for draft in drafts[:start]:
            store.store(draft.case_id, draft.message, SENDER)
    store.calls.clear()
    report = ReplyReport()
    post_drafts(LockstepTwin(store), drafts, sender=SENDER, report=report, own_order=random.Random(SEED))
    return store, report, start


def test_a_run_that_meets_an_earlier_run_at_its_start_leaves_even_when_its_message_came_first() -> None:
    store, report, start = _meeting(x_came_through=True)
    per_case = [len(store.chats.get(case, [])) for case in CASES]
    assert sum(max(0, n - 1) for n in per_case) == 1  # only the case where they met
    assert [r["case_id"] for r in report.replied] == [CASES[start]]
    assert sum("left to a concurrent run" in s["reason"] for s in report.skipped) == len(CASES) - 1
    assert store.count("GET chats") == 3 and store.count("POST chats") == 1  # re-read, after-post, the case before


def test_two_runs_that_both_start_there_still_leave_it_to_the_run_of_the_earlier_message() -> None:
    store, report, _ = _meeting(x_came_through=False)  # X started there too, so X reads the case again and leaves
    assert len(report.replied) == len(CASES)  # Y goes on (the scripted X here does not leave; a real one does)
    assert report.skipped == []
    assert store.count("GET chats") == len(CASES) + 2  # a re-read per case, the after-post read, the case before
