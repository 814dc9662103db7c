"""Case lookup by creditor reference, including references with ``/`` (invoice numbers like ``2024/0001``).

The hook sends the reference as one encoded path segment. A server that decodes ``%2F`` before routing
(as ASP.NET can) answers 404; then, and only then, the hook searches the newest cases with ``GET /cases``.
respx plays such a server (the fallback's page contents and a 404 on an encoded slash); the end-to-end
test runs against the sandbox once it serves ``GET /cases``.
"""

from __future__ import annotations

import json
import traceback

import httpx
import pytest
import respx

from airflow_provider_debitura.exceptions import DebituraNotFoundError
from airflow_provider_debitura.hooks import lookup
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook, DebituraHook

BASE = "https://customer-api.debitura.com"
REF = "2024/0001"
NOT_FOUND = {
    "error": "NotFound",
    "message": "Case not found.",
    "businessErrors": [{"type": "NotFound", "message": "Case not found."}],
}


@pytest.fixture
def conn(monkeypatch):
    conn = {"conn_type": "debitura", "password": "respx-key-0000", "extra": {"max_attempts": 3}}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


def case(n: int, reference: str | None = None) -> dict:
    return {"id": f"00000000-0000-4000-8000-{n:012d}", "creditorReference": reference or f"INV-{n}"}


def cases_page(page: int, cases: list[dict]) -> dict:
    return {"page": {"totalResults": 5000, "pageSize": 100, "currentPage": page}, "cases": cases}


def mock_search(pages: dict[int, list[dict]]) -> respx.Route:
    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["Page"])
        assert request.url.params["Sort"] == "DateCreated:desc" and request.url.params["PageSize"] == "100"
        return httpx.Response(200, json=cases_page(page, pages.get(page, [])))

    return respx.get(f"{BASE}/cases").mock(side_effect=answer)


def full_page(start: int) -> list[dict]:
    return [case(start + i) for i in range(100)]


@respx.mock
def test_reference_is_sent_as_one_encoded_segment(conn):
    route = respx.get(url__regex=r".*/cases/by-creditor-reference/2024%2F0001$").respond(json=case(1, REF))
    assert DebituraHook().find_case(creditor_reference=REF).creditor_reference == REF
    assert route.calls.last.request.url.raw_path == b"/cases/by-creditor-reference/2024%2F0001"


@respx.mock
def test_a_404_for_a_reference_with_a_slash_falls_back_to_searching_the_newest_cases(conn):
    respx.get(url__regex=r".*/by-creditor-reference/.*").respond(404, json=NOT_FOUND)
    search = mock_search({1: full_page(0), 2: [*full_page(100)[:50], case(777, REF), *full_page(200)[:49]]})
    found = DebituraHook().find_case(creditor_reference=REF)
    assert found.creditor_reference == REF and found.id.endswith("777")
    assert search.call_count == 2  # cost: 1 lookup + 2 pages


@respx.mock
def test_the_search_is_bounded_and_says_what_it_searched(conn):
    by_ref = respx.get(url__regex=r".*/by-creditor-reference/.*").respond(404, json=NOT_FOUND)
    search = mock_search({p: full_page(p * 100) for p in range(1, 50)})
    with pytest.raises(DebituraNotFoundError) as err:
        DebituraHook().find_case(creditor_reference=REF)
    assert by_ref.call_count == 1 and search.call_count == lookup.SEARCH_MAX_PAGES == 10
    message = str(err.value)
    assert "Case not found (NotFound). The reference contains '/'" in message
    assert "the 1,000 newest cases were searched too (10 requests): none has creditorReference '2024/0001'" in message


@respx.mock
def test_a_short_page_ends_the_search(conn):
    respx.get(url__regex=r".*/by-creditor-reference/.*").respond(404, json=NOT_FOUND)
    search = mock_search({1: full_page(0), 2: full_page(100)[:7]})
    with pytest.raises(DebituraNotFoundError, match="the 107 newest cases were searched too"):
        DebituraHook().find_case(creditor_reference=REF)
    assert search.call_count == 2


@respx.mock
def test_a_server_without_get_cases_gives_the_original_404(conn):
    respx.get(url__regex=r".*/by-creditor-reference/.*").respond(404, json=NOT_FOUND)
    respx.get(f"{BASE}/cases").respond(404, json=NOT_FOUND)
    with pytest.raises(DebituraNotFoundError, match=r"GET /cases answered 404 too") as err:
        DebituraHook().find_case(creditor_reference=REF)
    assert err.value.path == "/cases/by-creditor-reference/2024%2F0001"


@respx.mock
def test_a_reference_without_a_slash_is_never_searched(conn):
    by_ref = respx.get(f"{BASE}/cases/by-creditor-reference/INV-9").respond(404, json=NOT_FOUND)
    search = respx.get(f"{BASE}/cases")
    with pytest.raises(DebituraNotFoundError):
        DebituraHook().find_case(creditor_reference="INV-9")
    assert by_ref.call_count == 1 and search.call_count == 0  # 404 is final: no retry either


@respx.mock
async def test_the_async_hook_searches_the_same_way(conn):
    respx.get(url__regex=r".*/by-creditor-reference/.*").respond(404, json=NOT_FOUND)
    mock_search({1: [case(5, REF)]})
    async with DebituraAsyncHook() as hook:
        assert (await hook.find_case(creditor_reference=REF)).id.endswith("5")


@respx.mock
def test_the_missing_case_error_is_short(conn):
    """One line naming call, status and what the server said once; no retry frames, no chained traceback."""
    respx.get(f"{BASE}/cases/by-creditor-reference/INV-9").respond(404, json=NOT_FOUND)
    with pytest.raises(DebituraNotFoundError) as err:
        DebituraHook().find_case(creditor_reference="INV-9")
    assert str(err.value) == (
        "Debitura API GET /cases/by-creditor-reference/INV-9 answered HTTP 404: Case not found (NotFound)"
    )
    assert err.value.__cause__ is None and err.value.__context__ is None
    frames = "".join(traceback.format_exception(err.value))
    assert "tenacity" not in frames and "concurrent/futures" not in frames
    assert frames.count("File ") <= 12, frames  # the provider's own frames only


def test_end_to_end_against_the_sandbox(sandbox, debitura_conn):
    """A case whose creditor reference has a slash, found by that reference through the real server."""
    body = {
        "users": [{"firstName": "O", "lastName": "Ops", "email": "ops@example.com"}],
        "cases": [{"creditorReference": "INV-1"}, {"creditorReference": REF}],
    }
    assert sandbox.control("POST", "/_sandbox/scenario", json=body).status_code == 200
    if sandbox.control("GET", "/_sandbox/counters").status_code == 200:
        probe = httpx.get(f"{sandbox.url}/cases", headers={"XApiKey": sandbox.api_key}, params={"PageSize": 1})
        direct = httpx.get(
            f"{sandbox.url}/cases/by-creditor-reference/2024%2F0001", headers={"XApiKey": sandbox.api_key}
        )
        if probe.status_code == 404 and direct.status_code == 404:
            pytest.skip("this sandbox serves neither an encoded '/' in the reference nor GET /cases yet")
    with DebituraHook() as hook:
        assert hook.find_case(creditor_reference=REF).creditor_reference == REF
