"""Odd but spec-valid shapes served by the real sandbox: every listing, case read and chat read parses them,
whole, on every page, and says which tasks have no usable API action.

(Records the spec does not allow, which the sandbox will not serve, are in tests/models/test_isolation.py.)
"""

from __future__ import annotations

import pytest
from helpers.reliability import load_world

from airflow_provider_debitura.hooks.debitura import DebituraHook

ODD = [
    ("ReplyToChat", {"action": {"method": None, "path": None}}, False),
    ("ReplyToChat", {"action": {"method": "POST", "path": None}}, False),
    ("MoreInfoNeeded", {"action": None}, False),
    ("ClientInputRequired", {"deadline": "2026-12-01T12:00:00"}, True),
    ("PayoutApprovalNeeded", {"caseCreditorReference": None}, False),
    ("Generic", {"description": None, "solutionUrl": None}, False),
]


def world() -> dict:
    tasks = [{"type": kind, "caseCreditorReference": "ODD-1", **fields} for kind, fields, _ in ODD]
    tasks = [{k: v for k, v in t.items() if not (k == "caseCreditorReference" and v is None)} for t in tasks]
    filler = [{"type": "Generic", "caseCreditorReference": "ODD-2"} for _ in range(150)]
    return {
        "naiveTimestamps": True,
        "users": [{"firstName": "O", "lastName": "Ops", "email": "ops@example.com"}],
        "cases": [{"creditorReference": "ODD-1"}, {"creditorReference": "ODD-2"}],
        "tasks": tasks + filler,
        "chats": [{"caseCreditorReference": "ODD-1", "role": 0, "message": "Which invoice?"}],
    }


@pytest.fixture
def hook(rel_sb, monkeypatch):
    load_world(rel_sb, world())
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", rel_sb.conn_json())
    with DebituraHook(max_attempts=1) as h:
        yield h


def test_the_account_listing_parses_every_odd_shape_on_every_page(hook, rel_sb):
    listing = hook.list_tasks()
    assert len(listing) == len(ODD) + 150 and not listing.rejected and listing.verified
    assert listing.requests == 3  # page 1 for the size, then pages 2 and 1
    by_type = {}
    for task in listing:
        by_type.setdefault(task.type, []).append(task)
    odd = [t for t in listing if t.type != "Generic" or t.case_reference == "ODD-1"]
    assert sorted((t.type, t.has_api_action) for t in odd) == sorted((k, usable) for k, _, usable in ODD)
    assert all(t.date_created.utcoffset().total_seconds() == 0 for t in listing)  # naive read as UTC
    (unknown,) = by_type["PayoutApprovalNeeded"]
    assert unknown.case_id is None and not unknown.is_account_level and not unknown.is_known_type


def test_the_case_reads_parse_them_too(hook, rel_sb):
    case = hook.find_case(creditor_reference="ODD-1")
    tasks = hook.get_case_tasks(case.id)
    assert len(tasks) == len(ODD) - 1 and not tasks.rejected  # the caseless one is account-wide only
    chats = hook.get_chats(case.id)
    assert len(chats) == 1 and chats[0].is_from_partner and not chats.rejected
