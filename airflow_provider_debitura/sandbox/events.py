"""Scheduled events' bookkeeping: which event is due after a request, how often it fired, what went wrong.

Pure data; :class:`~.state.SandboxState` owns the lock and carries the actions out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_debitura.sandbox.scenario_models import EventSpec, RepeatMatch, RequestMatch


@dataclass
class Event:
    """One event and its state (``fired`` is true once it fired at least once).

    :param id: the event's id.
    :param spec: the validated event.
    :param fired_count: how often it fired.
    :param seen: matching requests counted.
    :param error: the last firing's error, if any.
    :param fired_at: the last firing's time.
    :param rng: the RNG of a ``random`` pick, seeded from the action.
    """

    id: str
    spec: EventSpec
    fired_count: int = 0
    seen: int = 0
    error: str | None = None
    fired_at: str | None = None
    rng: random.Random = field(default_factory=random.Random)

    @property
    def repeating(self) -> bool:
        """Whether it fires every N requests (``everyRequests``)."""
        return self.spec.at.everyRequests is not None

    @property
    def done(self) -> bool:
        """No more firing: a one-shot event that fired, or a repeating one that reached ``times``."""
        every = self.spec.at.everyRequests
        if every is None:
            return self.fired_count > 0
        return every.times is not None and self.fired_count >= every.times

    def counts(self, method: str, path: str, template: str | None) -> bool:
        """Count an answered request; True when that makes the event due.

        :param method: the request's method.
        :param path: the request's (decoded) path.
        :param template: the route template it matched, if any.
        """
        match: RequestMatch | RepeatMatch | None = self.spec.at.afterRequests or self.spec.at.everyRequests
        if match is None or self.done:
            return False
        if match.method and match.method.upper() != method:
            return False
        if match.path not in (path, template):
            return False
        self.seen += 1
        if self.repeating:
            return self.seen % match.count == 0
        return self.seen >= match.count

    def to_dict(self) -> dict[str, Any]:
        """The event as ``GET /_sandbox/events`` shows it."""
        at = self.spec.at.model_dump(exclude_none=True)
        for match in at.values():
            if isinstance(match, dict) and match.get("method"):
                match["method"] = match["method"].upper()
        out: dict[str, Any] = {
            "id": self.id,
            "at": at,
            "action": self.spec.action.model_dump(exclude_unset=True),
            "fired": self.fired_count > 0,
            "firedCount": self.fired_count,
            "seen": self.seen,
            "error": self.error,
        }
        if self.fired_at is not None:
            out["firedAt"] = self.fired_at
        return out


class EventBook:
    """The events of the current world, by id, in creation order (no parameters)."""

    def __init__(self) -> None:
        self._events: dict[str, Event] = {}

    def add(self, spec: EventSpec, event_id: str) -> Event:
        """Store a validated event.

        :param spec: the event.
        :param event_id: its id (``spec.id`` or a generated one); must be new.
        """
        if event_id in self._events:
            raise ValueError(f"duplicate event id {event_id!r}")
        seed = getattr(spec.action, "seed", 0)
        event = Event(id=event_id, spec=spec, rng=random.Random(seed))
        self._events[event_id] = event
        return event

    def get(self, event_id: str) -> Event | None:
        """The event with this id.

        :param event_id: its id.
        """
        return self._events.get(event_id)

    def due_after(self, method: str, path: str, template: str | None) -> list[Event]:
        """Count an answered request towards every request-driven event; the ones now due, in order.

        :param method: the request's method.
        :param path: the request's (decoded) path.
        :param template: the route template it matched, if any.
        """
        return [e for e in self._events.values() if e.counts(method, path, template)]

    def to_list(self) -> list[dict[str, Any]]:
        """Every event as ``GET /_sandbox/events`` shows it."""
        return [e.to_dict() for e in self._events.values()]
