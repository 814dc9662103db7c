"""What a new-task watcher has already seen, and the rules that decide what is new.

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

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Protocol

from airflow.providers.common.compat.sdk import Variable
from pydantic import JsonValue, TypeAdapter, ValidationError

from airflow_provider_debitura.models import RejectedRecord, is_open_status
from airflow_provider_debitura.supervisor import call_airflow

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

FORGET_AFTER_INTERVALS = 3.0
"""An id with no usable ``dateCreated`` is forgotten after this many ``poll_interval`` of wall-clock
absence, measured across listings that could be trusted (not by counting rounds)."""

SUDDEN_DROP_FORGET_INTERVALS = 30.0
"""The same, for ids that vanished in a sudden drop (see :data:`SUDDEN_DROP_SHARE`)."""

SUDDEN_DROP_SHARE = 0.5
SUDDEN_DROP_MIN = 3
"""A listing that drops at least this share (and this many) of the tracked ids at once is not trusted
for forgetting quickly: the queue emptying all at once is more often a hiccup than real work."""

PERSIST_GRACE = 30.0
"""Seconds a fired task stays out of the stored state. Airflow stores a trigger's events shortly after
they are yielded, and silently drops those of a trigger that a redeploy replaced meanwhile
(``Trigger.submit_event``); a task fired within this window before a crash or a redeploy fires again
(at least once) instead of being lost."""

HEARTBEAT_SECONDS = 600.0
"""A running watcher saves at least this often (and when it stops), so its mark stays fresh."""

STALE_AFTER = 7 * 86400.0
"""A mark no watcher has saved for this long belongs to a watcher that is gone: it is removed."""

FILTER_CHANGE_MARGIN = 600.0
"""At a filter change, what the new filter newly watches counts as backlog only if it was created this many
seconds before the previous filter last listed the queue; anything later fires. A deploy reaches the
triggerer minutes after the file changes (Airflow's default parsing intervals), and tasks created in
between must not be lost."""

SUPERSEDE_TOLERANCE = 600.0
"""A mark is superseded when a mark of another filter on the same connection was created after its
last save, less this tolerance (a deploy stops the old trigger a little after starting the new one)."""

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

TaskJson = Mapping[str, object]
"""One task as the API returns it (camelCase JSON object)."""


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


def canonical_guid(value: object) -> str | None:
    """The lower-case 8-4-4-4-12 form of a GUID (braces and hyphens optional), or None when ``value`` is not one.

    :param value: a task's ``id`` as the API sent it.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().strip("{}").lower()
    if _GUID.match(text):
        return text
    if _HEX32.match(text):
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return None


def created_epoch(value: object) -> float | None:
    """``dateCreated`` as POSIX seconds (naive means UTC, as elsewhere in this provider); None if unusable.

    :param value: a task's ``dateCreated`` as the API sent it.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        stamp = datetime.fromisoformat(text)  # the common case: fast, and what the models emit
    except ValueError:
        try:  # what Python 3.10's parser refuses but the API may send (e.g. .NET's 7 fractional digits)
            stamp = _datetime_parser().validate_python(value)
        except ValidationError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


@functools.cache
def _datetime_parser() -> TypeAdapter[datetime]:
    return TypeAdapter(datetime)


def encode_ids(ids: Iterable[str]) -> str:
    """Sorted GUIDs as base64 of their 16 raw bytes each (21.3 characters per id).

    :param ids: canonical GUIDs (see :func:`canonical_guid`).
    """
    raw = b"".join(sorted(bytes.fromhex(task_id.replace("-", "")) for task_id in ids))
    return base64.b64encode(raw).decode("ascii")


def decode_ids(text: object) -> list[str]:
    """The inverse of :func:`encode_ids`; raises ValueError for anything it did not write.

    :param text: what :func:`encode_ids` returned.
    """
    if not isinstance(text, str):
        raise ValueError("stored ids are not a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"stored ids are not base64: {exc}") from None
    if len(raw) % 16:
        raise ValueError("stored ids are not a whole number of GUIDs")
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, len(h), 32)
    ]


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
        if self.types is not None and task.get("type") not in self.types:
            return False
        return self.case_id is None or str(task.get("caseId") or "").lower() == self.case_id

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


@dataclass
class RoundOutcome:
    """What one listing meant to a watcher.

    :param new: tasks to fire for, oldest first.
    :param backlog: tasks recorded as seen without an event (first start, or newly watched by a filter change).
    :param start: "first start", "filter change" or None (a normal round).
    :param forgotten: ids dropped from the state this round.
    :param unusable: descriptions of records newly found unusable (reported once, never fired).
    """

    new: list[TaskJson] = field(default_factory=list)
    backlog: int = 0
    start: str | None = None
    forgotten: int = 0
    unusable: list[str] = field(default_factory=list)


@dataclass
class _Start:
    """How the first complete round of a (re)started mark treats tasks it has not seen."""

    label: str
    base: float | None
    """Newly watched tasks created at or before this are backlog (the previous filter's last listing less
    :data:`FILTER_CHANGE_MARGIN`); None with no ``others``: every unseen task is (first start)."""
    others: tuple[Mark, ...]
    """Marks of the filters that ran before on this connection: a task one of them matches is new, not backlog."""


@dataclass
class _Scan:
    """One listing, sorted out: what is new, what is merely covered, and what it tells about time."""

    present: set[str] = field(default_factory=set)
    """Ids of seen tasks the listing holds (for forgetting)."""
    covered: set[str] = field(default_factory=set)
    """Ids a watermark covers (a cache: next round they are skipped with one set lookup)."""
    newest: float | None = None
    """The newest ``dateCreated`` among the tasks placed this round, and the newest stored one (less an hour
    group) among the already-seen ones it listed."""
    new: list[tuple[float, str, TaskJson]] = field(default_factory=list)
    backlog: int = 0

    def saw(self, created: float | None) -> None:
        if created is not None and (self.newest is None or created > self.newest):
            self.newest = created


_UNSEEN = -math.inf
"""``ids.get`` default meaning "not in the state" (no stored ``dateCreated`` is minus infinity)."""


class SeenTracker:
    """A running watcher's memory: decides which listed tasks are new and keeps the state small.

    :param watch: the watcher's filter.
    :param state: what the store returned (an empty state when nothing was stored).
    :param poll_interval: the watcher's own interval; ids with no ``dateCreated`` are forgotten after a
        multiple of it.
    :param replay_existing: fire for the backlog instead of recording it (first start, filter change).
    :param now: local POSIX seconds.
    """

    def __init__(
        self, watch: WatchFilter, state: SeenState, *, poll_interval: float, replay_existing: bool, now: float
    ) -> None:
        self.watch = watch
        self.state = state
        self.poll_interval = poll_interval
        self.replay_existing = replay_existing
        self.dirty = False
        self._fired: dict[str, tuple[float, float | None]] = {}
        """Ids fired less than :data:`PERSIST_GRACE` ago: when, and their ``dateCreated``."""
        self._missing: dict[str, tuple[float, float]] = {}
        """Undated ids absent from the last complete listings: when first missed, and their forget window."""
        self._reported: set[str] = set()
        self._covered: set[str] = set()
        self._pending: float | None = None
        """The newest ``dateCreated`` placed by incomplete listings since the last complete one."""
        self._marks: list[Mark] = []
        self._start = self._begin(now)

    @property
    def mark(self) -> Mark:
        """This watcher's own mark in the state."""
        return self.state.marks[self.watch.key]

    @property
    def start(self) -> str:
        """How this run began: "first start", "filter change" or "resumed" (until the first complete round)."""
        return self._start.label if self._start is not None else "resumed"

    def _begin(self, now: float) -> _Start | None:
        key = self.watch.key
        mark = self.state.marks.get(key)
        if mark is not None and not self.state.superseded(mark):
            return None
        others = tuple(m for k, m in self.state.marks.items() if k != key and m.watch.conn_id == self.watch.conn_id)
        if mark is None:
            self.state.marks[key] = Mark(self.watch, created=now, saved=now)
        else:  # a revert: this filter was replaced and is back; it starts over against its replacement
            mark.created = now
        self.dirty = True
        if not others:
            return _Start("first start", None, ())
        lines = [m.listed if m.listed is not None else m.hi for m in others]
        last = max((x for x in lines if x is not None), default=None)
        return _Start("filter change", None if last is None else last - FILTER_CHANGE_MARGIN, others)

    def observe(self, tasks: Iterable[TaskJson], *, complete: bool, now: float) -> RoundOutcome:
        """Classify one listing's open tasks: new (fire), backlog (record only) or already seen.

        :param tasks: the open tasks the round read (JSON); tasks outside the filter are ignored.
        :param complete: the listing holds every task open throughout it. Only such a listing starts a
            watcher, moves its watermark or counts toward forgetting.
        :param now: local POSIX seconds.
        """
        outcome = RoundOutcome()
        if self._start is not None and not complete:
            return outcome  # the backlog is recorded from a complete listing only
        self._marks = [m for m in self.state.marks.values() if m.watch.conn_id == self.watch.conn_id]
        scan = self._scan(tasks, outcome)
        for created, task_id, _ in scan.new:
            self._fired[task_id] = (now, created if created != math.inf else None)
        if complete:
            scan.saw(self._pending)
            self._pending = None
            self._advance(scan.newest, now)
            outcome.forgotten = self._forget_absent(scan.present, now)
            outcome.start = self._start.label if self._start is not None else None
            self._start = None
            self._covered = scan.covered
        else:
            self._covered |= scan.covered
            scan.saw(self._pending)
            self._pending = scan.newest  # what an incomplete listing placed anchors hi at the next complete one
        dropped = self.state.prune(now, self.watch.key)
        self._covered.update(dropped)
        outcome.forgotten += len(dropped)
        self.dirty = self.dirty or outcome.forgotten > 0
        return outcome

    def save_due(self, now: float) -> bool:
        """Whether the state should be written now: it changed, fired ids left the grace period, or the
        heartbeat is due.

        :param now: local POSIX seconds.
        """
        settled = any(now - at >= PERSIST_GRACE for at, _ in self._fired.values())
        return self.dirty or settled or now - self.mark.saved >= HEARTBEAT_SECONDS

    def snapshot(self, now: float) -> SeenState:
        """The state to write now: without the ids fired less than :data:`PERSIST_GRACE` ago.

        Their events may not be in Airflow's database yet (or ever, if the trigger was replaced
        meanwhile), so until then a restart or a redeploy must fire them again rather than lose them.

        :param now: local POSIX seconds.
        """
        self._fired = {task_id: fired for task_id, fired in self._fired.items() if now - fired[0] < PERSIST_GRACE}
        if not self._fired:
            return self.state
        ids = {task_id: created for task_id, created in self.state.ids.items() if task_id not in self._fired}
        marks = dict(self.state.marks)
        oldest = min((created for _, created in self._fired.values() if created is not None), default=None)
        mark = self.mark
        if oldest is not None and mark.cutoff is not None and mark.cutoff >= oldest:
            marks[self.watch.key] = replace(mark, cutoff=oldest - 1e-6)  # a replayed backlog's watermark covers them
        return SeenState(ids, marks, self.state.forgotten)

    def report(self, key: str, text: str, outcome: RoundOutcome) -> None:
        """Add ``text`` to the outcome's unusable records unless ``key`` was reported before.

        :param key: what identifies the record.
        :param text: how to describe it in the log.
        :param outcome: the round's outcome.
        """
        if key in self._reported:
            return
        if len(self._reported) >= 10_000:
            self._reported.clear()  # bounded memory; an odd record may be reported again after that
        self._reported.add(key)
        outcome.unusable.append(text)

    def _scan(self, tasks: Iterable[TaskJson], outcome: RoundOutcome) -> _Scan:
        scan = _Scan()
        ids, covered, matches = self.state.ids, self._covered, self.watch.matches
        seen_here, covered_here = scan.present, scan.covered
        top = _UNSEEN  # the newest stored dateCreated listed: it anchors hi too (see Mark.releases)
        for task in tasks:
            raw = task.get("id")
            if isinstance(raw, str):  # the bulk of a large queue: one or two set lookups per task
                if raw in covered:
                    covered_here.add(raw)
                    continue
                known = ids.get(raw, _UNSEEN)
                if known is not None and known != _UNSEEN:
                    seen_here.add(raw)
                    top = known if known > top else top
                    continue
            if not matches(task):
                continue
            task_id = raw if isinstance(raw, str) and raw in ids else canonical_guid(raw)
            if task_id is None:
                self.report(repr(raw), f"a {task.get('type')} task whose id {raw!r} is not a GUID", outcome)
                continue
            self._place(task_id, task, scan)
        if top != _UNSEEN:
            scan.saw(top - BUCKET_SECONDS)  # a stored dateCreated may be its hour group's end
        scan.new.sort(key=lambda item: (item[0], item[1]))
        outcome.new = [task for _, _, task in scan.new]
        outcome.backlog = scan.backlog
        return scan

    def _place(self, task_id: str, task: TaskJson, scan: _Scan) -> None:
        ids = self.state.ids
        known = ids.get(task_id, _UNSEEN)
        if known is not None and known != _UNSEEN:
            scan.present.add(task_id)
            return
        created = created_epoch(task.get("dateCreated"))
        scan.saw(created)
        if known is None:  # seen, but its age was unknown (a version-1 state): learn it
            scan.present.add(task_id)
            if created is not None:
                ids[task_id] = created
                self.dirty = True
            return
        if any(mark.covers(task, created) for mark in self._marks):
            scan.covered.add(task_id)
            return
        ids[task_id] = created
        self.dirty = True
        scan.present.add(task_id)
        if self._is_backlog(task, created):
            scan.backlog += 1
        else:
            scan.new.append((created if created is not None else float("inf"), task_id, task))

    def _is_backlog(self, task: TaskJson, created: float | None) -> bool:
        start = self._start
        if start is None or self.replay_existing:
            return False
        if not start.others:
            return True  # first start: the open queue is the baseline
        if any(mark.watch.matches(task) for mark in start.others):
            return False  # the previous filter watched it and never saw it: it is new since
        return created is None or start.base is None or created <= start.base

    def _advance(self, newest: float | None, now: float) -> None:
        mark = self.mark
        mark.listed = now  # saved with the next write (at the latest the heartbeat, or when the trigger stops)
        if newest is not None and (mark.hi is None or min(newest, now) > mark.hi):
            mark.hi = min(newest, now)  # a task dated in the future cannot drag the watermark ahead
            self.dirty = True
        if mark.hi is None:
            return
        # Also on a first start: the backlog's ids within the lag stay recorded, so a task that appears later
        # dated at or before the newest backlog task (clock skew, a shared second, a backdated task) is
        # judged by its id, not by its timestamp.
        target = mark.hi - WATERMARK_LAG
        if mark.cutoff is None or target > mark.cutoff:
            mark.cutoff = target
            self.dirty = True

    def _forget_absent(self, present: set[str], now: float) -> int:
        """Forget undated ids absent for long enough (by time, in this watcher's ``poll_interval``)."""
        ids = self.state.ids
        undated = [task_id for task_id, created in ids.items() if created is None]
        for task_id in [t for t in self._missing if t in present or ids.get(t, 0.0) is not None]:
            del self._missing[task_id]
        fresh = [task_id for task_id in undated if task_id not in present and task_id not in self._missing]
        sudden = len(fresh) >= SUDDEN_DROP_MIN and len(fresh) >= SUDDEN_DROP_SHARE * len(undated)
        window = self.poll_interval * (SUDDEN_DROP_FORGET_INTERVALS if sudden else FORGET_AFTER_INTERVALS)
        for task_id in fresh:
            self._missing[task_id] = (now, window)
        expired = [task_id for task_id, (since, wait) in self._missing.items() if now - since >= wait]
        for task_id in expired:
            del ids[task_id]
            del self._missing[task_id]
            self.state.forgotten.add(task_id)
        return len(expired)


# ------------------------------------------------------------------------------------------- stores


class SeenTasksStore(Protocol):
    """Where a watcher keeps its :class:`SeenState`.

    ``load`` returns None when nothing was stored yet and raises when the store cannot be read (the
    trigger then fires nothing until it can). ``save`` returns the size of what it wrote, in bytes.
    """

    async def load(self, watch: WatchFilter) -> SeenState | None:
        """The stored state ``watch`` reads (None: nothing stored yet).

        :param watch: the watcher's filter.
        """
        ...

    async def save(self, watch: WatchFilter, state: SeenState, now: float) -> int:
        """Write ``state``; returns the bytes written.

        :param watch: the watcher's filter.
        :param state: what to write (see :meth:`SeenTracker.snapshot`).
        :param now: local POSIX seconds.
        """
        ...


class AssetStateSlot(Protocol):
    """The part of Airflow 3.3's ``AssetStateStoreAccessor`` a watcher uses (one watched asset)."""

    async def aget(self, key: str, default: JsonValue = None) -> JsonValue:
        """The value under ``key``.

        :param key: the state key.
        :param default: returned when nothing is stored.
        """
        ...

    async def aset(self, key: str, value: JsonValue) -> None:
        """Store ``value`` under ``key``.

        :param key: the state key.
        :param value: a JSON value (not None).
        """
        ...

    async def adelete(self, key: str) -> None:
        """Remove ``key``.

        :param key: the state key.
        """
        ...


def with_legacy_mark(state: SeenState | None, watch: WatchFilter, now: float) -> SeenState | None:
    """A version-1 state (ids, no marks) read under ``watch``'s own key gets ``watch``'s mark, so it resumes.

    :param state: what was loaded.
    :param watch: the filter whose key it was loaded from.
    :param now: local POSIX seconds.
    """
    if state is not None and not state.marks:
        state.marks[watch.key] = Mark(watch, created=0.0, saved=now)
    return state


def dumps(value: JsonValue) -> str:
    """Compact JSON, as stored.

    :param value: the JSON value.
    """
    return json.dumps(value, separators=(",", ":"))


class AirflowSeenTasksStore:
    """The real store: every watched asset's state store (Airflow 3.3+), else a Variable per filter.

    :param trigger: the running trigger; its ``asset_state_store`` is read at call time, because the
        triggerer injects it after ``__init__``.
    """

    def __init__(self, trigger: object) -> None:
        self._trigger = trigger
        self._legacy_keys: set[str] = set()
        """Version-1 keys found in an asset store: deleted after the first save of the new state."""

    def _slots(self) -> list[AssetStateSlot]:
        stores = getattr(self._trigger, "asset_state_store", None)
        if stores is None:
            return []
        # One trigger may feed several assets (identical watchers are de-duplicated by Airflow);
        # AssetStateStoreAccessors has no public way to list them, so read its two maps defensively.
        slots = [*getattr(stores, "_by_name", {}).values(), *getattr(stores, "_by_uri", {}).values()]
        return slots or [stores]

    @property
    def backend(self) -> str:
        """ "asset_state_store" or "variable"."""
        return "asset_state_store" if self._slots() else "variable"

    async def load(self, watch: WatchFilter) -> SeenState | None:
        """The state of ``watch``'s asset(s), or its Variable.

        :param watch: the watcher's filter.
        """
        now = time.time()
        slots = self._slots()
        if not slots:
            stored = SeenState.from_json(await call_airflow(_variable_get, watch.key))
            return with_legacy_mark(stored, watch, now)
        values = [await slot.aget(ASSET_STATE_KEY, None) for slot in slots]
        merged = await asyncio.to_thread(_decode_merged, values)
        if merged is None or watch.key not in merged.marks:
            legacy = _decode_merged([await slot.aget(watch.key, None) for slot in slots])
            if legacy is not None:
                self._legacy_keys.add(watch.key)
                merged = SeenState.merge([merged, with_legacy_mark(legacy, watch, now)])
        return merged

    async def save(self, watch: WatchFilter, state: SeenState, now: float) -> int:
        """Write ``state`` (merged with what other watchers of the same asset stored meanwhile).

        :param watch: the watcher's filter.
        :param state: its state.
        :param now: local POSIX seconds.
        """
        slots = self._slots()
        if not slots:
            text = await asyncio.to_thread(lambda: dumps(state.to_json()))
            await call_airflow(_variable_set, watch.key, text)
            return len(text)
        size = 0
        for slot in slots:
            stored = await slot.aget(ASSET_STATE_KEY, None)
            payload, text = await asyncio.to_thread(_payload_for_save, state, stored, watch.key, now)
            size = max(size, len(text))
            await slot.aset(ASSET_STATE_KEY, payload)
        for key in list(self._legacy_keys):
            for slot in slots:
                await slot.adelete(key)
            self._legacy_keys.discard(key)
        return size


def _decode_merged(values: Iterable[JsonValue]) -> SeenState | None:
    return SeenState.merge(SeenState.from_json(value) for value in values)


def _payload_for_save(state: SeenState, stored: JsonValue, keep: str, now: float) -> tuple[JsonValue, str]:
    """Off the event loop: encoding 20,000 ids takes tens of milliseconds."""
    payload = state.merged_for_save(SeenState.from_json(stored), keep, now).to_json()
    return payload, dumps(payload)


def _variable_get(key: str) -> str | None:
    value = Variable.get(key, default=None)
    return None if value is None else str(value)


def _variable_set(key: str, value: str) -> None:
    Variable.set(key, value, description="Debitura new-task watcher: what it has seen (do not edit).")
