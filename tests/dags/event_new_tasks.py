"""E2E DAG for the new-task watcher: an asset fed by DebituraNewTasksTrigger (1 s poll, ReplyToChat only).

The run's only task records the triggering events; whether it executes does not matter to the test
(which counts DAG runs and asset events in the metadata DB). Airflow 2.11: no DAG.
"""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11
    AssetWatcher = None

if AssetWatcher is not None:
    import pendulum

    from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger

    new_chat_tasks = Asset(
        name="e2e_debitura_new_chat_tasks",
        watchers=[
            AssetWatcher(
                name="e2e_debitura_new_chat_tasks_watcher",
                trigger=DebituraNewTasksTrigger(task_types=["ReplyToChat"], poll_interval=1),
            )
        ],
    )

    with DAG(
        dag_id="event_new_tasks",
        schedule=[new_chat_tasks],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
    ):

        @task
        def seen(triggering_asset_events=None) -> list[str]:
            return [e.extra["payload"]["id"] for evs in (triggering_asset_events or {}).values() for e in evs]

        seen()
