"""Hooks for the Debitura Customer API: :class:`DebituraHook` (sync) and :class:`DebituraAsyncHook`.

Both send the same :class:`~airflow_provider_debitura.hooks.endpoints.ApiCall` objects through one
retry policy and one parser, and drive the same sans-IO state machines (the task listing, the case
lookup); they differ only in the httpx client and in how they read the Airflow connection (the async
hook uses common-compat's async helper, because a sync connection read from inside the triggerer's
event loop can deadlock on Airflow 3).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import ssl
import warnings
from collections.abc import Sequence
from functools import cached_property
from types import TracebackType
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook
from tenacity import AsyncRetrying, Retrying

from airflow_provider_debitura import __version__
from airflow_provider_debitura.exceptions import (
    DebituraConfigError,
    DebituraError,
    DebituraNotFoundError,
    DebituraRateLimitError,
)
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.budget import RequestBudget, budget_for
from airflow_provider_debitura.hooks.diagnose import TEST_TIMEOUT, check_connection
from airflow_provider_debitura.hooks.endpoints import ApiCall, parse_response, transport_error
from airflow_provider_debitura.hooks.lookup import CaseLookup
from airflow_provider_debitura.hooks.paging import Listing, TaskListing
from airflow_provider_debitura.hooks.retry import retry_kwargs
from airflow_provider_debitura.hooks.settings import ConnectionSettings
from airflow_provider_debitura.models import Case, ChatMessage, Creditor, Records, Task, TaskPage, User
from airflow_provider_debitura.supervisor import call_airflow
from airflow_provider_debitura.validation import CaseSelector, case_selector, chat_message

__all__ = ["DebituraAsyncHook", "DebituraHook"]

T = TypeVar("T")

USER_AGENT = f"airflow-provider-debitura/{__version__}"

log = logging.getLogger(__name__)


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


def _no_confirm(confirm: bool | None) -> None:
    if confirm is not None:
        warnings.warn(
            "list_tasks(confirm=...) has no effect any more: every listing reads the queue so that a task open "
            "throughout is returned exactly once (see Listing.verified); drop the argument.",
            DeprecationWarning,
            stacklevel=3,
        )


def _finished(listing: TaskListing) -> Listing:
    result = listing.result()
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


class DebituraHook(_DebituraHookBase):
    """Talks to the Debitura Customer API from a worker.

    Connection: host = base URL (default ``https://customer-api.debitura.com``), password = API key;
    extras ``user_email`` (default chat sender), ``auth_type`` (``api_key`` | ``bearer``), ``timeout``,
    ``max_attempts``, ``retry_deadline``, ``allow_insecure_http``.

    :param debitura_conn_id: the Airflow connection (type Debitura).
    :param timeout: seconds per HTTP phase; overrides the ``timeout`` extra.
    :param max_attempts: tries per read; overrides the ``max_attempts`` extra.
    :param retry_deadline: seconds after which no retry starts; overrides the ``retry_deadline`` extra.
    """

    # -- connection form (Airflow < 3.2; 3.2+ reads the declarative form from get_provider_info). Defined on
    # this class itself: Airflow 2 only looks for them in the registered hook class's own __dict__. --

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the connection form."""
        from airflow_provider_debitura.provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form (Airflow 2 web server)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget  # type: ignore[import-not-found,unused-ignore]
        from flask_babel import lazy_gettext  # type: ignore[import-not-found,unused-ignore]
        from wtforms import StringField  # type: ignore[import-untyped,unused-ignore]

        from airflow_provider_debitura.provider_info import CONN_FIELDS

        return {
            name: StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), default=None)
            for name, spec in CONN_FIELDS.items()
        }

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (read once; the key is registered for masking)."""
        try:
            conn = self.get_connection(self.debitura_conn_id)
        except AirflowNotFoundException as exc:
            raise self._missing_connection(exc) from None
        settings = self._settings_from(conn, conn.extra_dejson)
        _mask(settings.api_key)
        return settings

    @property
    def budget(self) -> RequestBudget:
        """This process's request budget of the connection (``hooks.budget``, ``docs/request-budget.md``)."""
        return budget_for(self.settings)

    def get_conn(self) -> httpx.Client:
        """The hook's HTTP client (one per hook, kept open until :meth:`close`)."""
        return self._client

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(**_client_kwargs(self.settings))

    def close(self) -> None:
        """Close the HTTP client, if one was opened."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()

    def __enter__(self) -> DebituraHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --

    def _send_once(self, call: ApiCall[T]) -> T:
        budget = self.budget
        budget.acquire()  # every request of the sync hook passes here
        try:
            response = self._client.request(
                call.method,
                call.path,
                params=call.params,
                content=endpoints.dumps_body(call),
                headers={"Content-Type": "application/json"} if call.json_body is not None else None,
            )
        except httpx.TransportError as exc:
            raise transport_error(call, exc) from None
        return self._parsed(call, response, budget)

    def run(self, call: ApiCall[T]) -> T:
        """Send one call with the retry policy that fits it (reads retried, writes not blindly).

        :param call: the request and its parser (see ``hooks.endpoints``).
        """
        try:
            for attempt in Retrying(**retry_kwargs(call, self.settings)):
                with attempt:
                    return self._send_once(call)
        except DebituraError as exc:
            raise _without_retry_frames(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def run_listing(self, listing: TaskListing) -> Listing:
        """Drive a :class:`~airflow_provider_debitura.hooks.paging.TaskListing` to its result.

        A listing whose remaining pages would not fit the request budget fails after its first page (which
        tells the queue's size), before the bulk (:meth:`RequestBudget.require`).

        :param listing: a fresh listing.
        """
        while (call := listing.next_call()) is not None:
            listing.feed(self.run(call))
            if listing.pages_read == 1 and (left := listing.pages_left()):
                total = f"{listing.total:,} tasks, " if listing.total is not None else ""
                self.budget.require(left, what=f"the rest of this task listing ({total}{left:,} more pages)")
        return _finished(listing)

    def find_case_for(self, selector: CaseSelector) -> Case:
        """The case a validated selector names (1 request; see ``hooks.lookup`` for references with ``/``).

        :param selector: exactly one identifier of the case.
        """
        lookup = CaseLookup(selector)
        while (call := lookup.next_call()) is not None:
            try:
                lookup.feed(self.run(call))
            except DebituraNotFoundError as exc:
                lookup.not_found(exc)
        return lookup.result()

    # -- API --

    def get_me(self) -> Creditor:
        """``GET /me``: the account of the API key."""
        return self.run(endpoints.get_me())

    def test_connection(self) -> tuple[bool, str]:
        """One ``GET /me`` without retries, answered within 3 s, with a message that says what to fix."""
        try:
            settings = self.settings
        except Exception as exc:
            return False, str(exc)

        def make_client() -> httpx.Client:
            return httpx.Client(**(_client_kwargs(settings) | {"timeout": httpx.Timeout(TEST_TIMEOUT)}))

        return check_connection(settings, make_client)

    def list_tasks(
        self,
        *,
        status: str | None = "Open",
        types: Sequence[str] | None = None,
        pages_hint: int | None = None,
        confirm: bool | None = None,
    ) -> Listing:
        """Every task of the account, each once, even while the queue moves (see ``docs/listing.md``).

        Every task open for the whole listing is returned exactly once; tasks created or solved meanwhile
        may or may not be. Cost: P requests for P pages with a right ``pages_hint``, else P + 1.

        :param status: the ``status`` filter (``Open``, ``Solved``).
        :param types: the ``type`` filter.
        :param pages_hint: ``Listing.pages`` of the previous listing, if any.
        :param confirm: deprecated, no effect.
        """
        _no_confirm(confirm)
        return self.run_listing(TaskListing(status=status, types=types, pages_hint=pages_hint))

    def get_tasks_page(
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
        return self.run(endpoints.get_tasks_page(status=status, types=types, page=page, page_size=page_size))

    def get_case_tasks(
        self, case_id: str, *, status: str | None = "Open", types: Sequence[str] | None = None
    ) -> Records[Task]:
        """A case's tasks; records that cannot be read are in ``.rejected``.

        :param case_id: the case GUID.
        :param status: the ``status`` filter.
        :param types: the ``type`` filter.
        """
        return self.run(endpoints.get_case_tasks(case_id, status=status, types=types))

    def get_case(self, case_id: str) -> Case:
        """``GET /cases/{id}``.

        :param case_id: the case GUID.
        """
        return self.run(endpoints.get_case(case_id))

    def get_case_by_creditor_reference(self, creditor_reference: str) -> Case:
        """The case with this creditor reference (see :meth:`find_case`).

        :param creditor_reference: your own reference of the case.
        """
        return self.find_case(creditor_reference=creditor_reference)

    def get_case_by_reference(self, case_reference: str) -> Case:
        """The case with this Debitura reference.

        :param case_reference: Debitura's 8-character reference.
        """
        return self.run(endpoints.get_case_by_reference(case_reference))

    def find_case(
        self,
        case_id: str | None = None,
        *,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
    ) -> Case:
        """The case named by exactly one of its three identifiers (one request; a creditor reference with
        ``/`` that the server cannot route costs up to 10 more, see ``hooks.lookup``).

        :param case_id: Debitura's case GUID.
        :param creditor_reference: your own reference of the case (e.g. an invoice number).
        :param case_reference: Debitura's 8-character reference.
        """
        return self.find_case_for(_selector(case_id, creditor_reference, case_reference))

    def resolve_case_id(
        self,
        case_id: str | None = None,
        *,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
    ) -> str:
        """The case GUID: ``case_id`` itself (no request), or looked up by reference.

        :param case_id: Debitura's case GUID.
        :param creditor_reference: your own reference of the case.
        :param case_reference: Debitura's 8-character reference.
        """
        selector = _selector(case_id, creditor_reference, case_reference)
        return selector.case_id or self.find_case_for(selector).id

    def get_chats(self, case_id: str) -> Records[ChatMessage]:
        """A case's whole chat history; messages that cannot be read are in ``.rejected``.

        :param case_id: the case GUID.
        """
        return self.run(endpoints.get_chats(case_id))

    def post_chat(self, case_id: str, message: str, *, user_email: str | None = None) -> ChatMessage:
        """Post one chat message. Never retried after it may have reached the server: on an ambiguous
        failure this raises :class:`~airflow_provider_debitura.exceptions.DebituraAmbiguousWriteError`.

        :param case_id: the case GUID.
        :param message: the text (1 to 10,000 visible characters).
        :param user_email: the sender; default the connection's ``user_email`` extra.
        """
        call = endpoints.post_chat(case_id, chat_message(message), self.sender_email(user_email, self.settings))
        return self.run(call)

    def list_users(self) -> list[User]:
        """The first 100 members of the API key's team (``GET /users``)."""
        return list(self.run(endpoints.get_users()).users)


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
    """The async twin of :class:`DebituraHook`, for triggers. Reads only: posting stays in workers.

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

    async def run_listing(self, listing: TaskListing) -> Listing:
        """Drive a :class:`~airflow_provider_debitura.hooks.paging.TaskListing` to its result.

        :param listing: a fresh listing.
        """
        while (call := listing.next_call()) is not None:
            listing.feed(await self.run(call))
        return _finished(listing)

    async def find_case_for(self, selector: CaseSelector) -> Case:
        """Async twin of :meth:`DebituraHook.find_case_for`.

        :param selector: exactly one identifier of the case.
        """
        lookup = CaseLookup(selector)
        while (call := lookup.next_call()) is not None:
            try:
                lookup.feed(await self.run(call))
            except DebituraNotFoundError as exc:
                lookup.not_found(exc)
        return lookup.result()

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
        return await self.run_listing(TaskListing(status=status, types=types, pages_hint=pages_hint))

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
        return await self.find_case_for(_selector(case_id, creditor_reference, case_reference))

    async def get_chats(self, case_id: str) -> Records[ChatMessage]:
        """A case's whole chat history; messages that cannot be read are in ``.rejected``.

        :param case_id: the case GUID.
        """
        return await self.run(endpoints.get_chats(case_id))
