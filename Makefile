# Flagstaff. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VAR := var
CHROMIUM := /usr/bin/chromium
# Where `make run` listens: `make run PORT=9000`, or BIND=0.0.0.0:8000 for other machines
# (which then also need their host name in ALLOWED_HOSTS).
PORT ?= 8000
BIND ?= 127.0.0.1:$(PORT)
PG_URL ?= postgresql://root@127.0.0.1:5432/flagstaff
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run demo test test-embedded test-services lint format bench fuzz chromium services clean

# pip's and setuptools' output goes to var/install.log and is shown only when the install fails.
$(STAMP): pyproject.toml setup.py client/pyproject.toml telemetry/_speedups.c
	@mkdir -p $(VAR)
	@echo "Installing Flagstaff into $(VENV) (log: $(VAR)/install.log)"
	@{ test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } > $(VAR)/install.log 2>&1 \
	  && $(BIN)/python -m pip install --quiet --upgrade pip >> $(VAR)/install.log 2>&1 \
	  && $(BIN)/python -m pip install --quiet -e ./client -e '.[dev]' >> $(VAR)/install.log 2>&1 \
	  || { cat $(VAR)/install.log >&2; echo "The install failed; the log above is also in $(VAR)/install.log." >&2; exit 1; }
	@touch $(STAMP)

$(VAR)/secret_key:
	mkdir -p $(VAR)
	$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@
	chmod 600 $@

## run: install, migrate and start web + stream process + worker + beat on SQLite and a file broker (PORT, BIND)
run: $(STAMP) $(VAR)/secret_key
	export SECRET_KEY_FILE=$(CURDIR)/$(VAR)/secret_key; \
	$(BIN)/python manage.py migrate --no-input && \
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0 && \
	$(BIN)/python manage.py ensure_admin && \
	exec $(BIN)/python manage.py serve --bind $(BIND)

## demo: a fresh demo database (var/demo), the fake Anthropic API, Flagstaff and a traffic simulator:
## watch one canary promote and one roll back by itself, no Anthropic key needed (PORT, BIND,
## DEMO_STAGE_SECONDS: the shortest a canary stage lasts). Ctrl-C stops everything.
DEMO_STAGE_SECONDS ?= 20
demo: $(STAMP) $(VAR)/secret_key
	rm -rf $(VAR)/demo && mkdir -p $(VAR)/demo
	export SECRET_KEY_FILE=$(CURDIR)/$(VAR)/secret_key FLAGSTAFF_VAR_DIR=$(CURDIR)/$(VAR)/demo; \
	unset DATABASE_URL REDIS_URL CELERY_BROKER_URL; \
	$(BIN)/python manage.py migrate --no-input --verbosity 0 && \
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0 && \
	exec $(BIN)/python -m demo --bind $(BIND) --min-stage-seconds $(DEMO_STAGE_SECONDS)

## chromium: Debian's Chromium for the browser tests (never a browser download)
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## services: start the local PostgreSQL and Redis if they are down
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; \
	  echo "PostgreSQL or Redis did not come up" >&2; exit 1

## test: the whole suite on the embedded default and on PostgreSQL + Redis + a real worker, both
## passes at once (logs in var/test-logs/); without PostgreSQL/Redis outside CI, the embedded one
test: $(STAMP) chromium
	@if [ "$$CI" = "true" ] || { pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }; then \
	  MAKE="$(MAKE)" .ci/test-passes; \
	else \
	  $(MAKE) --no-print-directory test-embedded && \
	  echo "PostgreSQL/Redis not reachable: skipped the services pass (CI runs it)"; \
	fi

test-embedded: $(STAMP)
	@echo "== test suite: embedded default (SQLite, file broker) =="
	env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL $(BIN)/pytest

test-services: $(STAMP) services
	@echo "== test suite: PostgreSQL + Redis + Celery worker =="
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) CELERY_BROKER_URL=$(REDIS_TEST_URL) \
	  FLAGSTAFF_REQUIRE_SERVICES=1 $(BIN)/pytest -o cache_dir=.pytest_cache/services

## lint: formatting, lint rules, types, the layering contracts, migrations and the OpenAPI schema.
## The checks are independent: they run at once (mypy, the longest, from the start), each one's
## output shown whole when it ends; any failure fails lint.
LINT_CHECKS := lint-types lint-format lint-rules lint-layers lint-migrations lint-schema
.PHONY: $(LINT_CHECKS)
lint: $(STAMP)
	@$(MAKE) --no-print-directory --jobs=$(words $(LINT_CHECKS)) --output-sync=target --keep-going $(LINT_CHECKS)

lint-types:
	$(BIN)/mypy
lint-format:
	$(BIN)/ruff format --check .
lint-rules:
	$(BIN)/ruff check .
lint-layers:
	$(BIN)/lint-imports
lint-migrations:
	$(BIN)/python manage.py makemigrations --check --dry-run
lint-schema:
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## fuzz: schemathesis against a live server on a fresh seeded database, with an admin and a
## read-only token (FUZZ_EXAMPLES per operation, default 20); reports in test-artifacts/fuzz/
fuzz: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL $(BIN)/python -m tests.fuzz.run

## bench: run every benchmark under bench/ (each prints its figures)
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VAR) .pytest_cache .mypy_cache .ruff_cache build telemetry/_speedups.*.so
