"""The shared poll's side of the request budget: a round starts only when its expected cost fits the budget.

When the connection's budget (``hooks.budget``) cannot fit the requests a round is expected to send, the
round waits: the poll's rounds stretch beyond their interval, so gates and watchers answer later, never
wrongly (a round that does not run changes no verdict). It says so once per episode in the log, and once
when the budget fits again. ``docs/request-budget.md`` has the formulas.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Sequence

from airflow_provider_debitura.hooks.budget import RequestBudget
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook

log = logging.getLogger("airflow_provider_debitura.triggers.shared_poll")

RECENT_ROUNDS = 3
"""A round is expected to cost what the costliest of the last this-many rounds sent (1 before the first)."""


def expected_cost(recent: Sequence[int] | Iterable[int]) -> int:
    """The requests the next round is expected to send: the most of the last :data:`RECENT_ROUNDS` rounds.

    :param recent: requests of each round so far, oldest first.
    """
    history = list(recent)
    return max(1, *itertools.islice(reversed(history), RECENT_ROUNDS)) if history else 1


class RoundBudget:
    """Whether the shared poll of one connection may start a round now, and the one log line that says why not.

    :param conn_id: the connection, for the log.
    """

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.stretched = False
        """The last check found the budget too tight for a round at the poll's interval."""
        self.episodes = 0
        """Times the poll began to stretch its rounds (each logged once)."""
        self.checks = 0
        """Times the poll asked whether a round fits."""

    async def wait(self, hook: DebituraAsyncHook, recent: Iterable[int], interval: float) -> float:
        """Seconds until the next round's expected cost fits the budget; 0: start it now.

        :param hook: the poll's hook (its connection's budget).
        :param recent: requests each recent round sent.
        :param interval: the poll's interval (for the log).
        """
        try:
            budget = await hook.get_budget()
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken connection surfaces as the round's own answer
            return 0.0
        self.checks += 1
        cost = min(expected_cost(recent), budget.limits.at_once)  # a costlier round paces itself in the hook
        wait = budget.delay_for(cost)
        if wait > 0 and not self.stretched:
            self.stretched, self.episodes = True, self.episodes + 1
            log.warning(
                "Debitura connection %r: the request budget is tight: %s. The shared poll's next round (about %d "
                "request%s) starts in about %.0f s instead of %g s, and later rounds start when the budget fits "
                "them: gates and watchers answer later, never wrongly. docs/request-budget.md says what to change.",
                self.conn_id,
                budget.why(cost),
                cost,
                "" if cost == 1 else "s",
                wait,
                interval,
            )
        elif wait <= 0 and self.stretched and _fits_twice(budget, cost):
            self.stretched = False
            log.info(
                "Debitura connection %r: the request budget fits the shared poll again; rounds every %g s.",
                self.conn_id,
                interval,
            )
        return wait


def _fits_twice(budget: RequestBudget, cost: int) -> bool:
    """Room for two rounds: the poll is back to its interval, not just granted one more paced round (no log
    line per round while the pace decides)."""
    return budget.delay_for(2 * cost) <= 0
