# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: run test test-fast lint bench install lock clean

run: $(STAMP)
	$(BIN)/escmon db upgrade
	$(BIN)/escmon train --if-missing
	$(BIN)/escmon run

# Both cores (pytest-xdist), the Airflow DAG tests included: each worker gets its own
# throwaway Airflow home (tests/dags/airflow_env.py).
test: lint
	$(BIN)/python -m pytest -n 2

# The quick loop: no model-training fixtures, no PostgreSQL, no Airflow; both cores
# (pytest-xdist), under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not postgres" --ignore=tests/dags -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

install: $(STAMP)

# Install exactly what requirements.lock pins, then the project itself without deps.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

# Re-pin after editing pyproject.toml dependencies (needs the package registry).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra airflow --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache
