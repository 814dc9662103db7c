"""What the sync and the async hook share: the connection, its form, the HTTP client's settings, the
parsing of an answer, and the helpers both hooks' methods use."""

from __future__ import annotations

import functools
import itertools
import logging
import ssl
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_debitura import __version__
from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraError, DebituraRateLimitError
from airflow_provider_debitura.hooks.budget import RequestBudget
from airflow_provider_debitura.hooks.endpoints import ApiCall, parse_response
from airflow_provider_debitura.hooks.paging import Listing
from airflow_provider_debitura.hooks.settings import ConnectionSettings
from airflow_provider_debitura.validation import CaseSelector, case_selector

T = TypeVar("T")

USER_AGENT = f"airflow-provider-debitura/{__version__}"

log = logging.getLogger("airflow_provider_debitura.hooks.debitura")


def _mask(secret: str) -> None:
    try:
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(secret)
    except Exception:  # masking is best-effort outside a task (plain scripts, tests)
        pass


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process. Loading the CA bundle costs 70-130 ms of CPU; paid per client,
    a triggerer running hundreds of gates would stall its event loop for seconds."""
    return httpx.create_ssl_context(verify=True)


def _client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    return {
        "base_url": settings.base_url,
        "headers": {"Accept": "application/json", "User-Agent": USER_AGENT, **settings.auth_headers},
        "timeout": httpx.Timeout(settings.timeout),
        "follow_redirects": False,  # never carry the key to another host
        "verify": _ssl_context(),  # TLS verification always on
    }


_RETRY_MACHINERY = ("/tenacity/", "/concurrent/futures/", "\\tenacity\\", "\\concurrent\\futures\\")


def _without_retry_frames(exc: DebituraError) -> DebituraError:
    """The error with the retry library's own frames cut from its traceback, so a final error (a 404, a 401)
    reads as the call that failed, not as a wall of tenacity internals."""
    kept: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        if not any(part in tb.tb_frame.f_code.co_filename for part in _RETRY_MACHINERY):
            kept.append(tb)
        tb = tb.tb_next
    for current, following in itertools.pairwise(kept):
        current.tb_next = following
    if kept:
        kept[-1].tb_next = None
    return exc.with_traceback(kept[0] if kept else None)


def _as_answer(exc: DebituraError, *drivers: Callable[..., Any]) -> DebituraError:
    """The error a call ended with, as an exchange's answer: its traceback starts at the request that failed (the
    leading frames of ``drivers``, the hook's own sending and retry loop, cut), so that when an exchange raises it,
    it reads as "the exchange, then the request"."""
    codes = {getattr(driver, "__code__", None) for driver in drivers}
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code in codes:
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _no_confirm(confirm: bool | None) -> None:
    if confirm is not None:
        warnings.warn(
            "list_tasks(confirm=...) has no effect any more: every listing reads the queue so that a task open "
            "throughout is returned exactly once (see Listing.verified); drop the argument.",
            DeprecationWarning,
            stacklevel=3,
        )


def _logged(result: Listing) -> Listing:
    """The listing, its summary logged (a warning when it could not verify itself)."""
    if result.verified:
        log.debug("Debitura task listing: %s", result.summary())
    else:
        log.warning("Debitura task listing: %s", result.summary())
    return result


def _selector(case_id: str | None, creditor_reference: str | None, case_reference: str | None) -> CaseSelector:
    selector = case_selector(case_id, creditor_reference, case_reference)
    assert selector is not None  # required=True raises instead
    return selector


class _DebituraHookBase(BaseHook):
    """Connection handling and the connection form, shared by the sync and the async hook.

    :param debitura_conn_id: the Airflow connection (type Debitura): host = Base URL, password = API key.
    :param timeout: seconds per HTTP phase; overrides the ``timeout`` extra.
    :param max_attempts: tries per read; overrides the ``max_attempts`` extra.
    :param retry_deadline: seconds after which no retry starts; overrides the ``retry_deadline`` extra.
    """

    conn_name_attr = "debitura_conn_id"
    default_conn_name = "debitura_default"
    conn_type = "debitura"
    hook_name = "Debitura"

    def __init__(
        self,
        debitura_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        retry_deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.debitura_conn_id = debitura_conn_id
        self._overrides = {"timeout": timeout, "max_attempts": max_attempts, "retry_deadline": retry_deadline}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(debitura_conn_id={self.debitura_conn_id!r})"

    def _missing_connection(self, exc: Exception) -> DebituraConfigError:
        env = f"AIRFLOW_CONN_{self.debitura_conn_id.upper()}"
        return DebituraConfigError(
            f"Airflow connection {self.debitura_conn_id!r} is not defined ({exc}). Create it (Admin → Connections, "
            f"type Debitura) or set {env} to its JSON form, e.g. "
            f'{env}=\'{{"conn_type": "debitura", "password": "<api key>"}}\''
        )

    def _settings_from(self, conn: Any, extra: dict[str, Any]) -> ConnectionSettings:
        return ConnectionSettings.from_connection_fields(
            self.debitura_conn_id,
            host=conn.host,
            password=conn.password,
            extra=extra,
            schema=conn.schema,
            port=conn.port,
            overrides=self._overrides,
        )

    def _parsed(self, call: ApiCall[T], response: httpx.Response, budget: RequestBudget) -> T:
        """The answer; a 429 also holds the connection's budget in this process until its ``retryAfter``."""
        try:
            return parse_response(call, response, self.debitura_conn_id)
        except DebituraRateLimitError as exc:
            budget.hold(exc.retry_after)
            raise

    def sender_email(self, user_email: str | None, settings: ConnectionSettings) -> str:
        """The chat sender: ``user_email`` or the connection's ``user_email`` extra.

        :param user_email: the sender given to the call, if any.
        :param settings: the connection settings.
        """
        email = (user_email or settings.user_email or "").strip()
        if not email:
            raise DebituraConfigError(
                "No chat sender: pass user_email= (an active member of the API key's team, see GET /users) "
                f"or set the 'user_email' extra on Airflow connection {self.debitura_conn_id!r}."
            )
        return email
