# Two commands for a fresh clone (Python 3.10+ on PATH, nothing else needed):
#   make demo   build .venv, start the Debitura sandbox, run the example DAGs in Airflow, print a summary
#   make test   ruff, mypy, the whole suite on Airflow 3.3, the end-to-end DAG tests on 2.11
# CI runs `make ci`: `make test` on the newest and oldest Python claimed, then `make test-matrix`.
PYTHON ?= python3
PYTHON2 ?= $(PYTHON)
VENV ?= .venv
VENV2 ?= .venv-airflow2
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
# The other claimed Airflow minors, each as AIRFLOW:PYTHON, on their end-to-end and human-in-the-loop tests
# (`make test-matrix`). With `make ci` (3.3 on Python 3.13, 2.11 on 3.10) every claimed Airflow minor and
# every claimed Python version is run once.
MATRIX ?= 3.1.8:3.12 3.2.2:3.11
UV_VERSION ?= 0.13.9
PYTEST_ARGS ?=
# pytest-xdist workers for the 3.x suite and for the 2.11 tier beside it: the DAG runs and servers mostly wait
# on each other, so more workers than cores pays.
TEST_WORKERS ?= 4
TEST_WORKERS2 ?= 2
TEST_WORKERS_MATRIX ?= 3
# The tier every other claimed version runs: the end-to-end and human-in-the-loop tests (the latter skip before
# Airflow 3.1); the scale runs test the provider, not the Airflow version, and stay with the newest pair.
TIER_MARKERS ?= (e2e or hitl) and not scale

python_version = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHON_VERSION := $(call python_version,$(PYTHON))
PYTHON2_VERSION := $(call python_version,$(PYTHON2))

.PHONY: demo airflow test test-airflow3 test-airflow2 test-matrix test-pair ci constraints screenshots lint typecheck format sandbox bench clean

# Every venv is a pinned install: constraints/airflow-<airflow>-python-<python>.txt (make constraints writes
# them; docs/testing.md says when). uv itself comes from PyPI into the venv, pinned, so nothing has to be
# installed by hand first. --compile-bytecode: every Airflow process (scheduler, triggerer, api-server, each
# `airflow` command) would otherwise compile the modules it imports from source again, where
# PYTHONDONTWRITEBYTECODE is set (a quarter of an import's CPU). $(1) venv, $(2) Airflow, $(3) Python.
define make_venv
	@test -f constraints/airflow-$(2)-python-$(call python_version,$(3)).txt || { echo "No pinned install for \
	Airflow $(2) on Python $(call python_version,$(3)) ('$(3)'): add it to scripts/constraints.py and run \
	make constraints, or pick another Python (PYTHON=...)"; exit 1; }
	rm -rf $(1)
	$(3) -m venv $(1)
	$(1)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(1)/bin/python -m uv pip install -q --compile-bytecode --python $(1)/bin/python \
	  -c constraints/airflow-$(2)-python-$(call python_version,$(3)).txt "apache-airflow==$(2)" -e ".[test]"
	touch $@
endef

INSTALLED := $(VENV)/.installed-$(AIRFLOW_VERSION)-py$(PYTHON_VERSION)
INSTALLED2 := $(VENV2)/.installed-$(AIRFLOW2_VERSION)-py$(PYTHON2_VERSION)

$(INSTALLED): pyproject.toml constraints/airflow-$(AIRFLOW_VERSION)-python-$(PYTHON_VERSION).txt
	$(call make_venv,$(VENV),$(AIRFLOW_VERSION),$(PYTHON))

$(INSTALLED2): pyproject.toml constraints/airflow-$(AIRFLOW2_VERSION)-python-$(PYTHON2_VERSION).txt
	$(call make_venv,$(VENV2),$(AIRFLOW2_VERSION),$(PYTHON2))

demo: $(INSTALLED)
	$(VENV)/bin/python scripts/demo.py

# The example DAGs in the Airflow UI against the sandbox (Airflow on 127.0.0.1:8080, sandbox on :8765).
# Other ports: make airflow AIRFLOW_ARGS="--port 8081 --sandbox-port 8766". Ctrl-C stops everything.
AIRFLOW_ARGS ?=
airflow: $(INSTALLED)
	$(VENV)/bin/python scripts/airflow_ui.py $(AIRFLOW_ARGS)

