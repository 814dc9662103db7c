"""The sandbox in a child process for the benchmarks (so its work never counts as the measured side's)."""

from __future__ import annotations

import subprocess
import sys
import time


def start_sandbox(scenario: str, api_key: str, timeout: float = 120) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``debitura-sandbox`` on a free loopback port; returns the process, its URL and the connection JSON.

    :param scenario: the scenario to load (e.g. ``large:5000``).
    :param api_key: the key clients must send.
    :param timeout: seconds to wait for the sandbox to say where it listens.
    """
    command = [sys.executable, "-m", "airflow_provider_debitura.sandbox", "--scenario", scenario, "--api-key", api_key]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = conn = None
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline and (url is None or conn is None):
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("DEBITURA_SANDBOX_URL="):
            url = line.split("=", 1)[1].strip()
        elif line.startswith("AIRFLOW_CONN_DEBITURA_DEFAULT="):
            conn = line.split("=", 1)[1].strip().strip("'")
    if url is None or conn is None:
        proc.kill()
        raise RuntimeError("sandbox did not start")
    return proc, url, conn


def stop_sandbox(proc: subprocess.Popen[str]) -> None:
    """Stop the sandbox child: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
