"""The async hook, for triggers: :class:`DebituraAsyncHook` (also importable from ``hooks.debitura``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook
from tenacity import AsyncRetrying

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.base import (
    _as_answer,
    _client_kwargs,
    _DebituraHookBase,
    _logged,
    _mask,
    _no_confirm,
    _selector,
    _ssl_context,
    _without_retry_frames,
)
from airflow_provider_debitura.hooks.budget import RequestBudget, budget_for
from airflow_provider_debitura.hooks.endpoints import ApiCall, transport_error
from airflow_provider_debitura.hooks.exchange import Exchange
from airflow_provider_debitura.hooks.lookup import CaseLookup
from airflow_provider_debitura.hooks.paging import Listing, TaskListing
from airflow_provider_debitura.hooks.retry import retry_kwargs
from airflow_provider_debitura.hooks.settings import ConnectionSettings
from airflow_provider_debitura.models import Case, ChatMessage, Creditor, Records, Task, TaskPage
from airflow_provider_debitura.supervisor import call_airflow

__all__ = ["DebituraAsyncHook", "UnexpectedReadError"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class UnexpectedReadError(DebituraError):
    """A read in the triggerer ended with an error that is not a :class:`DebituraError` (a bug, logged with its
    traceback): answered as a transient error, so the gates that needed the read stay "unknown" and check again."""

    transient = True


async def _read_connection_async(conn_id: str) -> tuple[Any, dict[str, Any]]:
    """Read a connection from inside an event loop without a synchronous supervisor call on the loop.

    common-compat >= 1.23 knows which Airflow versions mask secrets synchronously (a deadlock risk in the
    triggerer before 3.3.2) and picks the safe path. Older common-compat (Airflow's own constraints pin 1.14 to
    1.19; Python 3.10 cannot install 1.23) lacks that knowledge: there, the synchronous read runs in the thread
    asgiref keeps for it, which is safe on every Airflow version (it is what 1.23 itself does before 3.3.2).
    """
    try:
        from airflow.providers.common.compat.connection import (  # type: ignore[attr-defined,unused-ignore]
            get_async_connection,
            get_async_extra_dejson,
        )
    except ImportError:
        conn = await call_airflow(BaseHook.get_connection, conn_id)
        return conn, await call_airflow(lambda: conn.extra_dejson)
    conn = await get_async_connection(conn_id)
    return conn, await get_async_extra_dejson(conn)


class DebituraAsyncHook(_DebituraHookBase):
    """The async twin of :class:`~airflow_provider_debitura.hooks.debitura.DebituraHook`, for triggers. Reads only:
    posting stays in workers.

    :param debitura_conn_id: the Airflow connection (type Debitura).
    :param timeout: seconds per HTTP phase; overrides the ``timeout`` extra.
    :param max_attempts: tries per read; overrides the ``max_attempts`` extra.
    :param retry_deadline: seconds after which no retry starts; overrides the ``retry_deadline`` extra.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings: ConnectionSettings | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()

    async def get_settings(self) -> ConnectionSettings:
        """The validated connection settings, read without blocking the event loop."""
        if self._settings is None:
            try:
                conn, extra = await _read_connection_async(self.debitura_conn_id)
            except AirflowNotFoundException as exc:
                raise self._missing_connection(exc) from None
            settings = self._settings_from(conn, extra)
            # The masker may talk to the supervisor synchronously: never on the triggerer's loop, and only from
            # the thread asgiref keeps for it (supervisor.call_airflow says why).
            await call_airflow(_mask, settings.api_key)
            self._settings = settings
        return self._settings

    async def get_async_conn(self) -> httpx.AsyncClient:
        """The hook's async HTTP client (built once; CA loading off the loop)."""
        async with self._lock:
            if self._aclient is None:
                settings = await self.get_settings()
                await asyncio.to_thread(_ssl_context)  # the first build loads the CA bundle: not on the loop
                self._aclient = httpx.AsyncClient(**_client_kwargs(settings))
        return self._aclient

    async def aclose(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    async def reset_connection(self) -> None:
        """Forget the connection and client, so the next request re-reads the Airflow connection (e.g. after
        a 401 in a long-lived poller, when the key may have been rotated)."""
        async with self._lock:
            await self.aclose()
            self._settings = None

    async def __aenter__(self) -> DebituraAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_budget(self) -> RequestBudget:
        """This process's request budget of the connection (``hooks.budget``), read without blocking the loop."""
        return budget_for(await self.get_settings())

    async def _send_once(self, call: ApiCall[T]) -> T:
        client = await self.get_async_conn()
        budget = await self.get_budget()
        await budget.aacquire()  # every request of the async hook passes here
        try:
            response = await client.request(call.method, call.path, params=call.params)
        except httpx.TransportError as exc:
            raise transport_error(call, exc) from None
        return self._parsed(call, response, budget)

    async def run(self, call: ApiCall[T]) -> T:
        """Send one read with the retry policy; writes are refused (they run in workers only).

        :param call: the request and its parser (see ``hooks.endpoints``).
        """
        if not call.idempotent:
            raise DebituraConfigError(
                f"{call.label} is a write; writes run in workers, never in the triggerer (a triggerer "
                "restart re-runs a trigger from the start and would send it again)."
            )
        try:
            async for attempt in AsyncRetrying(**retry_kwargs(call, await self.get_settings())):
                with attempt:
                    return await self._send_once(call)
        except DebituraError as exc:
            raise _without_retry_frames(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def exchange(self, exchange: Exchange[R], slots: asyncio.Semaphore | None = None) -> R:
        """Drive an exchange of several requests to its result (``hooks.exchange``, ``docs/request-protocol.md``):
        the calls of one batch concurrently, each within ``slots``, each answer fed back as it arrives (the
        ``DebituraError`` a call ended with is its answer). Any other error of a read is a bug: it is logged with
        its traceback and answered as a transient error, so one bug never ends a triggerer's round.

        :param exchange: a fresh exchange.
        :param slots: the connection's limit on concurrent requests (None: no limit beyond the batch).
        """
        while calls := exchange.next_calls():
            if len(calls) == 1:
                await self._exchange_one(exchange, calls[0], slots)
                continue
            sends = [asyncio.ensure_future(self._exchange_one(exchange, call, slots)) for call in calls]
            try:
                await asyncio.gather(*sends)
            except BaseException:
                for send in sends:
                    send.cancel()
                await asyncio.gather(*sends, return_exceptions=True)
                raise
        return exchange.result()

    async def _exchange_one(self, exchange: Exchange[Any], call: ApiCall[Any], slots: asyncio.Semaphore | None) -> None:
        async with slots if slots is not None else contextlib.nullcontext():
            if not exchange.still_wanted(call):
                return
            answer = await self._answer(call)
        exchange.feed(call, answer)

    async def _answer(self, call: ApiCall[T]) -> T | DebituraError:
        try:
            return await self.run(call)
        except DebituraError as exc:
            return _as_answer(exc, DebituraAsyncHook._answer, DebituraAsyncHook.run)
        except Exception as exc:  # cancellation is not an Exception: it still propagates
            log.exception("Unexpected error reading %s from Debitura", call.label)
            return UnexpectedReadError(f"{type(exc).__name__}: {exc}")

    async def get_me(self) -> Creditor:
        """``GET /me``: the account of the API key."""
        return await self.run(endpoints.get_me())

    async def list_tasks(
        self,
        *,
        status: str | None = "Open",
        types: Sequence[str] | None = None,
        pages_hint: int | None = None,
        confirm: bool | None = None,
    ) -> Listing:
        """Async twin of :meth:`DebituraHook.list_tasks`.

        :param status: the ``status`` filter.
        :param types: the ``type`` filter.
        :param pages_hint: ``Listing.pages`` of the previous listing, if any.
        :param confirm: deprecated, no effect.
        """
        _no_confirm(confirm)
        return _logged(await self.exchange(TaskListing(status=status, types=types, pages_hint=pages_hint)))

    async def get_tasks_page(
        self,
        *,
        status: str | None = "Open",
        types: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = endpoints.MAX_PAGE_SIZE,
    ) -> TaskPage:
        """One page of ``GET /tasks``.

        :param status: the ``status`` filter.
        :param types: the ``type`` filter.
        :param page: 1-based page number.
        :param page_size: tasks per page, 1 to 100.
        """
        return await self.run(endpoints.get_tasks_page(status=status, types=types, page=page, page_size=page_size))

    async def get_case_tasks(
        self, case_id: str, *, status: str | None = "Open", types: Sequence[str] | None = None
    ) -> Records[Task]:
        """A case's tasks; records that cannot be read are in ``.rejected``.

        :param case_id: the case GUID.
        :param status: the ``status`` filter.
        :param types: the ``type`` filter.
        """
        return await self.run(endpoints.get_case_tasks(case_id, status=status, types=types))

    async def get_case(self, case_id: str) -> Case:
        """``GET /cases/{id}``.

        :param case_id: the case GUID.
        """
        return await self.run(endpoints.get_case(case_id))

    async def find_case(
        self,
        case_id: str | None = None,
        *,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
    ) -> Case:
        """Async twin of :meth:`DebituraHook.find_case`.

        :param case_id: Debitura's case GUID.
        :param creditor_reference: your own reference of the case.
        :param case_reference: Debitura's 8-character reference.
        """
        return await self.exchange(CaseLookup(_selector(case_id, creditor_reference, case_reference)))

    async def get_chats(self, case_id: str) -> Records[ChatMessage]:
        """A case's whole chat history; messages that cannot be read are in ``.rejected``.

        :param case_id: the case GUID.
        """
        return await self.run(endpoints.get_chats(case_id))
