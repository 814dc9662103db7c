"""``make airflow``: the example DAGs in a real Airflow UI, against the Debitura sandbox, in one command.

Starts the sandbox on a fixed loopback port and ``airflow standalone`` with a throwaway SQLite home
(``.airflow-ui/``), the example DAGs as its DAGs folder, the ``debitura_default`` connection preset to the
sandbox and the connection Test button enabled; prints the URL and the login; stops every process it started
on Ctrl-C or SIGTERM. The sandbox runs the ``demo-ui`` scenario: the case-gate example waits on an
account-level blocker that clears 5 s after the gate first checks it, and is raised again for a run 20 s or
more later.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ui_demo import GATE_CASE, GATE_DAG, TRIAGE_DAG, UiDemo, ui_demo  # noqa: E402

APPROVAL_DAG = "example_debitura_triage_with_approval"
from helpers.waiting import port_is_free  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI port on 127.0.0.1 (default 8080)")
    parser.add_argument("--sandbox-port", type=int, default=8765, help="sandbox port on 127.0.0.1 (default 8765)")
    parser.add_argument("--home", type=Path, default=ROOT / ".airflow-ui", help="AIRFLOW_HOME (default .airflow-ui/)")
    return parser.parse_args(argv)


def say(text: str = "") -> None:
    print(text, flush=True)


def banner(demo: UiDemo, args: argparse.Namespace, started: float) -> None:
    airflow, sandbox = demo.airflow, demo.sandbox
    say()
    say("=" * 78)
    say(f"Airflow is up after {time.monotonic() - started:.0f} s:  {airflow.url}")
    say(f"  login: {airflow.username} / {airflow.password}")
    say(f"Debitura sandbox: {sandbox.url}  (connection 'debitura_default'; control plane {sandbox.url}/_sandbox/)")
    say()
    say(f"* {GATE_DAG}: trigger it ({GATE_CASE}). Its gate is 'deferred' for a few seconds")
    say("  while an account-level AssignBankAccount blocks every case: the task's log lists the blocker and")
    say("  its link; the task's Details -> Extra Links has 'Resolve in Debitura'. A run 20 s or more later")
    say("  waits again on a fresh blocker (the sandbox's demo-ui scenario).")
    say(f"* {TRIAGE_DAG}: trigger it to list, auto-reply and route the demo queue.")
    say("  Triggering unpauses it, so its schedule starts a run too: the first run answers the chat tasks.")
    say(f"* {APPROVAL_DAG}: trigger it (no schedule: that one run starts at once), then open")
    say("  Browse -> Required Actions: approve (or edit) the chat replies, and answer Done / Can't do on the")
    say("  tasks only a person can resolve. 'Done' on a task still open in Debitura asks again; solve it in")
    say(f"  the sandbox ({sandbox.url}/_sandbox/) and the request closes by itself.")
    say("* Admin -> Connections -> debitura_default -> Test: checks the connection (GET /me).")
    say(f"Logs: {airflow.log_path}.  Press Ctrl-C to stop everything.")
    say("=" * 78)


def install_stop_handlers() -> None:
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt once, so the ``with`` blocks stop every process they
    started; signals that arrive while that cleanup runs are ignored, so a second Ctrl-C cannot cut it short."""

    def stop(signum: int, frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: say("Still stopping ..."))
        say(f"{signal.Signals(signum).name}: stopping Airflow and the sandbox ...")
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name, port in (("--port", args.port), ("--sandbox-port", args.sandbox_port)):
        if not port_is_free(port):
            say(f"Port {port} on 127.0.0.1 is in use: pass another one, e.g. make airflow AIRFLOW_ARGS='{name} 0'.")
            return 2
    install_stop_handlers()
    args.home.mkdir(parents=True, exist_ok=True)
    (args.home / ".gitignore").write_text("*\n")  # a throwaway home: git ignores it without a root entry
    started = time.monotonic()
    say(f"Starting the Debitura sandbox on port {args.sandbox_port} and Airflow standalone on port {args.port}")
    say(f"(AIRFLOW_HOME {args.home}; the first start takes a minute or two) ...")
    try:
        with ui_demo(args.home, airflow_port=args.port, sandbox_port=args.sandbox_port) as demo:
            banner(demo, args, started)
            while demo.airflow.process is not None and demo.airflow.process.poll() is None:
                time.sleep(1.0)
            say(f"airflow standalone exited by itself:\n{demo.airflow.log_tail()}")
            return 1
    except KeyboardInterrupt:
        say("Stopped: every process this command started has exited.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
