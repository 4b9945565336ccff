# Everyday commands. `make run` and `make test` work on a fresh machine with Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
SNAPSHOT := sync/snapshots/catalog.json.gz
TEST_ENV := DJANGO_SETTINGS_MODULE=config.settings.test
# pytest-xdist workers for `make test` (a number, or "auto": one per core). Each worker
# has its own test database and Redis database (see config/settings/test.py).
PYTEST_WORKERS ?= auto
# Schemathesis gives its cases (one per API operation) one node id, and xdist then runs
# only one of them: this module runs in a serial pytest of its own.
SCHEMATHESIS_TESTS := tests/modelhub/test_schemathesis.py

.PHONY: install run serve migrate bootstrap test lint typecheck format schema worker beat bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Set up and serve the platform on its embedded defaults (SQLite, local memory, eager Celery).
run: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py bootstrap
	@if [ -f $(SNAPSHOT) ]; then DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py sync_models --snapshot $(SNAPSHOT); fi
	@# A local Ollama (OLLAMA_BASE_URL) lists its models; skipped when unset, harmless when down.
	-@DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py sync_models --providers ollama
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: /admin/, API docs: /api/docs/)"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT)

## Set up and run the whole test suite (lint, import contracts, types, migrations, API schema, pytest).
test: install lint typecheck
	$(TEST_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --ignore=$(SCHEMATHESIS_TESTS)
	$(BIN)/pytest $(SCHEMATHESIS_TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## mypy with django-stubs (configuration in pyproject.toml; its cache is .mypy_cache).
typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install
	$(TEST_ENV) $(BIN)/python manage.py spectacular --validate --file schema.yml

## Celery worker and beat (beat's schedule is in the database: admin, Periodic tasks).
worker: install
	$(BIN)/celery -A config worker --loglevel=info

beat: install
	$(BIN)/celery -A config beat --loglevel=info

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .grimp_cache staticfiles
