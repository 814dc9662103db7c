"""The provider's triggers beside another kind of trigger, in Airflow's own triggerer
(tests/triggers/test_triggerer_e2e.py). Airflow 2.11: no DAGs (no AssetWatcher).

- ``triggerer_neighbours``: a deferred case gate (the shared poll in the triggerer) for ``conf["ref"]``.
- ``triggerer_neighbours_events``: fed by the new-task watcher (1 s poll, ReplyToChat only).
- ``triggerer_neighbours_after``: a DateTimeSensorAsync (Airflow's own DateTimeTrigger), started after
  the provider's triggers have run, to show the triggerer still runs other deferred tasks.
"""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11
    AssetWatcher = None

if AssetWatcher is not None:
    import pendulum
    from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

    from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor
    from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger

    START = pendulum.datetime(2026, 1, 1, tz="UTC")
    # A try that a busy machine's standalone fails from outside (seen under load: the worker's call to Airflow's
    # own API server refused after the trigger fired) is tried again; a dead triggerer would fail every try,
    # and the test reads the triggerer's log and health besides.
    RETRIES = {"retries": 2, "retry_delay": pendulum.duration(seconds=2)}

    with DAG("triggerer_neighbours", schedule=None, start_date=START, catchup=False):
        DebituraCaseUnblockedSensor(
            task_id="gate",
            **RETRIES,
            creditor_reference="{{ dag_run.conf['ref'] }}",
            poke_interval=1,
            timeout=300,
            deferrable=True,
        )

    new_chat_tasks = Asset(
        name="triggerer_neighbours_new_chat_tasks",
        watchers=[
            AssetWatcher(
                name="triggerer_neighbours_watcher",
                trigger=DebituraNewTasksTrigger(task_types=["ReplyToChat"], poll_interval=1),
            )
        ],
    )

    with DAG("triggerer_neighbours_events", schedule=[new_chat_tasks], start_date=START, catchup=False):

        @task
        def seen(triggering_asset_events=None) -> list[str]:
            return [e.extra["payload"]["id"] for evs in (triggering_asset_events or {}).values() for e in evs]

        seen()

    with DAG("triggerer_neighbours_after", schedule=None, start_date=START, catchup=False):
        DateTimeSensorAsync(task_id="neighbour", target_time="{{ dag_run.conf['until'] }}", poke_interval=1, **RETRIES)
