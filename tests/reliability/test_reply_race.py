"""Two reply runs at once (issue 16 item 1): with starts >= 0.2 s apart, no case gets two messages.

Real HTTP: two operators in two threads against the sandbox with 100 ms latency on every request.
On main every case of these gaps got two messages (the race window was the whole read phase); the
full before/after table is rendered by ``helpers/reply_race.py`` into docs/reliability.md.
"""

from __future__ import annotations

import pytest
from helpers.reply_race import KEY, trial

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def race_sb(monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="empty", api_key=KEY) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sb.conn_json())
        yield sb


@pytest.mark.parametrize("gap", [0.2, 0.5, 1.0])
def test_staggered_concurrent_runs_post_once_per_case(race_sb, gap: float) -> None:
    result = trial(race_sb, gap, latency_ms=100)
    assert result.errors == []
    assert result.duplicates == 0, result
    assert result.lost == 0, result
