"""A full read of the queue reuses the previous read's compact tasks (``triggers.reads.ListedIds.tasks``).

``CompactTask`` is a NamedTuple, which Python's collector keeps tracking (it untracks exact tuples only); a read that
built every task anew would age thousands of tracked objects into the oldest generation every round
(``bench/compact_task.py``). Only new or changed tasks are new objects.
"""

from __future__ import annotations

from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.reads import ListedIds, read_queue


async def test_an_unchanged_task_is_the_same_object_in_the_next_read(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:300"})
    listed = ListedIds()
    async with DebituraAsyncHook() as hook:
        first = await read_queue(hook, listed=listed)
        solved = first.batch.open[0]
        debitura_conn.control("POST", f"/tasks/{solved.id}/solve")
        second = await read_queue(hook, listed=listed, pages_hint=3)
    assert first.verified and second.verified and first.requests == 5 and second.requests == 3  # probe, 3 pages, page 4
    before = {t.id: t for t in first.batch.open}
    after = {t.id: t for t in second.batch.open}
    assert solved.id not in after and len(after) == 299
    assert all(after[i] is before[i] for i in after)  # the same objects, not equal copies
    assert set(listed.tasks) == set(after)  # what the next read reuses: this read's open tasks only
