"""The request log and per-route counters (not thread-safe: the store locks); rate limits are in ``ratelimit.py``."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.sandbox.dto import fmt_ts

REQUEST_LOG_LIMIT = 10_000


class RequestLog:
    """Answered (or dropped) API requests, newest last, never headers or keys; counters by route template.

    :param limit: how many requests the log keeps (the oldest are dropped).
    """

    def __init__(self, limit: int = REQUEST_LOG_LIMIT) -> None:
        self._log: deque[dict[str, Any]] = deque(maxlen=limit)
        self._seq = 0
        self._counters: dict[str, int] = {}

    def record(
        self,
        method: str,
        path: str,
        query: str,
        template: str | None,
        status: int | None,
        fault: str | None,
        when: datetime | None = None,
    ) -> None:
        """Log one request and count it under ``"<method> <template or path>"`` and ``"total"``.

        :param method: HTTP method.
        :param path: the request path.
        :param query: the raw query string.
        :param template: the route template it matched, if any.
        :param status: the status answered, None when the connection was dropped.
        :param fault: the fault kind applied, if any.
        :param when: the sandbox's wall time (default: the real time now).
        """
        self._seq += 1
        self._log.append(
            {
                "seq": self._seq,
                "time": fmt_ts(when or datetime.now(timezone.utc)),
                "method": method,
                "path": path,
                "query": query,
                "status": status,
                "fault": fault,
            }
        )
        key = f"{method} {template or path}"
        self._counters[key] = self._counters.get(key, 0) + 1
        self._counters["total"] = self._counters.get("total", 0) + 1

    def entries(self) -> list[dict[str, Any]]:
        """A copy of the log."""
        return [dict(r) for r in self._log]

    def counters(self) -> dict[str, int]:
        """A copy of the counters (``total`` always present)."""
        out = dict(self._counters)
        out.setdefault("total", 0)
        return out

    def clear(self) -> None:
        """Empty the log and the counters."""
        self._log.clear()
        self._counters.clear()
        self._seq = 0
