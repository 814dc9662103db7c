"""Triggers of the Debitura provider (run in Airflow's triggerer)."""
