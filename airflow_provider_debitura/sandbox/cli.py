"""``debitura-sandbox`` / ``python -m airflow_provider_debitura.sandbox``: run the sandbox."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_debitura.sandbox.scenarios import ScenarioError
from airflow_provider_debitura.sandbox.server import SandboxServer, is_loopback


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="debitura-sandbox",
        description="Local Debitura Customer API sandbox (task queue) for demos and tests. See docs/sandbox.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: 0 = pick a free port)")
    parser.add_argument(
        "--scenario", default="demo", help="bundled name (demo, empty, large:N) or path to a JSON file (default: demo)"
    )
    parser.add_argument("--api-key", default="sandbox-key", help="API key clients must send as XApiKey")
    parser.add_argument(
        "--chat-solve-delay", type=float, default=None, metavar="SECONDS", help="delay before a chat reply solves tasks"
    )
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N", help="requests per minute per API key")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    return parser


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rate_limit is not None and args.rate_limit < 1:
        print("error: --rate-limit must be >= 1", file=sys.stderr)
        return 2
    try:
        server = SandboxServer(
            scenario=args.scenario,
            api_key=args.api_key,
            host=args.host,
            port=args.port,
            chat_solve_delay_seconds=args.chat_solve_delay,
            rate_limit_per_minute=args.rate_limit,
            log_level=args.log_level,
        )
    except ScenarioError as exc:
        print(f"error: bad scenario: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"Debitura sandbox listening on {server.url} (scenario: {server.state.scenario_name})", flush=True)
        if is_loopback(args.host):
            print(f"Bound to loopback only ({args.host}): not reachable from other machines.", flush=True)
        else:
            banner = "!" * 78
            print(
                f"{banner}\nWARNING: bound to {args.host}, NOT loopback. The sandbox has no real security and its\n"
                f"control plane (/_sandbox/) is unauthenticated. Anyone who can reach this port can use it.\n{banner}",
                file=sys.stderr,
                flush=True,
            )
        print(f"DEBITURA_SANDBOX_URL={server.url}", flush=True)
        print(f"AIRFLOW_CONN_DEBITURA_DEFAULT={_shell_quote(server.conn_json())}", flush=True)
        print(f"Control plane: {server.url}/_sandbox/ (see docs/sandbox.md). Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("Debitura sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
