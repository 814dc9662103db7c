"""The new-task watcher's insides (the trigger itself is :mod:`airflow_provider_debitura.triggers.new_tasks`).

============================  ===================================================================================
:mod:`.ids`                   task ids and creation times as stored (canonical GUIDs, base64 of raw bytes)
:mod:`.state`                 the stored state: seen ids and one mark (watermark) per filter, its JSON format
:mod:`.tracker`               :class:`~.tracker.SeenTracker`: which listed tasks are new, backlog or already seen
:mod:`.store`                 where the state lives (Airflow's asset state store, or a Variable)
:mod:`.tail`                  reading only the end of the queue and proving by the counts that it is enough
:mod:`.rounds`                one round's tasks: a tail read, or a full read when the tail cannot explain the count
:mod:`.records`               a shared full read's records, parsed page by page as the tracker iterates them
============================  ===================================================================================
"""
