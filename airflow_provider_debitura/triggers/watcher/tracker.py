"""The rules that decide what a watcher fires: :class:`SeenTracker` classifies each round's tasks as new,
backlog or already seen against the stored :class:`~.state.SeenState` (see ``docs/event-driven.md``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from airflow_provider_debitura.triggers.watcher.ids import TaskJson, canonical_guid, created_epoch
from airflow_provider_debitura.triggers.watcher.state import BUCKET_SECONDS, WATERMARK_LAG, Mark, SeenState, WatchFilter

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


FILTER_CHANGE_MARGIN = 600.0
"""At a filter change, what the new filter newly watches counts as backlog only if it was created this many
seconds before the previous filter last listed the queue; anything later fires. A deploy reaches the
triggerer minutes after the file changes (Airflow's default parsing intervals), and tasks created in
between must not be lost."""


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

    def observe(self, tasks: Iterable[TaskJson], *, complete: bool, now: float, tail: bool = False) -> RoundOutcome:
        """Classify one listing's open tasks: new (fire), backlog (record only) or already seen.

        :param tasks: the open tasks the round read (JSON); tasks outside the filter are ignored.
        :param complete: the listing holds every task open throughout it. Only such a listing starts a
            watcher, moves its watermark or counts toward forgetting.
        :param now: local POSIX seconds.
        :param tail: the tasks are the end of the queue, which a tail read proved holds every task new since the
            last complete listing (:mod:`.tail`): complete as to what is new (the watermark moves), but the
            older tasks are not in it, so it starts no watcher and counts nothing toward forgetting.
        """
        outcome = RoundOutcome()
        if self._start is not None and (tail or not complete):
            return outcome  # the backlog is recorded from a whole complete listing only
        self._marks = [m for m in self.state.marks.values() if m.watch.conn_id == self.watch.conn_id]
        scan = self._scan(tasks, outcome)
        for created, task_id, _ in scan.new:
            self._fired[task_id] = (now, created if created != math.inf else None)
        if complete:
            scan.saw(self._pending)
            self._pending = None
            self._advance(scan.newest, now)
            if tail:
                self._covered |= scan.covered
            else:
                outcome.forgotten = self._forget_absent(scan.present, now)
                self._covered = scan.covered
            outcome.start = self._start.label if self._start is not None else None
            self._start = None
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
