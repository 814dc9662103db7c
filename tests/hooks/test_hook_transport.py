"""Transport faults a real server cannot produce on demand (respx), and connection settings."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from airflow_provider_debitura.exceptions import (
    DebituraAmbiguousWriteError,
    DebituraConfigError,
    DebituraTransportError,
)
from airflow_provider_debitura.hooks.debitura import DebituraHook

BASE = "https://customer-api.debitura.com"
KEY = "respx-key-91b2c3d4e5"
CASE = "1d8d5c67-3e4d-53f7-8813-e864d30bea02"
CHAT = {"id": "0d258f0a-0095-5475-b994-802a390bd8dc", "dateCreated": "2026-11-27T10:00:00", "role": 1, "message": "hi"}


def set_conn(monkeypatch, **fields) -> None:
    conn = {"conn_type": "debitura", "password": KEY, "extra": {"user_email": "ops@example.com"}} | fields
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


@pytest.fixture
def conn(monkeypatch):
    set_conn(monkeypatch)


@respx.mock
def test_default_base_url_and_headers(conn):
    route = respx.get(f"{BASE}/me").respond(json={"id": "x", "companyName": "ACME"})
    assert DebituraHook().get_me().company_name == "ACME"
    request = route.calls.last.request
    assert request.headers["XApiKey"] == KEY
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("airflow-provider-debitura/")


@respx.mock
def test_connect_error_on_post_is_retried_because_nothing_was_sent(conn):
    route = respx.post(f"{BASE}/cases/{CASE}/chats")
    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=CHAT)]
    assert DebituraHook(retry_deadline=5).post_chat(CASE, "hi").id == CHAT["id"]
    assert route.call_count == 2


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("x")])
@respx.mock
def test_failure_after_send_on_post_is_ambiguous_and_not_retried(conn, exc):
    route = respx.post(f"{BASE}/cases/{CASE}/chats").mock(side_effect=exc)
    with pytest.raises(DebituraAmbiguousWriteError) as err:
        DebituraHook().post_chat(CASE, "hi")
    assert route.call_count == 1
    assert KEY not in str(err.value)


@respx.mock
def test_read_timeouts_on_reads_are_retried_then_surface_as_transport_error(conn):
    route = respx.get(f"{BASE}/me").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(DebituraTransportError, match="GET /me failed: ReadTimeout"):
        DebituraHook(max_attempts=2, retry_deadline=5).get_me()
    assert route.call_count == 2


@respx.mock
def test_redirects_are_not_followed_with_the_key(conn):
    respx.get(f"{BASE}/me").respond(302, headers={"Location": "https://evil.example/me"})
    evil = respx.get("https://evil.example/me").respond(json={"id": "stolen"})
    with pytest.raises(Exception, match="302"):
        DebituraHook().get_me()
    assert evil.call_count == 0


@respx.mock
def test_retry_after_http_date_header(conn):
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=1), usegmt=True)
    route = respx.get(f"{BASE}/me")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json={"id": "x"})]
    assert DebituraHook(retry_deadline=10).get_me().id == "x"


@respx.mock
def test_page_data_alias_and_null_tasks(conn):
    respx.get(f"{BASE}/tasks").respond(json={"pageData": {"totalResults": 0, "totalPages": 0}, "tasks": None})
    assert DebituraHook().list_tasks() == []


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"password": ""}, "has no API key"),
        ({"host": "http://api.example.com"}, "plain http to a non-loopback host"),
        ({"host": "ftp://x"}, "not an http"),
        ({"extra": {"auth_type": "oauth"}}, "auth_type"),
        ({"extra": {"timeout": 0}}, "'timeout'=0 must be a positive"),
        ({"extra": {"timeout": -3}}, "'timeout'=-3 must be a positive"),
        ({"extra": {"max_attempts": 0}}, "max_attempts"),
        ({"extra": {"retry_deadline": "soon"}}, "retry_deadline"),
    ],
)
def test_bad_connection_settings_are_clear(monkeypatch, fields, match):
    set_conn(monkeypatch, **fields)
    with pytest.raises(DebituraConfigError, match=match) as err:
        DebituraHook().settings  # noqa: B018
    assert "debitura_default" in str(err.value)


def test_insecure_http_needs_explicit_opt_in_and_loopback_is_fine(monkeypatch):
    set_conn(monkeypatch, host="http://api.example.com", extra={"allow_insecure_http": True})
    assert DebituraHook().settings.base_url == "http://api.example.com"
    set_conn(monkeypatch, host="http://127.0.0.1:8080")
    assert DebituraHook().settings.base_url == "http://127.0.0.1:8080"
    set_conn(monkeypatch, host="testcustomer-api.debitura.com")
    assert DebituraHook().settings.base_url == "https://testcustomer-api.debitura.com"


def test_prefixed_extras_from_old_ui_are_read(monkeypatch):
    set_conn(monkeypatch, extra={"extra__debitura__user_email": "a@b.c", "extra__debitura__timeout": "5"})
    settings = DebituraHook().settings
    assert settings.user_email == "a@b.c" and settings.timeout == 5.0


def test_uri_form_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT",
        f"debitura://:{KEY}@customer-api.debitura.com/https?user_email=ops%40example.com",
    )
    settings = DebituraHook().settings
    assert settings.base_url == "https://customer-api.debitura.com" and settings.user_email == "ops@example.com"


def test_missing_connection_is_clear(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DEBITURA_DEFAULT", raising=False)
    with pytest.raises(DebituraConfigError, match="'debitura_missing' is not defined.*AIRFLOW_CONN_DEBITURA_MISSING"):
        DebituraHook("debitura_missing").settings  # noqa: B018
