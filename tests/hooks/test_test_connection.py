"""``test_connection()``: under 3 s, no retries, and a message that says what to fix.

Real servers where a real server can show the fault (the sandbox, a closed port, a plain-HTTP server
spoken to in TLS); the UI's throwaway connection goes through Airflow's own ``Connection.test_connection``.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from airflow_provider_debitura.hooks.debitura import DebituraHook

DEADLINE = 3.0  # the bound; test_connection itself gives up after 2.8 s


def set_conn(monkeypatch, sandbox, conn_id: str = "debitura_default", **changes) -> None:
    data = json.loads(sandbox.conn_json()) | changes
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data))


def timed_test(conn_id: str = "debitura_default") -> tuple[bool, str, float]:
    started = time.monotonic()
    ok, message = DebituraHook(conn_id).test_connection()
    return ok, message, time.monotonic() - started


def counters(sandbox) -> dict[str, int]:
    return sandbox.control("GET", "/_sandbox/counters").json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_success_names_the_account_the_host_and_the_connection(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox)
    ok, message, took = timed_test()
    assert ok and took < DEADLINE
    assert message == f"Connected to Debitura as Nordic Widgets ApS ({sandbox.url}, connection 'debitura_default')."


def test_no_scheme_says_add_http_or_https(sandbox, monkeypatch):
    """``127.0.0.1:8080`` (what people type): https is assumed and the plain-HTTP server cannot speak TLS."""
    set_conn(monkeypatch, sandbox, host=sandbox.url.removeprefix("http://"))
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE
    assert "has no scheme, so https:// was assumed" in message and "add http:// or https://" in message


def test_https_to_a_plain_http_server_says_it_does_not_speak_tls(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox, host=sandbox.url.replace("http://", "https://"))
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE and "does not speak TLS" in message and "use http://" in message


def test_nothing_listening_is_connection_refused_at_once(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox, host=f"http://127.0.0.1:{free_port()}")
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE
    assert "connection refused at 127.0.0.1:" in message and "Is the server running" in message


def test_unknown_host_is_a_dns_error(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox, host="https://no-such-host.invalid")
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE
    assert "'no-such-host.invalid' cannot be resolved (DNS)" in message or "may not resolve" in message, message


def test_unroutable_host_answers_within_the_deadline(sandbox, monkeypatch):
    """A documentation-only address (TEST-NET-1): depending on the network a connect timeout, no route or a
    refusal by a firewall; never the 9 s retry loop of before."""
    set_conn(monkeypatch, sandbox, host="https://192.0.2.1")
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE
    assert "192.0.2.1" in message and any(w in message for w in ("unreachable", "no answer", "no route", "refused"))


def test_wrong_key_names_the_password_field_and_auth_type_and_is_not_retried(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox, password="wrong-key-5d8e2a7c")
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE
    assert "API key was rejected (HTTP 401)" in message and "password field" in message and "auth_type" in message
    assert "wrong-key-5d8e2a7c" not in message
    assert counters(sandbox)["GET /me"] == 1


def test_404_on_me_says_the_base_url_is_not_the_api(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox)
    rules = {"rules": [{"kind": "status", "status": 404, "path": "/me"}]}
    assert sandbox.control("PUT", "/_sandbox/faults", json=rules).status_code == 200
    ok, message, _ = timed_test()
    assert not ok and "HTTP 404, so this server is not the Debitura Customer API" in message and "Base URL" in message


def test_a_5xx_is_reported_once_without_retries(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox)
    rules = {"rules": [{"kind": "status", "status": 503, "path": "/me"}]}
    assert sandbox.control("PUT", "/_sandbox/faults", json=rules).status_code == 200
    ok, message, took = timed_test()
    assert not ok and "503" in message and took < DEADLINE
    assert counters(sandbox)["GET /me"] == 1


def test_slow_server_is_cut_at_the_deadline(sandbox, monkeypatch):
    set_conn(monkeypatch, sandbox)
    rules = {"rules": [{"kind": "latency", "latencyMs": 5000, "path": "/me"}]}
    assert sandbox.control("PUT", "/_sandbox/faults", json=rules).status_code == 200
    ok, message, took = timed_test()
    assert not ok and took < DEADLINE and "no answer within 2 s" in message


@pytest.mark.parametrize("throwaway", [True, False])
@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_the_uis_throwaway_connection_is_named_by_its_host(sandbox, monkeypatch, throwaway):
    """Airflow's UI tests a form under a random 8-character id it puts in ``AIRFLOW_CONN_<ID>``; the message
    must name the host then, not that id. Driven through Airflow's own ``Connection.test_connection``."""
    from airflow.models.connection import Connection

    conn_id = "AsdfwUJt" if throwaway else "debitura_saved"
    conn = Connection(conn_id=conn_id, conn_type="debitura", host=sandbox.url, password="wrong-key-0000")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn.get_uri())  # what the API route does
    ok, message = conn.test_connection()
    assert not ok and f"Debitura at {sandbox.url}" in message
    assert (conn_id in message) is not throwaway
    assert "wrong-key-0000" not in message
    assert os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
