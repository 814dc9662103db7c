"""Helpers for the reliability suite: one sandbox per session, small worlds, an oracle, fast backoff.

The shared fixtures (``sandbox``, ``debitura_conn``, ``airflow_env``) live in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.reliability import REL_KEY

from airflow_provider_debitura.hooks import retry as retry_module

MATRIX_KEY = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def rel_sb() -> Iterator[Any]:
    """One sandbox for the whole reliability session; tests load their own world into it."""
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="empty", api_key=REL_KEY) as server:
        yield server


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink only the exponential backoff between retries (0.5 s -> 0.02 s); a server's retryAfter is
    still honoured as sent. Keeps the matrix fast without changing which errors are retried."""
    real = retry_module.wait_retry_after_or_backoff
    monkeypatch.setattr(retry_module, "wait_retry_after_or_backoff", lambda: real(initial=0.02, maximum=0.2))


# -- the matrix's record, written at the end of the session --


@pytest.fixture(scope="session")
def matrix_record(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    record: dict[str, Any] = {"cells": {}, "started": time.time()}
    request.config.stash[MATRIX_KEY] = record
    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    record = session.config.stash.get(MATRIX_KEY, None)
    if not record or not record["cells"]:
        return
    record["seconds"] = round(time.time() - record["started"], 1)
    out = os.environ.get("DEBITURA_MATRIX_JSON")
    path = Path(out) if out else Path(session.config._tmp_path_factory.getbasetemp()) / "fault_matrix.json"  # type: ignore[attr-defined]
    path.write_text(json.dumps(record, indent=1))
    record["path"] = str(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    record = config.stash.get(MATRIX_KEY, None)
    if not record or not record["cells"]:
        return
    cells = record["cells"].values()
    ran = [c for c in cells if c["status"] != "n/a"]
    bad = [c for c in ran if c["status"] != "pass"]
    terminalreporter.write_line(
        f"fault matrix: {len(ran)} cells run, {len(ran) - len(bad)} as expected, {len(bad)} not, "
        f"{len(record['cells']) - len(ran)} N/A; JSON: {record.get('path')} "
        "(render: python tests/reliability/render_matrix.py)"
    )
