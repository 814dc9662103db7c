"""``debitura-sandbox`` / ``python -m airflow_provider_debitura.sandbox``: run the sandbox."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_debitura.sandbox.clock import ClockError, check_speed
from airflow_provider_debitura.sandbox.config import ENCODED_SLASH_MODES
from airflow_provider_debitura.sandbox.ratelimit import DAY_RESETS
from airflow_provider_debitura.sandbox.scenarios import BUNDLED_SCENARIOS, ScenarioError
from airflow_provider_debitura.sandbox.server import SandboxServer, is_loopback

#: Debitura's documented limits per API key (``--api-limits``): per sliding minute, clock hour, day.
API_LIMITS = {"rateLimitPerMinute": 2000, "rateLimitPerHour": 20000, "rateLimitPerDay": 100000}

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
    _add_rate_limit_args(parser)
    parser.add_argument(
        "--encoded-slash",
        choices=ENCODED_SLASH_MODES,
        default="decode",
        help="%%2F in a reference lookup: decode (found) or keep (as ASP.NET Core: not found). Default: decode",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    return parser


def _add_rate_limit_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rate limits and clock (see docs/sandbox-rate-limits.md)")
    group.add_argument(
        "--rate-limit", type=int, default=None, metavar="N", help="requests per sliding minute per API key"
    )
    group.add_argument("--rate-limit-hour", type=int, default=None, metavar="N", help="requests per clock hour per key")
    group.add_argument("--rate-limit-day", type=int, default=None, metavar="N", help="requests per day per API key")
    group.add_argument(
        "--day-reset",
        choices=DAY_RESETS,
        default=None,
        help="when the day window resets: midnight-utc (default), rolling (24 h after its first request), sliding",
    )
    group.add_argument(
        "--api-limits",
        action="store_true",
        help="enforce Debitura's documented limits (2000/min, 20000/hour, 100000/day); --rate-limit* override one",
    )
    group.add_argument(
        "--clock-speed",
        type=float,
        default=None,
        metavar="FACTOR",
        help="sandbox time per real second (default 1; 1440 runs a day in a minute; 0 freezes it)",
    )


def _rate_settings(args: argparse.Namespace) -> dict[str, object]:
    """The rate-limit settings the flags ask for (``PUT /_sandbox/config`` names)."""
    settings: dict[str, object] = dict(API_LIMITS) if args.api_limits else {}
    flags = {
        "rateLimitPerMinute": args.rate_limit,
        "rateLimitPerHour": args.rate_limit_hour,
        "rateLimitPerDay": args.rate_limit_day,
        "rateLimitDayReset": args.day_reset,
    }
    settings.update({key: value for key, value in flags.items() if value is not None})
    return settings


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _check_args(args: argparse.Namespace) -> str | None:
    for flag in ("rate_limit", "rate_limit_hour", "rate_limit_day"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            return f"--{flag.replace('_', '-')} must be >= 1 (leave it out for no limit); got {value}"
    if args.clock_speed is not None:
        try:
            check_speed(args.clock_speed, "--clock-speed")
        except ClockError as exc:
            return str(exc)
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
    config, speed = server.state.config(), server.state.clock.speed
    windows = [f"{config[k]}/{w}" for k, w in (("rateLimitPerMinute", "min"), ("rateLimitPerHour", "hour"),
                                               ("rateLimitPerDay", "day")) if config[k] is not None]  # fmt: skip
    if windows:
        print(f"Rate limits per API key: {', '.join(windows)} (day resets: {config['rateLimitDayReset']})", flush=True)
    if speed != 1:
        print(f"Sandbox clock runs at {speed:g}x real time (GET /_sandbox/clock).", flush=True)
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
    rate_settings = _rate_settings(args)
    try:
        server = SandboxServer(
            scenario=args.scenario,  # the command line may name a file
            api_key=args.api_key,
            host=args.host,
            port=args.port,
            chat_solve_delay_seconds=args.chat_solve_delay,
            encoded_slash=args.encoded_slash,
            log_level=args.log_level,
        )
    except ScenarioError as exc:
        print(f"error: bad scenario: {exc}", file=sys.stderr)
        return 2
    server.state.set_default_config(rate_settings)
    if args.clock_speed is not None:
        server.state.clock.set_default_speed(args.clock_speed)
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
