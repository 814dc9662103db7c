"""Connection settings, read once from an Airflow connection and validated before any request.

Shared by the sync and the async hook: they differ only in how they fetch the connection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.validation import positive_seconds

DEFAULT_BASE_URL = "https://customer-api.debitura.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_DEADLINE = 120.0
AUTH_TYPES = ("api_key", "bearer")


def _is_loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"))


def read_extra(extra: dict[str, Any], name: str, conn_type: str = "debitura") -> Any:
    """Read an extra field, also in the ``extra__<conn_type>__<name>`` form older UIs wrote."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{conn_type}__{name}")
    return None if value == "" else value


def _positive_float(conn_id: str, name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    return positive_seconds(f"Connection {conn_id!r}: extra {name!r}", value)


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a client needs to talk to Debitura. ``repr`` hides the key."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    auth_type: str = "api_key"
    user_email: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_deadline: float = DEFAULT_RETRY_DEADLINE

    @property
    def auth_headers(self) -> dict[str, str]:
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
        extra: dict[str, Any] | None,
        schema: str | None = None,
        port: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> ConnectionSettings:
        extra = dict(extra or {})
        for key, value in (overrides or {}).items():
            if value is not None:
                extra[key] = value

        api_key = (password or "").strip()
        if not api_key:
            raise DebituraConfigError(
                f"Connection {conn_id!r} has no API key. Put the Debitura API key in the connection's "
                "password field (Creditor Portal → API keys: https://app.debitura.com/CreditorApiKey)."
            )

        base_url = _base_url(conn_id, host, schema, port, _truthy(read_extra(extra, "allow_insecure_http")))

        auth_type = (read_extra(extra, "auth_type") or "api_key").strip().lower()
        if auth_type not in AUTH_TYPES:
            raise DebituraConfigError(
                f"Connection {conn_id!r}: extra 'auth_type'={auth_type!r} is not one of {AUTH_TYPES}. "
                "Use 'api_key' for a creditor API key (XApiKey header) or 'bearer' for a referral-partner JWT."
            )

        max_attempts_raw = read_extra(extra, "max_attempts")
        try:
            max_attempts = DEFAULT_MAX_ATTEMPTS if max_attempts_raw is None else int(max_attempts_raw)
        except (TypeError, ValueError):
            max_attempts = 0
        if max_attempts < 1:
            raise DebituraConfigError(
                f"Connection {conn_id!r}: extra 'max_attempts'={max_attempts_raw!r} must be a whole number "
                f">= 1 (1 = no retries; default {DEFAULT_MAX_ATTEMPTS})."
            )

        return cls(
            conn_id=conn_id,
            base_url=base_url,
            api_key=api_key,
            auth_type=auth_type,
            user_email=read_extra(extra, "user_email"),
            timeout=_positive_float(conn_id, "timeout", read_extra(extra, "timeout"), DEFAULT_TIMEOUT),
            max_attempts=max_attempts,
            retry_deadline=_positive_float(
                conn_id, "retry_deadline", read_extra(extra, "retry_deadline"), DEFAULT_RETRY_DEADLINE
            ),
        )


def _base_url(conn_id: str, host: str | None, schema: str | None, port: int | None, allow_http: bool) -> str:
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        # Airflow's URI form splits "https://x" into conn_type/host; the scheme then lives in `schema`.
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DebituraConfigError(
            f"Connection {conn_id!r}: host {host!r} is not an http(s) URL. "
            f"Use the API's base URL, e.g. {DEFAULT_BASE_URL!r}."
        )
    if port and not parts.port:
        host = f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_http:
        raise DebituraConfigError(
            f"Connection {conn_id!r}: host {host!r} uses plain http to a non-loopback host, which would send "
            "the API key unencrypted. Use https, or set extra 'allow_insecure_http': true if you really mean it."
        )
    return host
