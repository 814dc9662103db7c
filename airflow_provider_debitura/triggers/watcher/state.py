"""What a new-task watcher has already seen: the stored state (seen ids, one mark per filter) and its format.

The state a watcher keeps (see ``docs/event-driven.md`` for the semantics and the reasoning):

- **Seen ids**: the tasks it fired for or recorded as backlog, 16 raw bytes per GUID, base64, grouped
  by the hour of their ``dateCreated``.
- **A watermark per filter** (:class:`Mark`): every task the filter matches that was created at or
  before ``cutoff`` has been seen. It trails the newest task listed by :data:`WATERMARK_LAG`, also on a
  first start, so the ids behind it can be dropped: a backlog costs one number plus the ids of the
  tasks created within the lag before its newest one (those are judged by id, so a task that appears
  later dated before the newest backlog task still fires).

A seen id is never dropped because its task is missing from a listing (an empty 200 from a proxy, a
hiccup): it is dropped once every live mark is done with it (:meth:`Mark.releases`: its watermark passed
the id's creation time, or it listed the queue long after it without anything that new), so no number of
odd listings makes a task fire twice, and a mark whose filter matches nothing holds nothing back. Ids
with no usable ``dateCreated`` are the exception: they are forgotten after
:data:`FORGET_AFTER_INTERVALS` of the watcher's own ``poll_interval`` of absence (longer after a
sudden drop).

Where it lives: Airflow 3.3+ keeps it in the watched asset's **asset state store** under
:data:`ASSET_STATE_KEY`, one value per asset shared by every watcher of that asset (so a filter change
keeps what was fired); otherwise (Airflow 3.0-3.2) in a **Variable** per watcher filter. Unit tests use
``tests/helpers/seen_store.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from airflow_provider_debitura.gate.records import CASE_ID, TASK_TYPE, PackedTask
from airflow_provider_debitura.models import RejectedRecord, is_open_status
from airflow_provider_debitura.triggers.watcher.ids import (
    TaskJson,
    canonical_guid,
    created_epoch,
    decode_ids,
    encode_ids,
)

log = logging.getLogger(__name__)

STATE_VERSION = 2
ASSET_STATE_KEY = "debitura_new_tasks"
"""The one key a watcher uses in an asset's state store (Airflow 3.3+), whatever its filter."""
KEY_PREFIX = ASSET_STATE_KEY

WATERMARK_LAG = 6 * 3600.0
"""Seconds the watermark trails the newest ``dateCreated`` listed. It must exceed the time a listing
takes plus any delay between a task's creation and its first appearance; a task that first appears
open more than this long after its ``dateCreated`` is counted as already seen."""

BUCKET_SECONDS = 3600
"""Stored ids are grouped by the hour of their ``dateCreated``; a group is dropped once the watermark passes it."""

STALE_AFTER = 7 * 86400.0
"""A mark no watcher has saved for this long belongs to a watcher that is gone: it is removed."""


SUPERSEDE_TOLERANCE = 600.0
"""A mark is superseded when a mark of another filter on the same connection was created after its
last save, less this tolerance (a deploy stops the old trigger a little after starting the new one)."""


