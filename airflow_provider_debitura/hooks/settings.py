"""Connection settings, read once from an Airflow connection and validated before any request.

Shared by the sync and the async hook: they differ only in how they fetch the connection. Every
error names the field to fix and never echoes the API key.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.provider_info import (  # one place for the defaults the connection form shows
    API_PER_DAY,
    API_PER_HOUR,
    API_PER_MINUTE,
    DEFAULT_BUDGET_MAX_WAIT,
    DEFAULT_BUDGET_PER_DAY,
    DEFAULT_BUDGET_PER_HOUR,
    DEFAULT_BUDGET_PER_MINUTE,
    DEFAULT_BUDGET_PROCESSES,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
)

DEFAULT_BASE_URL = "https://customer-api.debitura.com"
AUTH_TYPES = ("api_key", "bearer")
MAX_TIMEOUT = 3_600.0
MAX_RETRY_DEADLINE = 86_400.0
MAX_ATTEMPTS_LIMIT = 100

DAY = 86_400.0
MAX_PROCESSES = 10_000
MAX_WAIT_LIMIT = DAY
BUDGET_EXTRAS = ("budget_per_minute", "budget_per_hour", "budget_per_day", "budget_processes", "budget_max_wait")

_TRANSIENT_ID = re.compile(r"[A-Za-z0-9]{8}")


def is_transient_conn_id(conn_id: str) -> bool:
    """Whether ``conn_id`` is the throwaway id Airflow's UI gives a connection it tests.

    The UI's Test button (Airflow 2.x and 3.x) stores the form under a random 8-character id from
    ``get_random_string()`` in ``AIRFLOW_CONN_<ID>`` for the duration of the test; a saved connection
    id is what users chose. Heuristic: 8 letters and digits, at least one upper-case letter, and
    defined in the environment.

    :param conn_id: the connection id the hook was built with.
    """
    return (
        _TRANSIENT_ID.fullmatch(conn_id) is not None
        and any(c.isupper() for c in conn_id)
        and f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ
    )


def connection_label(conn_id: str) -> str:
    """How messages name a connection: its id, or "The connection under test" for the UI's throwaway id.

    :param conn_id: the connection id.
    """
    return "The connection under test" if is_transient_conn_id(conn_id) else f"Connection {conn_id!r}"


def _is_loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"))


def read_extra(extra: Mapping[str, Any], name: str, conn_type: str = "debitura") -> Any:
    """Read an extra field, also in the ``extra__<conn_type>__<name>`` form older UIs wrote.

    :param extra: the connection's extra, as a dict.
    :param name: the field name.
    :param conn_type: the connection type of the legacy prefix.
    """
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{conn_type}__{name}")
    return None if value == "" else value


def _number(value: object) -> float:
    """``value`` as a float (NaN when it is not a number; a bool is not one)."""
    try:
        return float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _whole_number(value: object, *, separators: bool = False) -> int:
    """``value`` as a whole number (-1 when it is not one); ``separators``: a text may group digits with , or _."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "") if separators else value.strip()
        if text.isdigit():
            return int(text)
    return -1


def _seconds(where: str, name: str, value: object, default: float, maximum: float) -> float:
    if value is None:
        return default
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    number = _number(value)
    if not (math.isfinite(number) and 0 < number <= maximum):
        raise DebituraConfigError(
            f"{where}: extra {name!r}={value!r} must be a positive number of seconds (finite, at most "
            f"{maximum:,.0f}; e.g. {default:g})."
        )
    return number


def _max_attempts(where: str, value: object) -> int:
    if value is None:
        return DEFAULT_MAX_ATTEMPTS
    number = _whole_number(value)
    if not 1 <= number <= MAX_ATTEMPTS_LIMIT:
        raise DebituraConfigError(
            f"{where}: extra 'max_attempts'={value!r} must be a whole number >= 1 and <= {MAX_ATTEMPTS_LIMIT} "
            f"(1 = no retries; default {DEFAULT_MAX_ATTEMPTS})."
        )
    return number


