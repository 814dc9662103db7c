"""Moved to :mod:`airflow_provider_debitura.triggers.watcher` (the watcher's state lives beside the watcher).

This module re-exports the names it used to define, so existing imports keep working.
"""

from __future__ import annotations

from airflow_provider_debitura.triggers.watcher.ids import (
    TaskJson,
    canonical_guid,
    created_epoch,
    decode_ids,
    encode_ids,
)
from airflow_provider_debitura.triggers.watcher.state import (
    ASSET_STATE_KEY,
    BUCKET_SECONDS,
    KEY_PREFIX,
    STALE_AFTER,
    STATE_VERSION,
    SUPERSEDE_TOLERANCE,
    WATERMARK_LAG,
    Mark,
    SeenState,
    WatchFilter,
    watcher_key,
)
from airflow_provider_debitura.triggers.watcher.store import (
    AirflowSeenTasksStore,
    AssetStateSlot,
    SeenTasksStore,
    dumps,
    with_legacy_mark,
)
from airflow_provider_debitura.triggers.watcher.tracker import (
    FILTER_CHANGE_MARGIN,
    FORGET_AFTER_INTERVALS,
    HEARTBEAT_SECONDS,
    PERSIST_GRACE,
    SUDDEN_DROP_FORGET_INTERVALS,
    SUDDEN_DROP_MIN,
    SUDDEN_DROP_SHARE,
    RoundOutcome,
    SeenTracker,
)

__all__ = [
    "ASSET_STATE_KEY",
    "BUCKET_SECONDS",
    "FILTER_CHANGE_MARGIN",
    "FORGET_AFTER_INTERVALS",
    "HEARTBEAT_SECONDS",
    "KEY_PREFIX",
    "PERSIST_GRACE",
    "STALE_AFTER",
    "STATE_VERSION",
    "SUDDEN_DROP_FORGET_INTERVALS",
    "SUDDEN_DROP_MIN",
    "SUDDEN_DROP_SHARE",
    "SUPERSEDE_TOLERANCE",
    "WATERMARK_LAG",
    "AirflowSeenTasksStore",
    "AssetStateSlot",
    "Mark",
    "RoundOutcome",
    "SeenState",
    "SeenTasksStore",
    "SeenTracker",
    "TaskJson",
    "WatchFilter",
    "canonical_guid",
    "created_epoch",
    "decode_ids",
    "dumps",
    "encode_ids",
    "watcher_key",
    "with_legacy_mark",
]
