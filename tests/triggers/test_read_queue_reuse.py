"""A full read of the queue reuses the previous read's packed tasks (``triggers.reads.LastReadTasks.tasks``): only new
or changed tasks are new objects, so the queue's strings are held once, not once per read."""

from __future__ import annotations

import gc

from airflow_provider_debitura.gate import AccountSnapshot
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.reads import LastReadTasks, read_queue


async def test_an_unchanged_task_is_the_same_object_in_the_next_read(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:300"})
    listed = LastReadTasks()
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


async def test_a_read_and_its_snapshot_hold_no_object_per_task_that_the_collector_tracks(debitura_conn):
    """What a triggerer keeps of a whole-queue read is plain tuples of strings, which the collector untracks: its
    full collections cost the same at any queue size (docs/triggerer-scale.md)."""
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})
    async with DebituraAsyncHook() as hook:
        read = await read_queue(hook, listed=LastReadTasks())
    assert read.verified and read.batch is not None and len(read.batch.open) == 1000
    snapshot = await AccountSnapshot.afrom_batch(read.batch, 0.0, verified=True)
    gc.collect()
    gc.collect()  # a tuple is untracked in a pass where its members already are: a case's tuple in the second
    held = [*snapshot.tasks, *snapshot.by_case.values(), *snapshot.account.tasks]
    assert len(held) > 1000 and not any(gc.is_tracked(item) for item in held)
