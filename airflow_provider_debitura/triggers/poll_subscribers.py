"""Who is subscribed to a connection's shared poll, what each waits for, and handing a round to them.

A subscriber (a case gate, or a watcher that needs the whole queue) joins with a :class:`Member` and gets a
token. It then asks for a round: "the first round that starts at or after ``not_before``", optionally with a
``step``, a synchronous function the poll calls after each round the subscriber is due for. A float from the
step means "again at the first round at or after that loop time"; anything else is the subscriber's result. A
gate that stays blocked thus costs no object per round at all: no future, no task wake-up, nothing for the
garbage collector to age (``docs/gates.md``, "The event loop").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_debitura.gate import AccountSnapshot, GateSpec

R = TypeVar("R")
Step = Callable[[AccountSnapshot], float | R]
"""A follower's per-round function: a float (loop time of the next round it wants) or its final outcome."""

NEVER = float("inf")
TOLERANCE = 1e-3
"""Seconds by which a subscriber may ask "early" for a round and still be served by it (float rounding)."""

FANOUT_BATCH = 50
"""Subscribers woken per event-loop iteration when a round is delivered, at most."""

SLICE_SECONDS = 0.01
"""CPU a round's fan-out (or verdict sorting) spends before it lets the loop run: at 50,000 open tasks a blocked
gate's step costs a few milliseconds (its blockers include every account-level task), so a fixed count of gates
per slice held the loop for 100 ms and more (``docs/triggerer-scale.md``)."""


@dataclass(frozen=True)
class Member:
    """One subscriber: its interval, and what it reads.

    :param interval: seconds between the rounds it wants; rounds come at the shortest interval of all.
    :param gate: the gate it checks; None: it needs the whole queue (a watcher).
    :param records: (whole-queue subscribers) keep the full JSON records of the pages.
    """

    interval: float
    gate: GateSpec | None
    records: bool = False


class Subscribers:
    """The members of one shared poll and their questions: who waits, from when, until when, with which step."""

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._steps: dict[int, Step[Any]] = {}
        self._not_before: dict[int, float] = {}
        self._deadline: dict[int, float] = {}
        self._next_token = 0
        self.changed = asyncio.Event()
        """Set when a subscriber asks: the poll's loop looks again."""

    def __len__(self) -> int:
        return len(self.members)

    @property
    def interval(self) -> float:
        """The shortest interval any member asked for: rounds are never further apart."""
        return min((m.interval for m in self.members.values()), default=60.0)

    @property
    def waiting(self) -> int:
        """Members waiting for a round right now."""
        return sum(1 for fut in self._waiting.values() if not fut.done())

    def join(self, member: Member) -> int:
        """Add a member; its token."""
        self._next_token += 1
        self.members[self._next_token] = member
        return self._next_token

    def leave(self, token: int) -> bool:
        """Drop a member (its question is cancelled); True when it was the last one."""
        self.members.pop(token, None)
        fut = self._forget(token)
        if fut is not None and not fut.done():
            fut.cancel()
        return not self.members

    def ask(
        self, token: int, not_before: float | None, deadline: float | None, step: Step[R] | None = None
    ) -> asyncio.Future[Any]:
        """A future for the first round that starts at or after ``not_before`` (loop time; None: the next one);
        its result is None once ``deadline`` (wall clock) has passed. With ``step``, see the module's docstring.
        """
        loop = asyncio.get_running_loop()
        self._forget(token)  # one question at a time per member
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiting[token] = fut
        self._not_before[token] = loop.time() if not_before is None else not_before
        if deadline is not None:
            self._deadline[token] = loop.time() + (deadline - time.time())
        if step is not None:
            self._steps[token] = step
        self.changed.set()
        return fut

    def _forget(self, token: int) -> asyncio.Future[Any] | None:
        self._not_before.pop(token, None)
        self._deadline.pop(token, None)
        self._steps.pop(token, None)
        return self._waiting.pop(token, None)

    # -- what the poll's loop asks --

    def prune(self, now: float) -> None:
        """Answer None to the questions whose deadline has passed; forget those cancelled meanwhile."""
        for token in [t for t, at in self._deadline.items() if at <= now]:
            fut = self._forget(token)
            if fut is not None and not fut.done():
                fut.set_result(None)
        for token in [t for t, fut in self._waiting.items() if fut.done()]:
            self._forget(token)

    def first_due(self) -> float:
        """Loop time of the earliest round any waiting member wants (:data:`NEVER`: nobody waits)."""
        return min(self._not_before.values(), default=NEVER)

    def first_deadline(self) -> float:
        """Loop time of the earliest deadline of a waiting member (:data:`NEVER`: none)."""
        return min(self._deadline.values(), default=NEVER)

    def due(self, start: float) -> list[int]:
        """The waiting members a round that starts at ``start`` (loop time) serves."""
        return [t for t in self._waiting if self._not_before[t] <= start + TOLERANCE]

    def asking(self) -> list[int]:
        """Every waiting member."""
        return list(self._waiting)

    def of(self, tokens: Sequence[int]) -> list[Member]:
        """The members behind ``tokens`` (those that left meanwhile are skipped)."""
        return [self.members[t] for t in tokens if t in self.members]

    # -- handing a round over --

    async def deliver(self, tokens: Sequence[int], snapshot: AccountSnapshot) -> None:
        """Give ``snapshot`` to ``tokens``, in slices that let the loop run (1,000 gates, one round)."""
        start = 0
        while start < len(tokens):
            start = self.deliver_now(tokens, snapshot, start, time.monotonic() + SLICE_SECONDS)
            await asyncio.sleep(0)

    def deliver_now(
        self, tokens: Sequence[int], snapshot: AccountSnapshot, start: int = 0, until: float = NEVER
    ) -> int:
        """Deliver to ``tokens[start:]``: at most :data:`FANOUT_BATCH` of them, and none once ``until``
        (``time.monotonic()``) has passed; the index of the first one not delivered."""
        end = min(len(tokens), start + FANOUT_BATCH) if until != NEVER else len(tokens)
        for index in range(start, end):
            if index > start and time.monotonic() >= until:
                return index
            self._hand(tokens[index], snapshot)
        return end

    def _hand(self, token: int, snapshot: AccountSnapshot) -> None:
        fut, step = self._waiting.get(token), self._steps.get(token)
        if fut is None or fut.done():
            self._forget(token)
            return
        if step is None:
            self._forget(token)
            fut.set_result(snapshot)
            return
        try:
            outcome = step(snapshot)
        except Exception as exc:  # the member's own error, raised in its own task
            self._forget(token)
            fut.set_exception(exc)
            return
        if isinstance(outcome, float):
            self._not_before[token] = outcome  # still waiting, same future
        else:
            self._forget(token)
            fut.set_result(outcome)