# The 2.11 tier runs beside the 3.x suite (each leaves the CPU idle while it waits on DAG runs and servers);
# its output is kept in $(VENV2)/last-test.log and printed when both are done, so the 3.x output stays live.
test: lint typecheck $(INSTALLED2)
	@$(MAKE) --no-print-directory test-airflow2 > $(VENV2)/last-test.log 2>&1 & tier2=$$!; \
	$(MAKE) --no-print-directory test-airflow3; status3=$$?; \
	wait $$tier2; status2=$$?; \
	echo "---- Airflow $(AIRFLOW2_VERSION): the end-to-end tier ----"; cat $(VENV2)/last-test.log; \
	test $$status3 -eq 0 -a $$status2 -eq 0

# The suite starts about a hundred Python processes (Airflow's components, DAG runs, the sandbox): let them
# cache the bytecode of this package, the tests and the DAG files, even where PYTHONDONTWRITEBYTECODE is set.
test-airflow3 test-airflow2: export PYTHONDONTWRITEBYTECODE =

test-airflow3: $(INSTALLED)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-airflow2: $(INSTALLED2)
	$(VENV2)/bin/python -m pytest -n $(TEST_WORKERS2) --dist loadgroup -m "$(TIER_MARKERS)" $(PYTEST_ARGS)

# One claimed pair of MATRIX, in a venv of its own: make test-pair PAIR=3.1.8:3.12 (TIER_MARKERS).
PAIR ?= $(firstword $(MATRIX))
PAIR_AIRFLOW = $(firstword $(subst :, ,$(PAIR)))
PAIR_PYTHON = $(lastword $(subst :, ,$(PAIR)))
PAIR_VENV = .venv-$(PAIR_AIRFLOW)-py$(PAIR_PYTHON)

$(PAIR_VENV)/.installed: pyproject.toml constraints/airflow-$(PAIR_AIRFLOW)-python-$(PAIR_PYTHON).txt
	$(call make_venv,$(PAIR_VENV),$(PAIR_AIRFLOW),$(shell scripts/find-python $(PAIR_PYTHON)))

test-pair: export PYTHONDONTWRITEBYTECODE =
test-pair: $(PAIR_VENV)/.installed
	$(PAIR_VENV)/bin/python -m pytest -n $(TEST_WORKERS_MATRIX) --dist loadgroup -m "$(TIER_MARKERS)" $(PYTEST_ARGS)

# Every pair of MATRIX, MATRIX_JOBS at a time (their DAG runs and servers mostly wait, so two side by side take
# little longer than one); each pair's output is printed when it ends, a failure fails the target at the end.
MATRIX_JOBS ?= 2
MATRIX_TARGETS = $(addprefix matrix/,$(subst :,/,$(MATRIX)))
.PHONY: $(MATRIX_TARGETS)

test-matrix:
	@$(MAKE) --no-print-directory -k -j$(MATRIX_JOBS) $(MATRIX_TARGETS)

$(MATRIX_TARGETS): matrix/%:
	@pair=$(subst /,:,$*); log=$$(mktemp); start=$$(date +%s); \
	$(MAKE) --no-print-directory test-pair PAIR=$$pair > $$log 2>&1; status=$$?; \
	echo "---- Airflow $${pair%%:*} on Python $${pair##*:}: the end-to-end and human-in-the-loop tiers" \
	  "($$(( $$(date +%s) - start )) s, exit $$status) ----"; \
	cat $$log; rm -f $$log; exit $$status

# What CI runs (.ci/run): make test with Airflow 3.3 on the newest Python claimed and 2.11 on the oldest, then
# the other Airflow minors. Python interpreters are found on PATH or in pyenv (scripts/find-python).
ci:
	$(MAKE) --no-print-directory test PYTHON="$$(scripts/find-python 3.13)" PYTHON2="$$(scripts/find-python 3.10)"
	$(MAKE) --no-print-directory test-matrix

# Rewrite constraints/ (scripts/constraints.py says how, and when to).
constraints: $(INSTALLED)
	$(VENV)/bin/python scripts/constraints.py --uv $(VENV)/bin/uv

# Retake the pictures in docs/images/ from the real UI (the browser tests; a plain test run keeps its
# screenshots in a temporary folder, so tests modify no tracked file).
screenshots: export DEBITURA_SCREENSHOT_DIR = $(CURDIR)/docs/images
screenshots: $(INSTALLED)
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup tests/ui tests/operators/test_hitl_browser.py $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(INSTALLED)
	$(VENV)/bin/mypy

format: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

sandbox: $(INSTALLED)
	$(VENV)/bin/debitura-sandbox --scenario demo

bench: $(INSTALLED)
	$(VENV)/bin/python bench/parse_cost.py
	$(VENV)/bin/python bench/listing.py
	$(VENV)/bin/python bench/gates.py
	$(VENV)/bin/python bench/watcher.py

clean:
	rm -rf $(VENV) $(VENV2) .venv-*-py* .airflow-demo .airflow-ui .pytest_cache .ruff_cache