def _api_key(where: str, password: str | None) -> str:
    """The key as sent in a header: no surrounding blanks, printable ASCII only (no part of it is echoed)."""
    api_key = (password or "").strip()
    if not api_key:
        raise DebituraConfigError(
            f"{where} has no API key. Put the Debitura API key in the connection's password field (Creditor "
            "Portal → API keys: https://app.debitura.com/CreditorApiKey)."
        )
    for position, char in enumerate(api_key, start=1):
        if not " " <= char <= "~":
            kind = "a non-ASCII character" if ord(char) > 127 else "a control character (e.g. a line break or tab)"
            raise DebituraConfigError(
                f"{where}: the API key (password field) contains {kind} at position {position} of "
                f"{len(api_key)}, which an HTTP header cannot carry. Copy the key again from the Creditor Portal "
                "and paste it without extra characters."
            )
    return api_key


def _auth_type(where: str, extra: Mapping[str, Any]) -> str:
    raw = read_extra(extra, "auth_type") or "api_key"
    auth_type = str(raw).strip().lower()
    if auth_type not in AUTH_TYPES:
        raise DebituraConfigError(
            f"{where}: extra 'auth_type'={raw!r} is not one of {AUTH_TYPES}. Use 'api_key' for a creditor API "
            "key (XApiKey header) or 'bearer' for a referral-partner JWT."
        )
    return auth_type


