"""``python -m airflow_provider_debitura.sandbox``."""

from airflow_provider_debitura.sandbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
