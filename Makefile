# Two commands for a fresh clone (Python 3.10+ on PATH, nothing else needed):
#   make demo   build .venv, start the Debitura sandbox, run the example DAGs in Airflow, print a summary
#   make test   everything CI runs: ruff, mypy, the whole suite on Airflow 3.x, the end-to-end DAG tests on 2.11
PYTHON ?= python3
VENV ?= .venv
VENV2 ?= .venv-airflow2
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
PYTEST_ARGS ?=
# pytest-xdist workers for the 3.x suite and for the 2.11 tier beside it: the DAG runs and servers mostly wait
# on each other, so more workers than cores pays.
TEST_WORKERS ?= 4
TEST_WORKERS2 ?= 2

.PHONY: demo airflow test test-airflow3 test-airflow2 lint typecheck format sandbox bench clean

# uv comes from PyPI into the venv itself, so nothing has to be installed by hand first. --compile-bytecode:
# every Airflow process (scheduler, triggerer, api-server, each `airflow` command) would otherwise compile the
# modules it imports from source again, where PYTHONDONTWRITEBYTECODE is set (a quarter of an import's CPU).
define make_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --disable-pip-version-check uv
	$(1)/bin/python -m uv pip install -q --compile-bytecode --python $(1)/bin/python "apache-airflow==$(2)" -e ".[test]"
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

# The 2.11 tier runs beside the 3.x suite (each leaves the CPU idle while it waits on DAG runs and servers);
# its output is kept in $(VENV2)/last-test.log and printed when both are done, so the 3.x output stays live.
test: lint typecheck $(VENV2)/.installed
	@$(MAKE) --no-print-directory test-airflow2 > $(VENV2)/last-test.log 2>&1 & tier2=$$!; \
	$(MAKE) --no-print-directory test-airflow3; status3=$$?; \
	wait $$tier2; status2=$$?; \
	echo "---- Airflow $(AIRFLOW2_VERSION): the end-to-end tier ----"; cat $(VENV2)/last-test.log; \
	test $$status3 -eq 0 -a $$status2 -eq 0

# The suite starts about a hundred Python processes (Airflow's components, DAG runs, the sandbox): let them
# cache the bytecode of this package, the tests and the DAG files, even where PYTHONDONTWRITEBYTECODE is set.
test-airflow3 test-airflow2: export PYTHONDONTWRITEBYTECODE =

test-airflow3: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-airflow2: $(VENV2)/.installed
	$(VENV2)/bin/python -m pytest -n $(TEST_WORKERS2) --dist loadgroup -m e2e $(PYTEST_ARGS)

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