@dataclass(frozen=True)
class BudgetLimits:
    """A connection's budget as set in its extras (the deployment's share of the key), and this process's part.

    :param per_minute: requests per sliding minute, for the whole deployment.
    :param per_hour: requests per sliding hour, for the whole deployment.
    :param per_day: requests per sliding day, for the whole deployment.
    :param processes: processes that share the budget at once (triggerers + concurrent worker tasks).
    :param max_wait: the longest a request waits for the budget, in seconds.
    :param enabled: False: nothing is counted (a loopback Base URL with no budget extra set: the sandbox).
    """

    per_minute: int = DEFAULT_BUDGET_PER_MINUTE
    per_hour: int = DEFAULT_BUDGET_PER_HOUR
    per_day: int = DEFAULT_BUDGET_PER_DAY
    processes: int = DEFAULT_BUDGET_PROCESSES
    max_wait: float = DEFAULT_BUDGET_MAX_WAIT
    enabled: bool = True

    def share(self, window: str) -> int:
        """This process's requests per ``window`` (``minute``, ``hour`` or ``day``): the extra over ``processes``.

        :param window: the window's name.
        """
        total: int = getattr(self, f"per_{window}")
        return max(1, total // self.processes)

    @property
    def rate(self) -> float:
        """The day's pace for this process, requests per second."""
        return self.share("day") / DAY

    @property
    def burst(self) -> int:
        """The most this process may send ahead of the day's pace: an hour of it, within the hour window."""
        return max(1, min(self.share("hour"), self.share("day") // 24))

    @property
    def at_once(self) -> int:
        """The most requests that can ever fit at one moment: the burst, within the minute's share."""
        return min(self.burst, self.share("minute"))


def _whole(where: str, name: str, value: object, default: int, maximum: int, why: str) -> int:
    if value is None:
        return default
    number = _whole_number(value, separators=True)
    if not 1 <= number <= maximum:
        raise DebituraConfigError(
            f"{where}: extra {name!r}={value!r} must be a whole number from 1 to {maximum:,} ({why}). "
            f"Fix it in the connection's extras, or clear it for the default, {default:,}."
        )
    return number


def _wait(where: str, value: object) -> float:
    if value is None:
        return DEFAULT_BUDGET_MAX_WAIT
    number = _number(value)
    if not (math.isfinite(number) and 0 <= number <= MAX_WAIT_LIMIT):
        raise DebituraConfigError(
            f"{where}: extra 'budget_max_wait'={value!r} must be a number of seconds from 0 to {MAX_WAIT_LIMIT:,.0f} "
            f"(how long a request may wait for the budget). Fix it, or clear it for the default, "
            f"{DEFAULT_BUDGET_MAX_WAIT:g}."
        )
    return number


def parse_budget(where: str, extra: Mapping[str, Any], *, loopback: bool) -> BudgetLimits:
    """The budget extras, validated; errors name the extra, the value and the fix.

    :param where: how errors name the connection.
    :param extra: the connection's extras (values already read, ``None`` when not set).
    :param loopback: the Base URL is a loopback host (the sandbox): no budget unless an extra sets one.
    """
    key = "the API's limit per key"
    limits = BudgetLimits(
        per_minute=_whole(
            where, "budget_per_minute", extra.get("budget_per_minute"), DEFAULT_BUDGET_PER_MINUTE, API_PER_MINUTE, key
        ),
        per_hour=_whole(
            where, "budget_per_hour", extra.get("budget_per_hour"), DEFAULT_BUDGET_PER_HOUR, API_PER_HOUR, key
        ),
        per_day=_whole(where, "budget_per_day", extra.get("budget_per_day"), DEFAULT_BUDGET_PER_DAY, API_PER_DAY, key),
        processes=_whole(
            where,
            "budget_processes",
            extra.get("budget_processes"),
            DEFAULT_BUDGET_PROCESSES,
            MAX_PROCESSES,
            "the triggerers and concurrent worker tasks that use this connection at once",
        ),
        max_wait=_wait(where, extra.get("budget_max_wait")),
    )
    explicit = any(extra.get(name) is not None for name in BUDGET_EXTRAS)
    return limits if explicit or not loopback else BudgetLimits(enabled=False)


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a client needs to talk to Debitura. ``repr`` hides the key.

    :param conn_id: the Airflow connection id.
    :param base_url: scheme, host and port; no path.
    :param api_key: the key (or bearer token), printable ASCII.
    :param auth_type: ``api_key`` (``XApiKey`` header) or ``bearer``.
    :param user_email: the default chat sender.
    :param timeout: seconds per HTTP phase (connect, read, write, pool).
    :param max_attempts: tries per read (1 = no retries).
    :param retry_deadline: seconds after which no further retry starts.
    :param scheme_assumed: the host had no ``http://``/``https://``, so https was assumed.
    :param budget: the request budget (``budget_*`` extras; ``hooks.budget``, ``docs/request-budget.md``).
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    auth_type: str = "api_key"
    user_email: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_deadline: float = DEFAULT_RETRY_DEADLINE
    scheme_assumed: bool = False
    budget: BudgetLimits = field(default_factory=BudgetLimits)

    @property
    def auth_headers(self) -> dict[str, str]:
        """The header that carries the key."""
        if self.auth_type == "bearer":
            return {"Authorization": f"Bearer {self.api_key}"}
        return {"XApiKey": self.api_key}

    @classmethod
    def from_connection_fields(
        cls,
        conn_id: str,
        *,
        host: str | None,
        password: str | None,
        extra: Mapping[str, Any] | None,
        schema: str | None = None,
        port: int | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ConnectionSettings:
        """Validate an Airflow connection's fields; raise :class:`DebituraConfigError` naming the field to fix.

        :param conn_id: the connection id (named in errors, unless it is the UI's throwaway test id).
        :param host: the Base URL field.
        :param password: the API key field.
        :param extra: the extra fields.
        :param schema: the URI form's scheme, when the host came without one.
        :param port: the port field.
        :param overrides: hook arguments that win over the extras (None values are ignored).
        """
        where = connection_label(conn_id)
        merged = dict(extra or {})
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        api_key = _api_key(where, password)
        base_url, scheme_assumed = base_url_of(
            where, host, schema, port, _truthy(read_extra(merged, "allow_insecure_http"))
        )
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            api_key=api_key,
            auth_type=_auth_type(where, merged),
            user_email=read_extra(merged, "user_email"),
            timeout=_seconds(where, "timeout", read_extra(merged, "timeout"), DEFAULT_TIMEOUT, MAX_TIMEOUT),
            max_attempts=_max_attempts(where, read_extra(merged, "max_attempts")),
            retry_deadline=_seconds(
                where,
                "retry_deadline",
                read_extra(merged, "retry_deadline"),
                DEFAULT_RETRY_DEADLINE,
                MAX_RETRY_DEADLINE,
            ),
            scheme_assumed=scheme_assumed,
            budget=parse_budget(
                where,
                {name: read_extra(merged, name) for name in BUDGET_EXTRAS},
                loopback=_is_loopback(urlsplit(base_url).hostname),
            ),
        )


def _netloc(hostname: str, port: int | None) -> str:
    name = f"[{hostname}]" if ":" in hostname else hostname  # an IPv6 literal needs its brackets back
    return f"{name}:{port}" if port else name


def _valid_port(where: str, port: object) -> int | None:
    if port in (None, "", 0, "0"):
        return None  # Airflow 3's form sends 0 for the hidden Port field
    try:
        number = int(str(port))
    except ValueError:
        number = -1
    if not 1 <= number <= 65_535:
        raise DebituraConfigError(f"{where}: port {port!r} is not a TCP port (1 to 65535); leave it empty.")
    return number


def base_url_of(where: str, host: str | None, schema: str | None, port: object, allow_http: bool) -> tuple[str, bool]:
    """The validated base URL, and whether its scheme was assumed (the host had none).

    :param where: how errors name the connection.
    :param host: the Base URL field.
    :param schema: the URI form's scheme, when the host came without one.
    :param port: the port field (0 and empty mean none).
    :param allow_http: the ``allow_insecure_http`` extra.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL, False
    assumed = "://" not in text
    if assumed:
        # Airflow's URI form splits "https://x" into conn_type/host; the scheme then lives in `schema`.
        scheme = schema if schema in ("http", "https") else "https"
        assumed = scheme == "https" and schema != "https"
        bare = text.strip("[]")
        text = f"{scheme}://[{bare}]" if _is_ipv6(bare) else f"{scheme}://{text}"
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise DebituraConfigError(
            f"{where}: Base URL (host) must not carry a user name or password; put the API key in the password "
            "field and give the URL as scheme://host[:port]."
        )
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise DebituraConfigError(f"{where}: Base URL (host) {host!r} has an invalid port.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DebituraConfigError(
            f"{where}: Base URL (host) {host!r} is not an http(s) URL. Use the API's base URL, "
            f"e.g. {DEFAULT_BASE_URL!r}."
        )
    _no_path(where, host, parts.path, parts.query, parts.fragment)
    field_port = _valid_port(where, port)
    if parts.port and field_port and parts.port != field_port:
        raise DebituraConfigError(
            f"{where}: the Base URL (host) {host!r} says port {parts.port} but the Port field says {field_port}. "
            "Make them agree, or leave the Port field empty."
        )
    url = f"{parts.scheme}://{_netloc(parts.hostname, parts.port or field_port)}"
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_http:
        raise DebituraConfigError(
            f"{where}: Base URL (host) {url!r} uses plain http to a non-loopback host, which would send the API "
            "key unencrypted. Use https, or set extra 'allow_insecure_http': true if you really mean it."
        )
    return url, assumed


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _no_path(where: str, host: str | None, path: str, query: str, fragment: str) -> None:
    if path.rstrip("/") or query or fragment:
        shown = path.rstrip("/") + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")
        raise DebituraConfigError(
            f"{where}: Base URL (host) {host!r} has a path or query ({shown!r}), but the Debitura API has no path "
            f"prefix (no /v1): every call would go to the wrong place. Use scheme://host[:port] only, e.g. "
            f"{DEFAULT_BASE_URL!r}."
        )
