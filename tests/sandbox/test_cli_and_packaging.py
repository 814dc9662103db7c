"""The CLI as users run it (a subprocess), and the package's import-time contract."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer, SandboxState, ScenarioError

ROOT = Path(__file__).resolve().parents[2]


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_debitura.sandbox", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Control plane:"):
            return proc, lines
    proc.kill()
    raise AssertionError(f"CLI did not start: {lines} {proc.stderr.read() if proc.stderr else ''}")


def test_cli_prints_url_and_conn_and_stops_on_sigterm() -> None:
    proc, lines = _start_cli("--scenario", "demo", "--api-key", "cli-key", "--rate-limit", "500")
    try:
        url_line = next(line for line in lines if line.startswith("DEBITURA_SANDBOX_URL="))
        url = url_line.split("=", 1)[1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert any("loopback only" in line for line in lines)
        assert any(line.startswith(f"Debitura sandbox listening on {url}") for line in lines)
        conn_line = next(line for line in lines if line.startswith("AIRFLOW_CONN_DEBITURA_DEFAULT="))
        quoted = conn_line.split("=", 1)[1]
        assert quoted.startswith("'") and quoted.endswith("'")
        conn = json.loads(quoted[1:-1])
        assert conn == {
            "conn_type": "debitura",
            "host": url,
            "password": "cli-key",
            "extra": {"user_email": "ops@example.com"},
        }
        r = httpx.get(f"{url}/tasks", headers={"XApiKey": "cli-key"})
        assert r.status_code == 200 and r.json()["page"]["totalResults"] == 6
        assert httpx.get(f"{url}/_sandbox/config").json()["rateLimitPerMinute"] == 500
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "stopped" in out
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/tasks")


def test_cli_sigint_and_non_loopback_warning() -> None:
    proc, lines = _start_cli("--host", "0.0.0.0", "--scenario", "empty", "--chat-solve-delay", "2")
    try:
        url = next(line for line in lines if line.startswith("DEBITURA_SANDBOX_URL=")).split("=", 1)[1]
        assert httpx.get(f"{url}/_sandbox/config").json()["chatSolveDelaySeconds"] == 2.0
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "WARNING" in err and "NOT loopback" in err


def test_cli_bad_scenario_exits_nonzero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_debitura.sandbox", "--scenario", "nope-not-here"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "unknown scenario" in proc.stderr


def test_import_without_extras_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "try:\n"
        "    import airflow_provider_debitura.sandbox\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert "pip install 'airflow-provider-debitura[sandbox]'" in out.stdout


def test_import_starts_nothing() -> None:
    code = (
        "import threading, airflow_provider_debitura.sandbox as s\n"
        "print(len(threading.enumerate()), s.SandboxServer.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.stdout.split() == ["1", "SandboxServer"], out.stderr


def test_server_lifecycle_leaks_nothing() -> None:
    before = set(threading.enumerate())  # another test's thread on this worker may end meanwhile: compare sets
    server = SandboxServer(scenario="empty", port=0)
    with server as sb:
        assert sb.url.startswith("http://127.0.0.1:") and not sb.url.endswith("/")
        port = sb.port
        assert sb.control("GET", "health").status_code == 200
        assert sb.control("GET", "/_sandbox/health").status_code == 200
    assert not set(threading.enumerate()) - before  # no thread of the server outlives it
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/me")
    # The port is free again: a new server can bind it.
    with SandboxServer(scenario="empty", port=port) as again:
        assert again.port == port


def test_scenario_as_dict_and_path(tmp_path: Path) -> None:
    scenario = {"users": [{"email": "a@example.com"}], "cases": [{"creditorReference": "C-1"}]}
    with SandboxServer(scenario=scenario, api_key="k") as sb:
        assert json.loads(sb.conn_json())["extra"] == {"user_email": "a@example.com"}
        assert sb.state.case_id("C-1")
    path = tmp_path / "s.json"
    path.write_text(json.dumps(scenario))
    assert SandboxState(str(path)).scenario_name == "s"
    with pytest.raises(ScenarioError):
        SandboxServer(scenario={"tasks": [{"type": "ReplyToChat"}]})


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def test_large_scenario_scales_linearly_and_is_deterministic() -> None:
    """No wall-clock bound (the machine is shared): CPU-time ratios between 5,000 and 20,000 tasks catch
    an O(n^2) load or an O(n)-per-page listing, whatever the load average."""
    loaded: dict[int, SandboxState] = {}
    small_load = _cpu(lambda: loaded.setdefault(5000, SandboxState("large:5000")))
    big_load = _cpu(lambda: loaded.setdefault(20000, SandboxState("large:20000")))
    assert big_load < 8 * small_load, (small_load, big_load)  # linear: ~4x; quadratic: ~16x
    small, big = loaded[5000], loaded[20000]
    assert len(big.cases) == 4000 and big.tasks_page("Open", [], 1, 100)["page"]["totalPages"] == 200
    per_page_small = _cpu(lambda: [small.tasks_page("Open", [], p, 100) for p in range(1, 51)]) / 50
    per_page_big = _cpu(lambda: [big.tasks_page("Open", [], p, 100) for p in range(1, 201)]) / 200
    assert per_page_big < 3 * per_page_small + 0.0005, (per_page_small, per_page_big)  # a page costs its size
    first = small.tasks_page("Open", [], 1, 100)
    again = SandboxState("large:5000").tasks_page("Open", [], 1, 100)
    assert [t["id"] for t in again["tasks"]] == [t["id"] for t in first["tasks"]]
    account = [t for t in small.list_tasks("Open") if t["caseId"] is None]
    assert 0 < len(account) < 500 and {t["type"] for t in account} == {"AssignBankAccount", "SignContract"}


def test_bundled_demo_contract() -> None:
    """Other engineers' tests and the README demo rely on exactly this shape."""
    state = SandboxState("demo")
    tasks = state.list_tasks("Open")
    by_case: dict[str | None, list[str]] = {}
    for t in tasks:
        by_case.setdefault(t["caseReference"], []).append(t["type"])
    assert by_case == {
        None: ["AssignBankAccount"],
        "INV-1002": ["ReplyToChat"],
        "INV-1003": ["ClientInputRequired", "MoreInfoNeeded"],
        "INV-1004": ["ReviewPartner", "CaseValidationNeedsInfo"],
    }
    assert state.first_user_email == "ops@example.com"
    assert {c.creditor_reference for c in state.cases.values()} == {f"INV-100{i}" for i in range(1, 6)}
    state.advance_clock(60)  # not cleared by time alone: only 5 s after a gate first checks it
    assert [t["type"] for t in state.list_tasks("Open") if t["caseId"] is None] == ["AssignBankAccount"]
    state.tasks_page("Open", ["SignContract", "AssignBankAccount"], 1, 100)
    state.advance_clock(5)
    assert [t["type"] for t in state.list_tasks("Open") if t["caseId"] is None] == []
