"""A full read of the queue reuses the previous read's packed tasks (``triggers.reads.ListedIds.tasks``): only new
or changed tasks are new objects, so the queue's strings are held once, not once per read."""

from __future__ import annotations

from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.reads import ListedIds, read_queue


async def test_an_unchanged_task_is_the_same_object_in_the_next_read(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:300"})
    listed = ListedIds()
    async with DebituraAsyncHook() as hook:
        first = await read_queue(hook, listed=listed)
        solved = first.batch.open[0][0]
        debitura_conn.control("POST", f"/tasks/{solved}/solve")
        second = await read_queue(hook, listed=listed, pages_hint=3)
    assert first.verified and second.verified and first.requests == 5 and second.requests == 3  # probe, 3 pages, page 4
    before = {t[0]: t for t in first.batch.open}
    after = {t[0]: t for t in second.batch.open}
    assert solved not in after and len(after) == 299
    assert all(after[i] is before[i] for i in after)  # the same objects, not equal copies
    assert set(listed.tasks) == set(after)  # what the next read reuses: this read's open tasks only
