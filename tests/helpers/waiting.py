"""Waiting on conditions, not sleeps, and loopback ports for the servers a test starts."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float, what: str = "condition", interval: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy and return that; ``TimeoutError`` naming ``what``
    after ``timeout`` seconds.

    :param condition: called every ``interval`` seconds.
    :param timeout: seconds.
    :param what: what is waited for, for the error.
    :param interval: seconds between calls.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``port`` on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
