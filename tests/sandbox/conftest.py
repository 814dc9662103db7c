"""Fixtures for the sandbox's own tests.

One real server per session, reset to the demo scenario before each test (clears faults, config
overrides, log, counters and restarts the clock): the same isolation as a fresh server, faster.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer


@pytest.fixture(scope="session")
def _server() -> Iterator[SandboxServer]:
    with SandboxServer(scenario="demo", api_key="sandbox-test-key") as server:
        yield server


@pytest.fixture
def sb(_server: SandboxServer) -> SandboxServer:
    _server.reset("demo")
    return _server


@pytest.fixture(scope="session")
def _clients(_server: SandboxServer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    # Shared: building an httpx.Client (its SSL context) costs more than most of these tests.
    with _server.client(timeout=10.0) as api, httpx.Client(base_url=_server.url, timeout=10.0) as anon:
        yield api, anon


@pytest.fixture
def api(sb: SandboxServer, _clients: tuple[httpx.Client, httpx.Client]) -> httpx.Client:
    return _clients[0]


@pytest.fixture
def anon(sb: SandboxServer, _clients: tuple[httpx.Client, httpx.Client]) -> httpx.Client:
    return _clients[1]
