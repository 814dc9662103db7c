"""A shared poll's full read as the watcher reads it: full JSON records parsed page by page while the tracker
iterates them (in its worker thread), never all of them at once on the event loop.

At 50,000 open tasks, building every record of a full read as a dict took ~0.4 s on the loop (the watcher's
first round, which records the queue as backlog) and held ~100 MB of dicts until the round was judged. Parsed
lazily, only the page being read and the tasks the round fires are alive; see ``docs/triggerer-scale.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from airflow_provider_debitura.gate.records import TASK_ID
from airflow_provider_debitura.triggers.watcher.ids import TaskJson

if TYPE_CHECKING:
    from airflow_provider_debitura.gate import AccountSnapshot
    from airflow_provider_debitura.triggers.watcher.state import WatchFilter


class SnapshotRecords:
    """The open tasks of a full read that ``watch`` matches, as the API sent them, plus ``extra`` tasks it lacks.

    The same records as ``snapshot.records(ids)`` followed by the extras: each task once, its latest copy (a task
    shifted onto a page read later shows twice: the later copy wins). They come last page first, so that the
    first copy met is the latest; the watcher's tracker does not depend on the order (it sorts what it fires).
    They can be iterated once (the tracker does): a complete pass lets go of the pages, so that a round the
    trigger keeps (``last_round``) does not hold the read's JSON; :attr:`counted` is the count of that pass (no
    ``len()``: counting would need a pass of its own).

    :param snapshot: a full read of the shared poll, with its pages (a subscriber that asked for records).
    :param watch: the watcher's filter (matched on the compact tasks, as ``matches_compact``).
    :param extra: tasks read directly that the full read may lack (the tail read's, matching, open).
    """

    def __init__(self, snapshot: AccountSnapshot, watch: WatchFilter, extra: Sequence[TaskJson] = ()) -> None:
        self._pages = snapshot.pages
        self._tasks = snapshot.tasks
        self._watch = watch
        self._extra = tuple(extra)
        self._count: int | None = None

    def __iter__(self) -> Iterator[TaskJson]:
        if self._count is not None:
            raise RuntimeError("SnapshotRecords can be iterated once: its pages were let go after the first pass")
        matches = self._watch.matches_compact
        wanted = {task[TASK_ID] for task in self._tasks if matches(task)}
        given: set[str] = set()
        count = 0
        for task_id, record in self._page_records(wanted):
            if task_id not in given:
                given.add(task_id)
                count += 1
                yield record
        for task in self._extra:
            if task.get("id") not in given:
                count += 1
                yield task
        self._count = count
        self._pages, self._tasks, self._extra = (), (), ()

    def _page_records(self, wanted: set[str]) -> Iterator[tuple[str, TaskJson]]:
        if not wanted:
            return
        for text in reversed(self._pages):
            for record in reversed(json.loads(text) or ()):
                task_id = record.get("id") if isinstance(record, dict) else None
                if isinstance(task_id, str) and task_id in wanted:
                    yield task_id, record

    @property
    def counted(self) -> int | None:
        """The records the complete pass gave (None before it)."""
        return self._count
