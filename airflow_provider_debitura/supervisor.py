"""Synchronous Airflow calls (connections, Variables, secret masking) from inside an event loop.

In Airflow 3's triggerer these calls talk to the triggerer's supervisor over one socket. On Airflow 3.0 and
3.1 the synchronous side of that channel (``TriggerCommsDecoder.send``) is ``asgiref.async_to_sync(asend)``:
called from a thread that asgiref did not start (``asyncio.to_thread``, an executor) it runs a second event
loop on the same socket, reads another request's reply ("Response read out of order"), and the trigger
runner process dies, taking every deferred task of the deployment with it. From a thread started by
asgiref's ``sync_to_async``, ``async_to_sync`` hands the call back to the triggerer's own loop, which is
safe on every version (Airflow 3.2 made the channel thread-safe). So every synchronous Airflow call a
trigger makes goes through :func:`call_airflow`; ``asyncio.to_thread`` is for pure computation only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


async def call_airflow(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a synchronous Airflow call off the event loop, in the thread asgiref keeps for it.

    :param function: the call, e.g. ``Variable.get``.
    :param args: its positional arguments.
    :param kwargs: its keyword arguments.
    """
    return await sync_to_async(function, thread_sensitive=True)(*args, **kwargs)
