# FieldSync: `make run` starts the product on the zero-config defaults; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The stamp carries a hash of pyproject.toml, so a change of dependencies reinstalls on the next make.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run test lint format migrate seed screenshots prod-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo --if-empty

run: seed
	$(BIN)/python manage.py run_local

# The browser tests drive Debian's Chromium through Playwright; nothing ever downloads a browser.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "The browser tests need Debian's chromium: run 'sudo apt-get install chromium'." >&2; exit 1; fi

test: install $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

screenshots: install $(CHROMIUM)
	$(BIN)/python bench/screenshots.py

# Production settings, collectstatic, gunicorn + two qcluster processes on PostgreSQL, the local sandbox, Chromium
# signing in and connecting two business units to two companies, 100 payments exported per unit at once; then
# everything stopped (deploy/prod_check.py, docs/production.md). PROD_CHECK_DATABASE_URL chooses its database.
prod-check: install $(CHROMIUM)
	$(BIN)/python deploy/prod_check.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
