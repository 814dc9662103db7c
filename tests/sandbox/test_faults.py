"""Fault injection and rate limiting, seen from a real HTTP client."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for


def _faults(sb: SandboxServer, *rules: dict, seed: int | None = None) -> None:
    r = sb.control("PUT", "/_sandbox/faults", json={"seed": seed, "rules": list(rules)})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_status_fault_with_count(sb: SandboxServer, api: httpx.Client, status: int) -> None:
    _faults(sb, {"kind": "status", "status": status, "path": "/tasks", "count": 2})
    assert [api.get("/tasks").status_code for _ in range(3)] == [status, status, 200]
    assert api.get("/me").status_code == 200  # path-scoped
    body = api.get("/tasks").json()
    assert "page" in body
    rules = sb.control("GET", "/_sandbox/faults").json()["rules"]
    assert rules[0]["remaining"] == 0 and rules[0]["applied"] == 2


def test_status_fault_body_override_and_method_filter(sb: SandboxServer, api: httpx.Client) -> None:
    _faults(sb, {"kind": "status", "status": 500, "method": "POST", "body": {"businessErrors": []}})
    assert api.get("/tasks").status_code == 200
    r = api.post(f"/cases/{case_id_for('INV-1002')}/chats", json={"message": "x", "userEmail": "ops@example.com"})
    assert r.status_code == 500 and r.json() == {"businessErrors": []}
    assert len(api.get(f"/cases/{case_id_for('INV-1002')}/tasks").json()) == 1  # not performed


def test_default_status_body_is_api_error(sb: SandboxServer, api: httpx.Client) -> None:
    _faults(sb, {"kind": "status", "status": 503, "count": 1})
    body = api.get("/tasks").json()
    assert body["error"] == "ServiceUnavailable" and body["businessErrors"][0]["type"] == "ServiceUnavailable"


@pytest.mark.parametrize(
    ("where", "in_body", "header"),
    [("body", True, None), ("header", False, "3"), ("both", True, "3"), ("none", False, None)],
)
def test_rate_limit_fault(sb: SandboxServer, api: httpx.Client, where: str, in_body: bool, header: str | None) -> None:
    _faults(sb, {"kind": "rateLimit", "retryAfter": 2.5, "retryAfterIn": where, "count": 1})
    r = api.get("/tasks")
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limit_exceeded"
    assert ("retryAfter" in r.json()) is in_body
    if in_body:
        assert r.json()["retryAfter"] == 2.5
    assert r.headers.get("Retry-After") == header
    assert api.get("/tasks").status_code == 200


def test_latency_fault(sb: SandboxServer, api: httpx.Client) -> None:
    _faults(sb, {"kind": "latency", "latencyMs": 300, "count": 1})
    start = time.perf_counter()
    assert api.get("/tasks").status_code == 200
    assert time.perf_counter() - start >= 0.28
    assert sb.control("GET", "/_sandbox/requests").json()[-1]["fault"] == "latency"
    _faults(sb, {"kind": "latency", "latencyMs": 800, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        api.get("/tasks", timeout=0.2)
    # The server still answers the abandoned request; wait for it so it can't leak into the
    # next test's request log (the server is shared across tests).
    deadline = time.monotonic() + 5
    while sum(r["fault"] == "latency" for r in sb.control("GET", "/_sandbox/requests").json()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get("/tasks").status_code == 200


def test_drop_gives_transport_error_then_recovers(sb: SandboxServer, api: httpx.Client) -> None:
    _faults(sb, {"kind": "drop", "path": "/tasks", "count": 2})
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            api.get("/tasks")
    assert api.get("/tasks").status_code == 200
    log = sb.control("GET", "/_sandbox/requests").json()
    assert [(r["status"], r["fault"]) for r in log] == [(None, "drop"), (None, "drop"), (200, None)]
    assert sb.control("GET", "/_sandbox/counters").json()["GET /tasks"] == 3


def test_drop_with_a_fresh_connection_is_remote_protocol_error(sb: SandboxServer) -> None:
    _faults(sb, {"kind": "drop", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{sb.url}/me", headers={"XApiKey": sb.api_key})


def test_commit_then_drop_stores_the_message(sb: SandboxServer, api: httpx.Client) -> None:
    cid = case_id_for("INV-1002")
    _faults(sb, {"kind": "commitThenDrop", "method": "POST", "path": "/cases/", "count": 1})
    with pytest.raises(httpx.TransportError):
        api.post(f"/cases/{cid}/chats", json={"message": "Address confirmed", "userEmail": "ops@example.com"})
    chats = api.get(f"/cases/{cid}/chats").json()
    assert chats[-1]["message"] == "Address confirmed" and chats[-1]["role"] == 1
    assert api.get(f"/cases/{cid}/tasks").json() == []  # and the task was solved
    assert sb.control("GET", "/_sandbox/requests").json()[0]["fault"] == "commitThenDrop"


def test_malformed_json(sb: SandboxServer, api: httpx.Client) -> None:
    _faults(sb, {"kind": "malformedJson", "count": 1})
    r = api.get("/tasks")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert api.get("/tasks").json()["page"]["totalResults"] == 6


def test_html_200(sb: SandboxServer, api: httpx.Client) -> None:
    _faults(sb, {"kind": "html200", "count": 1})
    r = api.get("/tasks")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().startswith("<!DOCTYPE html>")


def test_probability_is_seeded(sb: SandboxServer, api: httpx.Client) -> None:
    def run() -> list[int]:
        _faults(sb, {"kind": "status", "status": 503, "probability": 0.5}, seed=42)
        return [api.get("/me").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert 0 < first.count(503) < 20


def test_faults_never_touch_control_plane(sb: SandboxServer) -> None:
    _faults(sb, {"kind": "drop"})
    assert sb.control("GET", "/_sandbox/state").status_code == 200
    assert sb.control("DELETE", "/_sandbox/faults").json()["rules"] == []
    bad = sb.control("PUT", "/_sandbox/faults", json={"rules": [{"kind": "drop", "path": "/_sandbox/state"}]})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "nope"},
        {"kind": "status", "status": 99},
        {"kind": "drop", "count": -1},
        {"kind": "drop", "probability": 2},
        {"kind": "latency", "latencyMs": "slow"},
        {"kind": "rateLimit", "retryAfterIn": "cookie"},
        {"kind": "drop", "latencyMs": 5},
        {"kind": "drop", "path": "tasks"},
    ],
)
def test_fault_validation_is_atomic(sb: SandboxServer, rule: dict) -> None:
    _faults(sb, {"kind": "latency", "latencyMs": 1})
    r = sb.control("PUT", "/_sandbox/faults", json={"rules": [{"kind": "drop"}, rule]})
    assert r.status_code == 400 and "rules[1]" in r.json()["message"]
    assert [x["kind"] for x in sb.control("GET", "/_sandbox/faults").json()["rules"]] == ["latency"]


def test_rate_limit_config(sb: SandboxServer, api: httpx.Client) -> None:
    sb.control("PUT", "/_sandbox/config", json={"rateLimitPerMinute": 3})
    assert [api.get("/me").status_code for _ in range(3)] == [200, 200, 200]
    r = api.get("/tasks")
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limit_exceeded" and 0 < r.json()["retryAfter"] <= 60
    assert "Retry-After" not in r.headers
    sb.control("PUT", "/_sandbox/config", json={"retryAfterHeader": True})
    r = api.get("/tasks")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    # per key: another key has its own window (and then fails auth)
    assert api.get("/me", headers={"XApiKey": "other"}).status_code == 401
    sb.state.advance_clock(61)
    assert api.get("/me").status_code == 200
