# Two commands for a fresh clone (Python 3.10+ on PATH, nothing else needed):
#   make demo   build .venv, start the Debitura sandbox, run the example DAGs in Airflow, print a summary
#   make test   everything CI runs: ruff, mypy, the whole suite on Airflow 3.x, the end-to-end DAG tests on 2.11
PYTHON ?= python3
VENV ?= .venv
VENV2 ?= .venv-airflow2
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
PYTEST_ARGS ?=
# pytest-xdist workers: the DAG runs and servers mostly wait on each other, so more workers than cores pays.
TEST_WORKERS ?= 3

.PHONY: demo airflow test test-airflow3 test-airflow2 lint typecheck format sandbox bench clean

# uv comes from PyPI into the venv itself, so nothing has to be installed by hand first.
define make_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --disable-pip-version-check uv
	$(1)/bin/python -m uv pip install -q --python $(1)/bin/python "apache-airflow==$(2)" -e ".[test]"
	touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml
	$(call make_venv,$(VENV),$(AIRFLOW_VERSION))

$(VENV2)/.installed: pyproject.toml
	$(call make_venv,$(VENV2),$(AIRFLOW2_VERSION))

demo: $(VENV)/.installed
	$(VENV)/bin/python scripts/demo.py

# The example DAGs in the Airflow UI against the sandbox (Airflow on 127.0.0.1:8080, sandbox on :8765).
# Other ports: make airflow AIRFLOW_ARGS="--port 8081 --sandbox-port 8766". Ctrl-C stops everything.
AIRFLOW_ARGS ?=
airflow: $(VENV)/.installed
	$(VENV)/bin/python scripts/airflow_ui.py $(AIRFLOW_ARGS)

test: lint typecheck test-airflow3 test-airflow2

test-airflow3: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-airflow2: $(VENV2)/.installed
	$(VENV2)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m e2e $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

sandbox: $(VENV)/.installed
	$(VENV)/bin/debitura-sandbox --scenario demo

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/parse_cost.py
	$(VENV)/bin/python bench/listing.py
	$(VENV)/bin/python bench/gates.py
	$(VENV)/bin/python bench/watcher.py

clean:
	rm -rf $(VENV) $(VENV2) .airflow-demo .airflow-ui .pytest_cache .ruff_cache
