# ruff: noqa: E501
"""Connection settings that used to pass validation and break later: each is a config error naming the
field to fix, raised before any request, echoing no part of the API key, from the hook, from
``test_connection()`` and from the list operator alike.

Each row's message is written to ``<pytest basetemp>/bad_connection.json`` for docs/reliability.md.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from helpers.reliability import context, load_world

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraListTasksOperator

ROWS: list[dict[str, Any]] = []
SECRET = "kEy-7Hq2-PzX9"


def conn_json(sb: Any, **changes: Any) -> str:
    data = json.loads(sb.conn_json())
    extra = changes.pop("extra", {})
    data |= changes
    data["extra"] = {**data["extra"], **extra}
    return json.dumps(data)


# (row id, connection changes, message pattern)
CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "API key with a line break",
        {"password": SECRET + "\nX-Injected: 1"},
        r"API key \(password field\) contains a control character \(e\.g\. a line break or tab\) at position 14 of 27",
    ),
    ("API key with a tab", {"password": "kEy-7Hq2\tPzX9"}, r"API key \(password field\) contains a control character"),
    (
        "API key with a non-ASCII letter",
        {"password": "kEy-7Hq2-PzX9é"},
        r"API key \(password field\) contains a non-ASCII character at position 14",
    ),
    (
        "API key with a zero-width space",
        {"password": "kEy-7Hq2\u200b-PzX9"},
        r"API key \(password field\) contains a non-ASCII character at position 9",
    ),
    (
        "Base URL with a path",
        {"host": "https://customer-api.debitura.com/v1"},
        r"Base URL \(host\) 'https://customer-api.debitura.com/v1' has a path or query \('/v1'\), but the Debitura API has no path prefix",
    ),
    ("Base URL with a query", {"host": "https://customer-api.debitura.com?x=1"}, r"has a path or query \('\?x=1'\)"),
    (
        "Base URL with user:password@",
        {"host": "https://user:pw@customer-api.debitura.com"},
        r"Base URL \(host\) must not carry a user name or password",
    ),
    (
        "Base URL with a bad port",
        {"host": "http://127.0.0.1:99999"},
        r"Base URL \(host\) 'http://127.0.0.1:99999' has an invalid port",
    ),
    (
        "port field out of range",
        {"host": "http://127.0.0.1", "port": 70000},
        r"port 70000 is not a TCP port \(1 to 65535\)",
    ),
    (
        'timeout extra "inf"',
        {"extra": {"timeout": "inf"}},
        r"extra 'timeout'='inf' must be a positive number of seconds \(finite, at most 3,600",
    ),
    (
        'timeout extra "nan"',
        {"extra": {"timeout": "nan"}},
        r"extra 'timeout'='nan' must be a positive number of seconds",
    ),
    (
        "timeout extra 1e9",
        {"extra": {"timeout": 1e9}},
        r"extra 'timeout'=1000000000.0 must be a positive number of seconds \(finite, at most 3,600",
    ),
    (
        "timeout extra not a number",
        {"extra": {"timeout": "30s"}},
        r"extra 'timeout'='30s' must be a positive number of seconds",
    ),
    (
        'retry_deadline extra "inf"',
        {"extra": {"retry_deadline": "inf"}},
        r"extra 'retry_deadline'='inf' must be a positive number of seconds \(finite, at most 86,400",
    ),
    (
        "retry_deadline extra 0",
        {"extra": {"retry_deadline": 0}},
        r"extra 'retry_deadline'=0 must be a positive number of seconds",
    ),
    (
        "max_attempts extra 2.5",
        {"extra": {"max_attempts": 2.5}},
        r"extra 'max_attempts'=2.5 must be a whole number >= 1 and <= 100",
    ),
    ("max_attempts extra true", {"extra": {"max_attempts": True}}, r"extra 'max_attempts'=True must be a whole number"),
    (
        'max_attempts extra "inf"',
        {"extra": {"max_attempts": "inf"}},
        r"extra 'max_attempts'='inf' must be a whole number",
    ),
    (
        "max_attempts extra 1000",
        {"extra": {"max_attempts": 1000}},
        r"extra 'max_attempts'=1000 must be a whole number >= 1 and <= 100",
    ),
    (
        "auth_type extra unknown",
        {"extra": {"auth_type": "basic"}},
        r"extra 'auth_type'='basic' is not one of \('api_key', 'bearer'\)",
    ),
]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory):
    yield ROWS
    (tmp_path_factory.getbasetemp() / "bad_connection.json").write_text(json.dumps(ROWS, indent=1))


def _no_part_of_the_key(message: str, password: str) -> None:
    key = password.strip()
    fragments = {key[i : i + 4] for i in range(len(key) - 3)}
    assert not [f for f in fragments if f in message], message


@pytest.mark.parametrize(("changes", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_connection_is_a_config_error_before_any_request(rel_sb, monkeypatch, rows, changes, pattern):
    load_world(rel_sb, {"name": "demo"})
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", conn_json(rel_sb, **changes))
    password = changes.get("password", rel_sb.api_key)

    with pytest.raises(DebituraConfigError, match=pattern) as from_hook:
        DebituraHook().list_tasks()
    started = time.monotonic()
    ok, tested = DebituraHook().test_connection()
    took = time.monotonic() - started
    with pytest.raises(DebituraConfigError, match=pattern) as from_operator:
        DebituraListTasksOperator(task_id="list").execute(context())

    assert not ok and tested == str(from_hook.value) == str(from_operator.value)
    assert took < 1.0
    _no_part_of_the_key(tested, password)
    assert rel_sb.control("GET", "/counters").json().get("total", 0) == 0
    rows.append({"input": next(c[0] for c in CASES if c[1] == changes), "message": tested, "requests": 0})


@pytest.mark.parametrize(
    ("changes", "base_url"),
    [
        ({"host": "http://[::1]", "port": 8080}, "http://[::1]:8080"),
        ({"host": "[::1]", "port": 8443}, "https://[::1]:8443"),
        ({"host": "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080"),
        ({"host": "customer-api.debitura.com", "port": 0}, "https://customer-api.debitura.com"),
    ],
)
def test_odd_but_valid_base_urls_build_a_valid_url(rel_sb, monkeypatch, changes, base_url):
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", conn_json(rel_sb, **changes))
    assert DebituraHook().settings.base_url == base_url


def test_ipv6_loopback_with_a_port_reaches_the_sandbox(monkeypatch):
    """``http://[::1]`` plus the port field: a real request over IPv6 (skipped where the host has no IPv6)."""
    import socket

    from airflow_provider_debitura.sandbox import SandboxServer

    try:
        socket.socket(socket.AF_INET6).close()
        with SandboxServer(scenario="demo", api_key="k6-key-1234", host="::1") as sb:
            monkeypatch.setenv(
                "AIRFLOW_CONN_DEBITURA_DEFAULT",
                json.dumps(
                    {"conn_type": "debitura", "host": "http://[::1]", "port": sb.port, "password": "k6-key-1234"}
                ),
            )
            assert DebituraHook().get_me().id
    except (OSError, TypeError) as exc:
        pytest.skip(f"no IPv6 loopback sandbox here: {exc}")


@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        ({"max_attempts": "3"}, "max_attempts", 3),
        ({"max_attempts": 2.0}, "max_attempts", 2),
        ({"timeout": "2.5"}, "timeout", 2.5),
    ],
)
def test_numbers_given_as_text_still_work(rel_sb, monkeypatch, extra, field, value):
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", conn_json(rel_sb, extra=extra))
    assert getattr(DebituraHook().settings, field) == value
