"""In-process runner: uvicorn on a background thread, like moto's server mode."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from airflow_provider_debitura.sandbox.app import create_app
from airflow_provider_debitura.sandbox.state import SandboxState


class _Server(uvicorn.Server):
    """uvicorn's server with a wakeable main loop, so ``stop()`` doesn't wait out a 0.1 s tick."""

    wake: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=0.1)

    def request_exit(self) -> None:
        self.should_exit = True
        loop, wake = self.loop, self.wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(wake.set)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address.

    :param host: a host name or IP address (brackets allowed).
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SandboxServer:
    """A real HTTP server speaking Debitura's Customer API, backed by :class:`SandboxState`.

    Use as a context manager (or ``start()``/``stop()``). ``port=0`` lets the OS pick a free
    port; the bound port is known as soon as ``start()`` returns.

    :param scenario: a bundled name (``demo``, ``demo-ui``, ``empty``, ``large:N``), a scenario dict,
        or a file path (a :class:`~pathlib.Path`, or a string that names no bundled scenario).
    :param api_key: the key clients must send (non-empty).
    :param host: interface to bind (loopback by default).
    :param port: port to bind; 0 picks a free one.
    :param chat_solve_delay_seconds: delay before a creditor message solves tasks.
    :param rate_limit_per_minute: requests per minute per key; None: off.
    :param retry_after_header: send ``Retry-After`` with 429s.
    :param encoded_slash: ``"decode"`` (default) or ``"keep"``: how ``%2F`` in a reference lookup is read.
    :param log_level: uvicorn log level.
    :param startup_timeout: seconds to wait for the server to accept connections.
    """

    def __init__(
        self,
        scenario: str | Path | dict[str, Any] | None = "demo",
        api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chat_solve_delay_seconds: float | None = None,
        rate_limit_per_minute: int | None = None,
        retry_after_header: bool = False,
        encoded_slash: str = "decode",
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self.state = SandboxState(
            scenario,
            api_key=api_key,
            chat_solve_delay_seconds=chat_solve_delay_seconds,
            rate_limit_per_minute=rate_limit_per_minute,
            retry_after_header=retry_after_header,
            encoded_slash=encoded_slash,
        )
        self.app = create_app(self.state)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._client: httpx.Client | None = None
        self._port: int | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def _bind(self) -> socket.socket:
        host = self.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # says TCP, and without it every JSON response stalls ~40 ms on Nagle + delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, self._requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def start(self) -> SandboxServer:
        """Bind and serve on a background thread; returns once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("SandboxServer already started")
        # Bind ourselves so the real port is known before uvicorn runs, even for port=0.
        self._sock = self._bind()
        self._port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            http="h11",  # the drop faults rely on h11's per-request cycle; also always installed
            loop="asyncio",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(target=self._run, name=f"debitura-sandbox-{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"sandbox server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"sandbox server did not start within {self._startup_timeout}s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def stop(self) -> None:
        """Stop serving and release the port and thread; safe to call twice."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.request_exit()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._thread = None
        self._server = None
        self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ conveniences

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("SandboxServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash; wildcard binds are reported as loopback."""
        host = self.host.strip("[]")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def conn_dict(self) -> dict[str, Any]:
        """An Airflow connection (as a dict) for this sandbox."""
        extra: dict[str, Any] = {}
        email = self.state.first_user_email
        if email:
            extra["user_email"] = email
        return {"conn_type": "debitura", "host": self.url, "password": self.api_key, "extra": extra}

    def conn_json(self) -> str:
        """The connection as Airflow's JSON form (for ``AIRFLOW_CONN_<ID>`` env vars)."""
        return json.dumps(self.conn_dict())

    def control(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """Call a control-plane operation; ``path`` may omit the ``/_sandbox`` prefix.

        :param method: HTTP method.
        :param path: the operation's path.
        :param json: the JSON body, if any.
        """
        if not path.startswith("/"):
            path = "/" + path
        if not (path == "/_sandbox" or path.startswith("/_sandbox/")):
            path = "/_sandbox" + path
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30.0)
        kwargs: dict[str, Any] = {} if json is None else {"json": json}
        return self._client.request(method.upper(), path, **kwargs)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new httpx client for the API with the key already set (caller closes it)."""
        headers = {"XApiKey": self.api_key, "Accept": "application/json", **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    def reset(self, scenario: str | Path | dict[str, Any] | None = "empty") -> None:
        """Same as ``POST /_sandbox/reset`` without the HTTP round trip (and files allowed).

        :param scenario: as for the constructor.
        """
        self.state.reset(scenario)
