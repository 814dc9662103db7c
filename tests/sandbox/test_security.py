"""The control plane has no auth, so it must never touch the host: no file paths, no echo of file contents,
no hint whether a path exists. Files load only from the command line and the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from airflow_provider_debitura.sandbox import SandboxServer, SandboxState, cli
from airflow_provider_debitura.sandbox.cli import non_loopback_warning

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def host_files(tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "secrets.json"
    secret.write_text(json.dumps({"api_token": "t0p", "db_password": "s3cr3t"}))
    scenario_shaped = tmp_path / "world.json"
    scenario_shaped.write_text(json.dumps({"tasks": [{"type": "SignContract"}]}))
    not_json = tmp_path / "notes.txt"
    not_json.write_text("hello")
    return {
        "secret": str(secret),
        "scenario": str(scenario_shaped),
        "not_json": str(not_json),
        "missing": str(tmp_path / "nope.json"),
        "relative": "../" * 12 + str(secret).lstrip("/"),
        "home": "~/.bashrc",
    }


def test_control_plane_reads_no_host_file(sb: SandboxServer, api: httpx.Client, host_files: dict[str, str]) -> None:
    before = sb.control("GET", "/state").json()["tasks"]
    answers = {}
    for what, path in host_files.items():
        for op, body in (("/scenario", {"name": path}), ("/reset", {"scenario": path})):
            r = sb.control("POST", op, json=body)
            assert r.status_code == 400, (what, op, r.text)
            answers[(what, op)] = r.json()["message"]
    # The same answer whatever the path (existing, missing, not JSON, a secret, a scenario), so it tells
    # nothing about the host; it names the way that does load files.
    assert len(set(answers.values())) == 1, answers
    message = next(iter(answers.values()))
    assert "--scenario PATH" in message and "demo" in message
    for needle in ("api_token", "db_password", "not valid JSON", "no such file", "nope.json", "secrets"):
        assert needle not in message
    assert sb.state.scenario_name == "demo" and sb.control("GET", "/state").json()["tasks"] == before
    assert len(api.get("/tasks").json()["tasks"]) == 6


def test_control_plane_still_takes_bundled_names_and_objects(sb: SandboxServer) -> None:
    for name in ("empty", "demo-ui", "large:7", "demo"):
        assert sb.control("POST", "/scenario", json={"name": name}).json()["scenario"] == name
        assert sb.control("POST", "/reset", json={"scenario": name}).json()["scenario"] == name
    assert sb.control("POST", "/reset", json={"scenario": {"name": "mine"}}).json()["scenario"] == "mine"
    for bad in ({"name": 3}, {"name": ["demo"]}):
        assert sb.control("POST", "/scenario", json=bad).status_code == 400


def test_python_api_and_cli_still_read_files(host_files: dict[str, str]) -> None:
    assert SandboxState(host_files["scenario"]).scenario_name == "world"
    assert SandboxState(Path(host_files["scenario"])).scenario_name == "world"


def test_empty_api_key_is_rejected_on_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_debitura.sandbox", "--api-key", "", "--scenario", "empty"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--api-key must not be empty" in proc.stderr and "Debitura sandbox listening" not in proc.stdout


@pytest.mark.parametrize("key", ["   ", "\t"])
def test_blank_api_key_is_rejected_before_anything_starts(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--api-key", key, "--scenario", "empty"]) == 2
    out, err = capsys.readouterr()
    assert "--api-key must not be empty or blank" in err and out == ""


@pytest.mark.parametrize("key", ["", " "])
def test_empty_api_key_is_rejected_in_python(key: str) -> None:
    with pytest.raises(ValueError, match="api_key must be a non-empty string"):
        SandboxServer(scenario="empty", api_key=key)


def test_non_loopback_warning_says_what_the_control_plane_can_do() -> None:
    text = non_loopback_warning("0.0.0.0")
    for power in ("reset", "add, solve and delete tasks", "inject faults", "request log", "NO auth", "clock"):
        assert power in text, power
    assert "reads no files" in text
