"""``debitura-sandbox`` / ``python -m airflow_provider_debitura.sandbox``: run the sandbox."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_debitura.sandbox.config import ENCODED_SLASH_MODES
from airflow_provider_debitura.sandbox.scenarios import BUNDLED_SCENARIOS, ScenarioError
from airflow_provider_debitura.sandbox.server import SandboxServer, is_loopback

#: What anyone who can reach a non-loopback sandbox can do, said in its start-up warning.
CONTROL_PLANE_POWERS = (
    "reset or replace the whole world (bundled scenarios or any scenario object it is sent)",
    "add, solve and delete tasks and cases, post partner chat messages, schedule events",
    "inject faults (errors, latency, dropped connections) and change rate limits and settings",
    "read the request log and counters (methods, paths, query strings; never headers or keys)",
    "move the sandbox clock",
)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="debitura-sandbox",
        description="Local Debitura Customer API sandbox (task queue) for demos and tests. See docs/sandbox.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: 0 = pick a free port)")
    parser.add_argument(
        "--scenario",
        default="demo",
        help=f"bundled name ({', '.join(BUNDLED_SCENARIOS)}, large:N) or path to a JSON file (default: demo)",
    )
    parser.add_argument("--api-key", default="sandbox-key", help="API key clients must send as XApiKey")
    parser.add_argument(
        "--chat-solve-delay", type=float, default=None, metavar="SECONDS", help="delay before a chat reply solves tasks"
    )
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N", help="requests per minute per API key")
    parser.add_argument(
        "--encoded-slash",
        choices=ENCODED_SLASH_MODES,
        default="decode",
        help="%%2F in a reference lookup: decode (found) or keep (as ASP.NET Core: not found). Default: decode",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    return parser


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _check_args(args: argparse.Namespace) -> str | None:
    if args.rate_limit is not None and args.rate_limit < 1:
        return "--rate-limit must be >= 1"
    if not args.api_key.strip():
        return (
            "--api-key must not be empty or blank: no client could authenticate. "
            "Pass a key, or leave the flag out (default: sandbox-key)"
        )
    return None


def non_loopback_warning(host: str) -> str:
    """The banner printed when the sandbox binds a non-loopback interface.

    :param host: the interface bound.
    """
    banner = "!" * 78
    powers = "\n".join(f"  - {p}" for p in CONTROL_PLANE_POWERS)
    return (
        f"{banner}\nWARNING: bound to {host}, NOT loopback. The sandbox has no real security: anyone who can\n"
        f"reach this port can use the API with the key above, and its control plane (/_sandbox/) has NO auth.\n"
        f"Through it they can:\n{powers}\n"
        f"It reads no files on this host (scenario files load only from --scenario). Bind 127.0.0.1 unless\n"
        f"you need remote access, and then only on a trusted network.\n{banner}"
    )


def _announce(server: SandboxServer, host: str) -> None:
    print(f"Debitura sandbox listening on {server.url} (scenario: {server.state.scenario_name})", flush=True)
    if is_loopback(host):
        print(f"Bound to loopback only ({host}): not reachable from other machines.", flush=True)
    else:
        print(non_loopback_warning(host), file=sys.stderr, flush=True)
    print(f"DEBITURA_SANDBOX_URL={server.url}", flush=True)
    print(f"AIRFLOW_CONN_DEBITURA_DEFAULT={_shell_quote(server.conn_json())}", flush=True)
    print(f"Control plane: {server.url}/_sandbox/ (see docs/sandbox.md). Press Ctrl-C to stop.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; the exit status (0 ok, 1 cannot bind, 2 bad arguments).

    :param argv: the arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        server = SandboxServer(
            scenario=args.scenario,  # the command line may name a file
            api_key=args.api_key,
            host=args.host,
            port=args.port,
            chat_solve_delay_seconds=args.chat_solve_delay,
            rate_limit_per_minute=args.rate_limit,
            encoded_slash=args.encoded_slash,
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
        _announce(server, args.host)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("Debitura sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