def watcher_key(conn_id: str, task_types: Iterable[str] | None, case_id: str | None) -> str:
    """A stable key per watcher *filter*: a mark's name, and the Variable's name on Airflow 3.0-3.2.

    :param conn_id: the watcher's connection id.
    :param task_types: its type filter (order does not matter), None for every type.
    :param case_id: its case filter (a normalised GUID), None for any case.
    """
    identity = json.dumps(
        {"conn": conn_id, "types": sorted(task_types) if task_types is not None else None, "case": case_id},
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{KEY_PREFIX}__{conn_id}__{digest}"


@dataclass(frozen=True)
class WatchFilter:
    """What one watcher watches.

    :param conn_id: the Airflow connection (one Debitura account).
    :param types: only tasks of these types; None for every type.
    :param case_id: only tasks of this case (normalised GUID); None for any case.
    """

    conn_id: str
    types: tuple[str, ...] | None = None
    case_id: str | None = None

    @property
    def key(self) -> str:
        """This filter's mark name (see :func:`watcher_key`)."""
        return watcher_key(self.conn_id, self.types, self.case_id)

    def matches(self, task: TaskJson) -> bool:
        """Whether an open task passes the filter (a missing status counts as open, as everywhere).

        :param task: the task's JSON (only ``status``, ``type`` and ``caseId`` are read).
        """
        status = task.get("status")
        if not is_open_status(status if isinstance(status, str) else None):
            return False
        return self._wants(task.get("type"), task.get("caseId"))

    def matches_compact(self, task: PackedTask) -> bool:
        """Whether an open task as the shared poll keeps it (open by construction) passes the filter: the same
        rule as :meth:`matches`, read from the packed tuple without building its JSON.

        :param task: the packed task.
        """
        return self._wants(task[TASK_TYPE], task[CASE_ID])

    def _wants(self, task_type: object, case_id: object) -> bool:
        if self.types is not None and task_type not in self.types:
            return False
        return self.case_id is None or str(case_id or "").lower() == self.case_id

    def may_match(self, record: RejectedRecord) -> bool:
        """Whether a record the listing could not read might be a task this filter watches.

        :param record: the rejected record (what could still be read of it).
        """
        if self.types is not None and not record.type_unreadable and record.type not in self.types:
            return False
        if self.case_id is None or record.case_id_unreadable:
            return True
        return (record.case_id or "").lower() == self.case_id

    def to_json(self) -> dict[str, JsonValue]:
        """The filter as stored in a mark."""
        return {
            "conn": self.conn_id,
            "types": list(self.types) if self.types is not None else None,
            "case": self.case_id,
        }

    @classmethod
    def from_json(cls, value: object) -> WatchFilter:
        """Raises ValueError for a value this module did not write.

        :param value: what :meth:`to_json` returned.
        """
        if not isinstance(value, Mapping) or not isinstance(value.get("conn"), str):
            raise ValueError(f"not a watcher filter: {value!r}")
        types, case = value.get("types"), value.get("case")
        if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
            raise ValueError(f"bad types in watcher filter: {types!r}")
        if case is not None and not isinstance(case, str):
            raise ValueError(f"bad case in watcher filter: {case!r}")
        return cls(value["conn"], tuple(types) if types is not None else None, case)


@dataclass
class Mark:
    """One filter's watermark in a stored state.

    :param watch: the filter.
    :param created: when this filter first ran on this state (local POSIX seconds).
    :param saved: when a watcher with this filter last saved (local POSIX seconds).
    :param hi: the newest ``dateCreated`` it listed (capped at the local clock; for a task already in the
        state, the start of its stored hour group), None before any.
    :param cutoff: every task the filter matches created at or before this was seen; None: none is covered.
    :param listed: when it last read a complete listing (local POSIX seconds): where a filter change
        that follows it draws the line between backlog and new for what it newly watches.
    """

    watch: WatchFilter
    created: float
    saved: float
    hi: float | None = None
    cutoff: float | None = None
    listed: float | None = None

    def covers(self, task: TaskJson, created: float | None) -> bool:
        """Whether this mark already accounts for ``task`` (created at ``created``).

        :param task: the task's JSON.
        :param created: its ``dateCreated`` in POSIX seconds, None when unknown.
        """
        return created is not None and self.cutoff is not None and created <= self.cutoff and self.watch.matches(task)

    def releases(self) -> tuple[float, float, float]:
        """When this mark is done with a stored id created at ``c`` (an upper bound): ``(a, b, hi_gap)``.

        It is done with the id when ``c <= a`` (its watermark covers it) or when ``hi_gap < c <= b``: it
        listed the queue more than :data:`WATERMARK_LAG` after the id's task was created, and nothing it
        listed was that new, so the task is not one it matches (or it is no longer open). ``hi_gap`` is
        ``hi`` plus two hour groups, because a stored ``dateCreated`` is its hour group's end and the
        listed ids anchor ``hi`` at their group's start. A mark that matches nothing holds back nothing
        older than its last listing less the lag.
        """
        a = self.cutoff if self.cutoff is not None else -math.inf
        b = self.listed - WATERMARK_LAG if self.listed is not None else -math.inf
        gap = self.hi + 2 * BUCKET_SECONDS if self.hi is not None else -math.inf
        return a, b, gap

    def to_json(self) -> dict[str, JsonValue]:
        """The mark as stored."""
        return {
            **self.watch.to_json(),
            "created": self.created,
            "saved": self.saved,
            "hi": self.hi,
            "cutoff": self.cutoff,
            "listed": self.listed,
        }

    @classmethod
    def from_json(cls, value: object) -> Mark:
        """Raises ValueError (or TypeError) for a value this module did not write.

        :param value: what :meth:`to_json` returned.
        """
        if not isinstance(value, Mapping):
            raise ValueError(f"not a mark: {value!r}")
        hi, cutoff, listed = value.get("hi"), value.get("cutoff"), value.get("listed")
        return cls(
            WatchFilter.from_json(value),
            float(value["created"]),
            float(value["saved"]),
            None if hi is None else float(hi),
            None if cutoff is None else float(cutoff),
            None if listed is None else float(listed),
        )


@dataclass
class SeenState:
    """Seen task ids (with their ``dateCreated`` when known) and the marks of the filters that ran.

    :param ids: canonical GUID to ``dateCreated`` in POSIX seconds (None when unknown).
    :param marks: by :attr:`WatchFilter.key`.
    """

    ids: dict[str, float | None] = field(default_factory=dict)
    marks: dict[str, Mark] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set, compare=False, repr=False)
    """Ids forgotten for absence since this state was loaded: a merge with the stored value must not bring them back."""

    def to_json(self) -> dict[str, JsonValue]:
        """The state as stored: ``{"v": 2, "marks": {...}, "ids": {hour: base64}, "undated": base64}``."""
        buckets: dict[int, list[str]] = defaultdict(list)
        undated: list[str] = []
        for task_id, created in self.ids.items():
            if created is None:
                undated.append(task_id)
            else:
                # the group whose end is the first at or after it, so a reloaded age (a group's end) stays put
                buckets[math.ceil(created / BUCKET_SECONDS) - 1].append(task_id)
        return {
            "v": STATE_VERSION,
            "marks": {key: mark.to_json() for key, mark in sorted(self.marks.items())},
            "ids": {str(hour): encode_ids(group) for hour, group in sorted(buckets.items())},
            "undated": encode_ids(undated),
        }

    @classmethod
    def from_json(cls, value: object) -> SeenState | None:
        """None for "no state yet" (nothing stored, or a value this module did not write).

        A version-1 value (``{"v": 1, "ids": {id: first_seen}}``) loads as ids of unknown age with no mark.

        :param value: the stored JSON (a string is parsed first).
        """
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, Mapping):
            return None
        try:
            if value.get("v") == 1 and isinstance(value.get("ids"), Mapping):
                return cls({tid: None for tid in map(canonical_guid, value["ids"]) if tid is not None})
            if value.get("v") != STATE_VERSION:
                return None
            return cls._from_v2(value)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("Debitura watcher: ignoring a stored state it cannot read (%s)", exc)
            return None

    @classmethod
    def _from_v2(cls, value: Mapping[str, object]) -> SeenState:
        ids: dict[str, float | None] = {}
        buckets = value.get("ids")
        if not isinstance(buckets, Mapping):
            raise ValueError("ids is not an object")
        for hour, text in buckets.items():
            upper = (int(hour) + 1) * BUCKET_SECONDS  # the group's end: never drops an id too early
            ids.update(dict.fromkeys(decode_ids(text), float(upper)))
        ids.update(dict.fromkeys(decode_ids(value.get("undated", "")), None))
        marks = value.get("marks")
        if not isinstance(marks, Mapping):
            raise ValueError("marks is not an object")
        return cls(ids, {str(key): Mark.from_json(mark) for key, mark in marks.items()})

    @staticmethod
    def merge(states: Iterable[SeenState | None]) -> SeenState | None:
        """Union of several stored states (one per watched asset, or stored + in memory); None when none exists.

        :param states: the states; for a mark present in several, the most recently saved one wins.
        """
        merged: SeenState | None = None
        for state in states:
            if state is None:
                continue
            if merged is None:
                merged = SeenState()
            for task_id, created in state.ids.items():
                known = merged.ids.get(task_id)
                merged.ids[task_id] = created if known is None else max(known, created or known)
            for key, mark in state.marks.items():
                if key not in merged.marks or mark.saved > merged.marks[key].saved:
                    merged.marks[key] = mark
        return merged

    def merged_for_save(self, stored: SeenState | None, keep: str, now: float) -> SeenState:
        """This (running) state combined with what is stored now, pruned: what a save writes.

        Other watchers of the same asset keep their marks and ids; ids this one forgot stay forgotten.

        :param stored: the value in the store at save time (None when there is none).
        :param keep: the running watcher's mark key.
        :param now: local POSIX seconds.
        """
        merged = SeenState.merge([stored, self])
        assert merged is not None
        for task_id in self.forgotten:
            merged.ids.pop(task_id, None)
        merged.marks[keep] = self.marks[keep]
        merged.prune(now, keep)
        return merged

    def superseded(self, mark: Mark) -> bool:
        """Whether a mark of another filter on the same connection was created after ``mark`` last saved.

        :param mark: one of this state's marks.
        """
        return any(
            other is not mark
            and other.watch.conn_id == mark.watch.conn_id
            and other.created > mark.saved - SUPERSEDE_TOLERANCE
            for other in self.marks.values()
        )

    def prune(self, now: float, keep: str) -> list[str]:
        """Drop stale marks and the dated ids every live mark's watermark has passed; returns the ids dropped.

        :param now: local POSIX seconds.
        :param keep: the running watcher's mark, never stale and never superseded.
        """
        for key in [k for k, m in self.marks.items() if k != keep and m.saved < now - STALE_AFTER]:
            del self.marks[key]
        live = [m.releases() for k, m in self.marks.items() if k == keep or not self.superseded(m)]
        if not live:
            return []
        # Per mark: an id goes once every live mark is done with it (see Mark.releases), so a mark whose
        # watermark never moves (its filter matches nothing) does not keep the others' ids forever.
        bound = min(max(a, b) for a, b, _ in live)  # above this, some mark is certainly not done: one compare
        gone = [
            task_id
            for task_id, created in self.ids.items()
            if created is not None
            and created <= bound
            and all(created <= a or gap < created <= b for a, b, gap in live)
        ]
        for task_id in gone:
            del self.ids[task_id]
        return gone


__all__ = [
    "ASSET_STATE_KEY",
    "BUCKET_SECONDS",
    "KEY_PREFIX",
    "STALE_AFTER",
    "STATE_VERSION",
    "SUPERSEDE_TOLERANCE",
    "WATERMARK_LAG",
    "Mark",
    "SeenState",
    "TaskJson",
    "WatchFilter",
    "canonical_guid",
    "created_epoch",
    "decode_ids",
    "encode_ids",
    "watcher_key",
]
