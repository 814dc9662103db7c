"""The watcher's view of a shared full read (:class:`SnapshotRecords`): the same records as
``AccountSnapshot.records``, parsed page by page, once."""

from __future__ import annotations

import json

import pytest

from airflow_provider_debitura.gate import AccountSnapshot, CompactTask
from airflow_provider_debitura.triggers.watcher.records import SnapshotRecords
from airflow_provider_debitura.triggers.watcher.state import WatchFilter

CASE = "0a5e0c8e-3f5b-4c47-9d0e-2b7f3c9a1d11"


def _record(number: int, task_type: str = "ReplyToChat", title: str = "") -> dict[str, object]:
    return {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "type": task_type,
        "status": "Open",
        "caseId": CASE,
        "title": title or f"task {number}",
        "dateCreated": f"2026-12-07T10:{number % 60:02d}:00Z",
    }


def _compact(record: dict[str, object]) -> CompactTask:
    return CompactTask(str(record["id"]), str(record["type"]), CASE, str(record["title"]), None, None, None)


def _snapshot() -> tuple[AccountSnapshot, list[dict[str, object]]]:
    """Three pages; task 3 shifted from page 1 onto page 2 with a new title (the later copy is the one to keep);
    task 5 is listed but no longer open (not among the snapshot's tasks)."""
    first = [_record(1), _record(2, "UploadDocument"), _record(3)]
    second = [_record(3, title="moved"), _record(4), _record(5)]
    third = [_record(6), _record(7, "UploadDocument")]
    open_records = [first[0], first[1], second[0], second[1], third[0], third[1]]
    snapshot = AccountSnapshot(
        0.0,
        tasks=tuple(_compact(r) for r in open_records),
        pages=tuple(json.dumps(page) for page in (first, second, third)),
        full=True,
    )
    return snapshot, open_records


def _by_id(records: object) -> dict[object, object]:
    return {record["id"]: record for record in records}  # type: ignore[attr-defined]


@pytest.mark.parametrize("types", [None, ("ReplyToChat",), ("Nothing",)])
def test_the_same_records_as_the_snapshot_gives(types: tuple[str, ...] | None) -> None:
    snapshot, _ = _snapshot()
    watch = WatchFilter("debitura_default", types)
    wanted = [t.id for t in snapshot.tasks if watch.matches_compact(t)]
    expected = snapshot.records(wanted) if wanted else []

    records = list(SnapshotRecords(snapshot, watch))

    assert len(records) == len(expected)  # each task once
    assert _by_id(records) == _by_id(expected)  # the later copy of a shifted task, as records() keeps it


def test_extra_tasks_are_added_only_when_the_full_read_lacks_them() -> None:
    snapshot, _ = _snapshot()
    watch = WatchFilter("debitura_default", None)
    extra = [_record(1, title="tail copy"), _record(8)]

    records = _by_id(SnapshotRecords(snapshot, watch, extra))

    assert records[_record(1)["id"]]["title"] == "task 1"  # type: ignore[index]  # the full read's copy stays
    assert _record(8)["id"] in records
    assert len(records) == 7


def test_one_pass_then_its_pages_are_let_go() -> None:
    snapshot, open_records = _snapshot()
    records = SnapshotRecords(snapshot, WatchFilter("debitura_default", None))
    assert records.counted is None

    assert len(list(records)) == len(open_records)

    assert records.counted == len(open_records)
    with pytest.raises(RuntimeError, match="iterated once"):
        list(records)
