"""Which gates a round confirms: after a full read, the direct reads a gate needs before it may open.

A shared read may keep a gate blocked, but a gate opens only on direct reads of every part it counts
(``docs/gates.md``, "The principle"). So after a full read the due gates are sorted by what the read says:

- **opening**: the read would open the gate, or leaves it in doubt. Its case is read directly in this round,
  and the account-level tasks once for all of them, when the round's budget has room (:func:`confirm_room`). A
  gate that does not fit is *pending*: its trigger asks for the next round (it does not back off,
  ``DebituraCaseUnblockedTrigger``), and there its case comes first, before the gates seen opening for the
  first time. So N gates that clear together with room for K case reads a round all open within
  ``ceil(N / K)`` rounds; K is at least ``min(U, OPEN_FLOOR)`` when U of them a verified read saw unblocked.
- **held** by its own case's tasks: its case is read directly once in :data:`EXISTS_EVERY` rounds, after the
  opening ones and budget permitting, at most :func:`existence_checks` of them a round (8, or a tenth of a full
  read), so that a case deleted while the queue still lists its task fails its gate within a few rounds, and
  a thousand held gates do not double what every round costs.
- the others (blocked by an account-level task) cost nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable, Sequence

from airflow_provider_debitura.gate import AccountSnapshot, GateSpec, GateState
from airflow_provider_debitura.triggers.poll_subscribers import SLICE_SECONDS

EXISTS_EVERY = 5
"""A gate kept blocked by full reads has its case read directly (does it still exist?) once in this many rounds,
budget permitting: a case deleted while the queue still lists its task fails its gate within a few rounds."""

EXISTS_SHARE = 10
"""Existence checks in one round: at most a ``1 / EXISTS_SHARE`` part of a full read, or :data:`EXISTS_FLOOR`."""

EXISTS_FLOOR = 8
"""Existence checks a round may always make (within the round's budget): on a small queue a few held gates are
all checked in the round they are due."""

UNKNOWN_PAGES = 8
"""The page count a round's budget assumes while the queue's size is unknown (its first read failed)."""

OPEN_FLOOR = 100
"""Case reads a round may always send for gates that a verified full read saw unblocked (a tenth of the default
budget's minute): each such read is paid once per opening (the gate opens, or its own read finds it blocked and it
backs off), so holding it back saves nothing. Without it a small queue, where ``2 * min(N + 1, P)`` leaves room for
one case, opened a burst of N cleared gates over N rounds: 89 gates still waited an hour in a simulated 3-hour
burst (``docs/gates.md``, "The budget")."""


def confirm_budget(gates: int, pages: int | None, spent: int) -> int:
    """Direct reads a round may still send after its full read: the round stays within ``2 * min(N + 1, P)``.

    :param gates: N, the gates due in the round.
    :param pages: P, the queue's pages (None while unknown: :data:`UNKNOWN_PAGES`).
    :param spent: requests the round has sent so far.
    """
    return max(0, 2 * min(gates + 1, pages or UNKNOWN_PAGES) - spent)


def confirm_room(gates: int, pages: int | None, spent: int, *, unblocked: int, account: bool) -> int:
    """Case reads a round may send after its full read, besides the account-level read when ``account``: what
    :func:`confirm_budget` leaves, but at least one (or no gate would ever open) and at least
    ``min(unblocked, OPEN_FLOOR)``. A round so costs at most ``max(2 * min(N + 1, P), P + min(U, 100) + 1)``.

    :param gates: N, the gates due in the round.
    :param pages: P, the queue's pages (None while unknown: :data:`UNKNOWN_PAGES`).
    :param spent: requests the round has sent so far.
    :param unblocked: U, the due gates the verified full read saw unblocked (not those it left in doubt).
    :param account: the account-level tasks are read too (one request).
    """
    return max(confirm_budget(gates, pages, spent) - account, min(unblocked, OPEN_FLOOR), 1)


def existence_checks(pages: int | None) -> int:
    """The most held gates whose case one round reads to confirm it still exists: ``max(8, ceil(P / 10))``.

    Without a cap, 1,000 held gates due every :data:`EXISTS_EVERY` rounds fill the whole confirm budget each
    round, and a round costs ``2 x P`` instead of ``P`` (so, on a tight request budget, every gate answers
    twice as late). With it, ``H`` held gates have their case read once in ``max(EXISTS_EVERY,
    ceil(H / checks))`` rounds.

    :param pages: P, the queue's full-read cost (None while unknown: :data:`UNKNOWN_PAGES`).
    """
    return max(EXISTS_FLOOR, -(-(pages or UNKNOWN_PAGES) // EXISTS_SHARE))


def account_types_of(gates: Sequence[GateSpec]) -> frozenset[str]:
    """The account-level types any of ``gates`` counts (empty: none needs the account-level read).

    :param gates: the gates.
    """
    needed: set[str] = set()
    for gate in gates:
        needed |= gate.account_types
    return frozenset(needed)


async def sort_gates(
    snapshot: AccountSnapshot, gates: Sequence[GateSpec]
) -> tuple[list[GateSpec], list[GateSpec], int]:
    """The gates a full read would open or leaves in doubt, those it keeps blocked by their own case, and how
    many of the first it would open (not in doubt).

    :param snapshot: the full read.
    :param gates: the round's due gates.
    """
    opening: list[GateSpec] = []
    held: list[GateSpec] = []
    unblocked = 0
    slice_ends = time.monotonic() + SLICE_SECONDS
    for gate in gates:
        state = snapshot.verdict_for(gate).state
        if state in (GateState.UNBLOCKED, GateState.UNKNOWN):
            opening.append(gate)
            unblocked += state is GateState.UNBLOCKED
        elif state is GateState.BLOCKED and snapshot.from_full_read(gate.case_id):
            held.append(gate)
        if time.monotonic() >= slice_ends:  # 1,000 verdicts must not hold the loop in one piece
            await asyncio.sleep(0)
            slice_ends = time.monotonic() + SLICE_SECONDS
    return opening, held, unblocked


class Confirmations:
    """The order in which one shared poll confirms gates by direct reads, kept from round to round."""

    def __init__(self) -> None:
        self._pending: dict[str, None] = {}
        """Cases a full read would open that no direct read has confirmed yet, oldest first."""
        self._read_in: dict[str, int] = {}
        """Round in which each case was last read directly."""

    @property
    def pending(self) -> list[str]:
        """Cases seen opening and not yet read directly, in the order they will be read."""
        return list(self._pending)

    def choose(
        self, opening: Sequence[GateSpec], held: Sequence[GateSpec], room: int, round_no: int, checks: int = 1
    ) -> list[str]:
        """The cases to read directly this round, at most ``room``: the opening ones, pending first, then at most
        ``checks`` held ones due an existence check (longest unread first).

        :param opening: gates the full read would open or leaves in doubt.
        :param held: gates it keeps blocked by their own case's tasks.
        :param room: case reads the round's budget has room for.
        :param round_no: the round (counts from 0).
        :param checks: the most existence checks this round (:func:`existence_checks`).
        """
        now_opening = dict.fromkeys(g.case_id for g in opening)
        # Pending cases keep their place; a case no longer opening (blocked again, not due) drops out.
        self._pending = dict.fromkeys([c for c in self._pending if c in now_opening] + list(now_opening))
        cases = list(self._pending)
        due = round_no - EXISTS_EVERY
        due_cases = {g.case_id for g in held if self._read_in.setdefault(g.case_id, round_no) <= due}
        due_checks = sorted(due_cases - now_opening.keys(), key=lambda case: self._read_in[case])
        return (cases + due_checks[: max(0, checks)])[: max(0, room)]

    @property
    def remembered(self) -> int:
        """Cases whose last direct read is remembered."""
        return len(self._read_in)

    def keep(self, cases: Collection[str]) -> None:
        """Forget every case but ``cases`` (those some gate still watches): a case whose gates opened, failed or
        left is never due an existence check again, and a triggerer that runs for weeks must not keep them all.

        :param cases: the cases the poll's gates watch.
        """
        self._read_in = {case: at for case, at in self._read_in.items() if case in cases}
        self._pending = {case: None for case in self._pending if case in cases}

    def read(self, cases: Iterable[str], round_no: int) -> None:
        """Note the cases read directly in round ``round_no`` (they are no longer pending).

        :param cases: the cases read.
        :param round_no: the round.
        """
        for case in cases:
            self._pending.pop(case, None)
            self._read_in[case] = round_no
