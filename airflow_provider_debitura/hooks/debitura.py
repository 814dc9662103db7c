"""Hooks for the Debitura Customer API: :class:`DebituraHook` (sync, here) and :class:`DebituraAsyncHook`
(``hooks.async_hook``, importable from here too).

Both send the same :class:`~airflow_provider_debitura.hooks.endpoints.ApiCall` objects through one
retry policy and one parser, and drive the same sans-IO exchanges (``hooks.exchange``: the task listing, the
case lookup, a gate's direct reads, a handoff check) with one driver each; they differ only in the httpx client
and in how they read the Airflow connection (the async hook uses common-compat's async helper, because a sync
connection read from inside the triggerer's event loop can deadlock on Airflow 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from tenacity import Retrying

from airflow_provider_debitura.exceptions import DebituraError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.async_hook import DebituraAsyncHook
from airflow_provider_debitura.hooks.base import (
    _as_answer,
    _client_kwargs,
    _DebituraHookBase,
    _logged,
    _mask,
    _no_confirm,
    _selector,
    _without_retry_frames,
)
from airflow_provider_debitura.hooks.budget import RequestBudget, budget_for
from airflow_provider_debitura.hooks.diagnose import TEST_TIMEOUT, check_connection
from airflow_provider_debitura.hooks.endpoints import ApiCall, transport_error
from airflow_provider_debitura.hooks.exchange import Exchange, Upcoming, drive
from airflow_provider_debitura.hooks.lookup import CaseLookup
from airflow_provider_debitura.hooks.paging import Listing, TaskListing
from airflow_provider_debitura.hooks.retry import retry_kwargs
from airflow_provider_debitura.hooks.settings import ConnectionSettings
from airflow_provider_debitura.models import Case, ChatMessage, Creditor, Records, Task, TaskPage, User
from airflow_provider_debitura.validation import chat_message

__all__ = ["DebituraAsyncHook", "DebituraHook"]

T = TypeVar("T")
R = TypeVar("R")


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

    def exchange(self, exchange: Exchange[R]) -> R:
        """Drive an exchange of several requests to its result (``hooks.exchange``, ``docs/request-protocol.md``):
        one call after another, each answer (or the ``DebituraError`` it ended with) fed back. What the exchange
        says is still to come after a batch is checked against the request budget first
        (:meth:`RequestBudget.require`): a listing that would not fit fails after its first page, before the bulk.

        :param exchange: a fresh exchange.
        """

        def require(upcoming: Upcoming) -> None:
            self.budget.require(upcoming.requests, what=upcoming.what)

        return drive(exchange, self._answer, require)

    def _answer(self, call: ApiCall[T]) -> T | DebituraError:
        try:
            return self.run(call)
        except DebituraError as exc:
            return _as_answer(exc, DebituraHook._answer, DebituraHook.run)

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
        return _logged(self.exchange(TaskListing(status=status, types=types, pages_hint=pages_hint)))

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
        return self.exchange(CaseLookup(_selector(case_id, creditor_reference, case_reference)))

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
        return selector.case_id or self.exchange(CaseLookup(selector)).id

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
