"""One protocol for every exchange of several requests: the exchange says what to send, the hook sends.

An :class:`Exchange` is sans-IO: it builds the calls, reads the answers and decides what comes next; it never
sends. Two drivers send: :meth:`DebituraHook.exchange <airflow_provider_debitura.hooks.debitura.DebituraHook.exchange>`
(one call after another, through :func:`drive`) and :meth:`DebituraAsyncHook.exchange
<airflow_provider_debitura.hooks.async_hook.DebituraAsyncHook.exchange>` (the calls of one batch concurrently,
within a connection's slots). The rule about errors: a call that ends in a
:class:`~airflow_provider_debitura.exceptions.DebituraError` is *answered* with that error (the driver never
raises it); the exchange decides: take it (a 404 that means "gone", a failure that means "unknown"), or raise it
to abort. See ``docs/request-protocol.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from airflow_provider_debitura.exceptions import DebituraError
from airflow_provider_debitura.hooks.endpoints import ApiCall

__all__ = ["Exchange", "Upcoming", "drive", "unwrap"]

R = TypeVar("R", covariant=True)
T = TypeVar("T")


class Upcoming(NamedTuple):
    """Requests an exchange now knows it will still send, for the sync driver's budget check before the bulk.

    :param requests: how many (an estimate: "about").
    :param what: the run, for the message (e.g. ``"the rest of this task listing (20 more pages)"``).
    """

    requests: int
    what: str


class Exchange(ABC, Generic[R]):
    """A multi-request exchange with the API, without I/O.

    A driver asks :meth:`next_calls`, sends each call it returns (asking :meth:`still_wanted` right before),
    :meth:`feed` s each answer back, and asks again until :meth:`next_calls` is empty; then :meth:`result`.
    """

    @abstractmethod
    def next_calls(self) -> Sequence[ApiCall[Any]]:
        """The calls that may be sent now, concurrently; empty when the exchange is finished."""

    @abstractmethod
    def feed(self, call: ApiCall[Any], answer: object) -> None:
        """Take the answer to one of the calls of :meth:`next_calls`: its parsed result, or the
        :class:`~airflow_provider_debitura.exceptions.DebituraError` it ended with. Raise to abort the exchange.

        :param call: the call, as :meth:`next_calls` returned it.
        :param answer: the parsed result, or the error.
        """

    @abstractmethod
    def result(self) -> R:
        """What the exchange found, once :meth:`next_calls` is empty."""

    def still_wanted(self, call: ApiCall[Any]) -> bool:
        """Asked right before a call is sent; False drops it unsent and unfed (the exchange has noted why).

        :param call: the call about to be sent.
        """
        return True

    def upcoming(self) -> Upcoming | None:
        """After each batch: requests this exchange now knows it will still send, for the sync driver to check
        against the request budget before the bulk (``RequestBudget.require``); None when there is nothing to
        check now."""
        return None


def unwrap(answer: object) -> Any:
    """The answer, or raise it when it is the error the call ended with (for exchanges that take no error).

    :param answer: what :meth:`Exchange.feed` was given.
    """
    if isinstance(answer, DebituraError):
        raise answer
    return answer


def drive(
    exchange: Exchange[T],
    answer: Callable[[ApiCall[Any]], object],
    require: Callable[[Upcoming], None] | None = None,
) -> T:
    """The sync driver: send the calls one after another and feed each answer back, to the result.

    :param exchange: a fresh exchange.
    :param answer: sends one call and returns its result, or the ``DebituraError`` it ended with.
    :param require: given what the exchange says is still to come after each batch (the budget check).
    """
    while calls := exchange.next_calls():
        for call in calls:
            if exchange.still_wanted(call):
                exchange.feed(call, answer(call))
        if require is not None and (upcoming := exchange.upcoming()) is not None:
            require(upcoming)
    return exchange.result()
