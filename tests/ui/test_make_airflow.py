"""``make airflow`` (scripts/airflow_ui.py) without starting Airflow: its signal handling and port checks.

The full start-and-stop (sandbox + standalone, every process gone, ports free) runs in
tests/ui/test_airflow_ui.py's module fixture, which uses the same ``ui_demo`` and ``StandaloneAirflow.stop``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "airflow_ui.py"


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location("airflow_ui_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def deliver(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode boundary


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_stops_and_later_ones_cannot_cut_the_cleanup_short(script, restore_signals, capsys, first):
    script.install_stop_handlers()
    with pytest.raises(KeyboardInterrupt):
        deliver(first)
    for sig in (signal.SIGINT, signal.SIGTERM):  # while the ``with`` blocks stop Airflow and the sandbox
        deliver(sig)
    out = capsys.readouterr().out
    assert f"{first.name}: stopping Airflow and the sandbox" in out
    assert out.count("Still stopping") == 2


@pytest.mark.parametrize("flag", ["--port", "--sandbox-port"])
def test_a_port_in_use_is_refused_before_anything_starts(script, capsys, tmp_path, flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        other = "--sandbox-port" if flag == "--port" else "--port"
        assert script.main([flag, str(port), other, "0", "--home", str(tmp_path / "home")]) == 2
    assert f"Port {port} on 127.0.0.1 is in use" in capsys.readouterr().out
    assert not (tmp_path / "home").exists()


def test_the_banner_walks_a_new_user_to_required_actions(script, capsys):
    """Issue 21 item 9: the banner names the approval example and where its requests appear."""
    from types import SimpleNamespace

    airflow = SimpleNamespace(url="http://127.0.0.1:8080", username="admin", password="pw", log_path="/tmp/x.log")
    demo = SimpleNamespace(airflow=airflow, sandbox=SimpleNamespace(url="http://127.0.0.1:8765"))
    script.banner(demo, None, time.monotonic())
    out = capsys.readouterr().out
    assert "example_debitura_triage_with_approval" in out and "Required Actions" in out
    assert "no schedule" in out
