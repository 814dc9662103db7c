"""Running a new-task watcher in a test: its ``run()`` in the background, its events recorded."""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import JsonValue

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
from airflow_provider_debitura.triggers.watcher.state import ASSET_STATE_KEY, KEY_PREFIX, SeenState

AIRFLOW = tuple(int(part) for part in version("apache-airflow").split(".")[:2])

EMPTY_200 = {
    "kind": "status",
    "status": 200,
    "method": "GET",
    "path": "/tasks",
    "body": {
        "page": {"totalResults": 0, "pageSize": 100, "currentPage": 1, "responseCount": 0, "totalPages": 0},
        "tasks": [],
    },
}
"""A sandbox fault rule: ``GET /tasks`` answers a well-formed empty page (an API hiccup, a proxy's empty 200);
add ``"count"`` to limit it."""


class Watch:
    """Runs a trigger's ``run()`` in the background and records its events."""

    def __init__(self, trigger: DebituraNewTasksTrigger) -> None:
        """:param trigger: the watcher to run (started at once on the running loop)."""
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def rounds(self, n: int = 1, timeout: float = 15) -> None:
        """Wait until ``n`` more rounds have been processed (and their state saved)."""
        target = self.trigger.rounds + n
        await self.until(lambda: self.trigger.rounds >= target and not self.dirty, timeout)

    @property
    def dirty(self) -> bool:
        return self.trigger.tracker is not None and self.trigger.tracker.dirty

    async def until(self, condition: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.task.done():
                self.task.result()  # surface a crash
                raise AssertionError("the trigger stopped")
            assert time.monotonic() < deadline, f"timed out; events={self.events} rounds={self.trigger.rounds}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        assert not self.task.done() or self.task.cancelled() or self.task.exception() is None


def add_task(sb: SandboxServer, type_: str = "ReplyToChat", ref: str | None = "INV-1005") -> dict[str, Any]:
    """Create an open task through the sandbox's control plane; returns its TaskDto."""
    body: dict[str, Any] = {"type": type_}
    if ref is not None:
        body["caseCreditorReference"] = ref
    response = sb.control("POST", "/tasks", body)
    assert response.status_code == 201, response.text
    return response.json()


# ------------------------------------------------------------------------------ what a real Airflow stored


def stored_values(db: Path, asset: str, fernet_key: str | None = None) -> dict[str, JsonValue] | None:
    """What the watchers of ``asset`` stored in Airflow's metadata database (SQLite), by key; None before the first
    save. Airflow 3.3+: the asset's state store, every key (so a test can see that nothing is left under another
    key). Before: every watcher filter's Variable (decrypted with ``fernet_key`` when Airflow encrypted it),
    merged under the one key the asset store would use.

    :param db: the ``airflow.db`` file (opened read-only).
    :param asset: the watched asset's name.
    :param fernet_key: the components' ``[core] fernet_key`` (see :func:`fernet_key_of`); needed before 3.3 only.
    """
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        if AIRFLOW >= (3, 3):
            rows = conn.execute(
                "SELECT s.key, s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id WHERE a.name = ?",
                (asset,),
            ).fetchall()
            return {key: json.loads(value) for key, value in rows} or None
        variables = conn.execute(
            "SELECT val, is_encrypted FROM variable WHERE key LIKE ?", (f"{KEY_PREFIX}__%",)
        ).fetchall()
    if any(encrypted for _, encrypted in variables) and not fernet_key:
        raise ValueError("the watcher's Variable is encrypted: pass fernet_key (fernet_key_of(home) reads it)")
    fernet = Fernet(fernet_key.encode()) if fernet_key else None
    texts = [fernet.decrypt(value.encode()) if encrypted and fernet else value for value, encrypted in variables]
    merged = SeenState.merge(SeenState.from_json(json.loads(text)) for text in texts)
    return None if merged is None else {ASSET_STATE_KEY: merged.to_json()}


def stored_state(db: Path, asset: str, fernet_key: str | None = None) -> SeenState | None:
    """The watchers' state of ``asset`` as :func:`stored_values` finds it, decoded; None before the first save.

    :param db: the ``airflow.db`` file.
    :param asset: the watched asset's name.
    :param fernet_key: see :func:`stored_values`.
    """
    return SeenState.from_json((stored_values(db, asset, fernet_key) or {}).get(ASSET_STATE_KEY))


def fernet_key_of(home: Path) -> str | None:
    """``[core] fernet_key`` of the ``airflow.cfg`` in an Airflow home (None when there is none).

    :param home: the ``AIRFLOW_HOME``.
    """
    config = configparser.ConfigParser(interpolation=None)
    config.read(home / "airflow.cfg")
    return config.get("core", "fernet_key", fallback=None) or None
