"""``test_connection()``: one ``GET /me`` without retries, answered within :data:`TEST_DEADLINE` seconds,
and a message that says what to fix (scheme, host, port, DNS, TLS, key, Base URL)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.settings import ConnectionSettings, is_transient_conn_id

TEST_TIMEOUT = 2.0
"""Seconds per HTTP phase (connect, read) of the test request."""

TEST_DEADLINE = 2.8
"""The test answers within this many seconds, whatever the network does (e.g. a slow DNS resolver)."""


def describe_target(settings: ConnectionSettings) -> str:
    """ "Debitura at <base URL>", plus the connection id unless it is the UI's throwaway test id.

    :param settings: the validated settings.
    """
    target = f"Debitura at {settings.base_url}"
    if not is_transient_conn_id(settings.conn_id):
        target += f" (connection {settings.conn_id!r})"
    return target


def check_connection(settings: ConnectionSettings, make_client: Callable[[], httpx.Client]) -> tuple[bool, str]:
    """One ``GET /me``, no retries; ``(ok, message)`` within :data:`TEST_DEADLINE` seconds.

    :param settings: the validated settings.
    :param make_client: builds the client to use (the hook's settings, :data:`TEST_TIMEOUT`).
    """
    outcome: list[tuple[bool, str]] = []

    def attempt() -> None:
        outcome.append(_probe(settings, make_client))

    worker = threading.Thread(target=attempt, name="debitura-test-connection", daemon=True)
    worker.start()
    worker.join(TEST_DEADLINE)
    if outcome:
        return outcome[0]
    host = urlsplit(settings.base_url).hostname
    return False, (
        f"{describe_target(settings)}: no answer within {TEST_DEADLINE:g} s. The host name {host!r} may not "
        "resolve (slow or unreachable DNS) or the host drops connections: check the Base URL and that this "
        "machine can reach it."
    )


def _probe(settings: ConnectionSettings, make_client: Callable[[], httpx.Client]) -> tuple[bool, str]:
    call_failed: tuple[bool, str] | None = None
    try:
        with make_client() as client:
            response = client.get("/me")
    except httpx.TransportError as exc:
        call_failed = (False, f"{describe_target(settings)}: {transport_hint(exc, settings)}")
    except Exception as exc:  # a test must answer, whatever went wrong
        call_failed = (False, f"{describe_target(settings)}: {type(exc).__name__}: {exc}")
    if call_failed is not None:
        return call_failed
    return _judge(response, settings)


def _judge(response: httpx.Response, settings: ConnectionSettings) -> tuple[bool, str]:
    target = describe_target(settings)
    status = response.status_code
    if status == 401:
        return False, (
            f"{target}: the API key was rejected (HTTP 401). Check the key in the password field and the "
            f"auth_type extra ({settings.auth_type!r}: 'api_key' sends it as XApiKey, 'bearer' as "
            "Authorization: Bearer)."
        )
    if status == 403:
        return False, f"{target}: the key is valid but may not call GET /me (HTTP 403). Use a creditor API key."
    if status == 404:
        return False, (
            f"{target}: GET /me answered HTTP 404, so this server is not the Debitura Customer API. Check the "
            "Base URL: scheme and host only, e.g. https://customer-api.debitura.com."
        )
    try:
        me = endpoints.parse_response(endpoints.get_me(), response, settings.conn_id)
    except Exception as exc:
        return False, f"{target}: {exc}"
    where = (
        settings.base_url
        if is_transient_conn_id(settings.conn_id)
        else f"{settings.base_url}, connection {settings.conn_id!r}"
    )
    return True, f"Connected to Debitura as {me.company_name or me.id or 'the API key owner'} ({where})."


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def transport_hint(exc: httpx.TransportError, settings: ConnectionSettings) -> str:
    """What a transport failure of the test request means, in words that say what to fix.

    :param exc: the failure.
    :param settings: the settings the request was made with.
    """
    parts = urlsplit(settings.base_url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text or "certificate" in text:
        if settings.scheme_assumed:
            return (
                f"the Base URL has no scheme, so https:// was assumed, but the server at {where} does not speak "
                "TLS: add http:// or https:// to the Base URL (a local sandbox is http://127.0.0.1:<port>)."
            )
        if "wrong_version_number" in text or "wrong version number" in text:
            return (
                f"the server at {where} does not speak TLS: the Base URL says https://; use http:// if it is a "
                "plain-HTTP server (e.g. a local sandbox)."
            )
        return f"TLS failed with {where}: {exc}. The server's certificate is not trusted by this machine."
    if any(isinstance(e, socket.gaierror) for e in chain) or "name or service not known" in text or "nodename" in text:
        return f"the host name {parts.hostname!r} cannot be resolved (DNS). Check the spelling of the Base URL."
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return f"connection refused at {where}: nothing listens there. Is the server running, and is the port right?"
    if isinstance(exc, httpx.TimeoutException):
        phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
        return (
            f"no {phase} within {TEST_TIMEOUT:g} s from {where}: the host is unreachable from here "
            "(address, firewall, VPN?)."
        )
    if "unreachable" in text:
        return f"the network cannot reach {where} (no route). Check the address and this machine's network."
    return f"{type(exc).__name__}: {exc}"
