# The two commands: `make run` and `make test`. Both work on a fresh machine that has Python 3.12+ and pip.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(CURDIR)/data
export DATA_DIR

.PHONY: run demo test lint format venv services system-packages migrate admin-user clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@python=$$(sh scripts/find-python.sh) && echo "Using $$python" && \
	  { [ -x $(PY) ] || $$python -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

services:
	@sh scripts/ensure-services.sh

system-packages:
	@sh scripts/ensure-system-packages.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The whole suite, against real PostgreSQL, Redis, SeaweedFS and the EAGLE simulator.
test: venv services system-packages lint
	REQUIRE_BROWSER=$${REQUIRE_BROWSER:-1} $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# --- make run: the whole service on this machine, under the same supervisor file operations use ----------
RUN_ENV = set -a; SIMULATOR_AUTOSTART=$${SIMULATOR_AUTOSTART:-false}; \
	[ -n "$${SECRET_KEY:-}$${SECRET_KEY_FILE:-}" ] || SECRET_KEY_FILE=$(DATA_DIR)/secret_key; \
	[ -n "$${FIELD_ENCRYPTION_KEY:-}$${FIELD_ENCRYPTION_KEY_FILE:-}" ] || FIELD_ENCRYPTION_KEY_FILE=$(DATA_DIR)/field_encryption_key; \
	HTTPS=$${HTTPS:-0}; LOG_ROOT=$${LOG_ROOT:-$(DATA_DIR)/logs}; WEB_BIND=$${WEB_BIND:-127.0.0.1:8000}; \
	set +a

migrate: venv
	@sh scripts/local-secrets.sh $(DATA_DIR) $(PY)
	@$(RUN_ENV); $(PY) manage.py migrate --no-input -v 0 && $(PY) manage.py collectstatic --no-input -v 0

admin-user: migrate
	@$(RUN_ENV); $(PY) manage.py ensure_admin

run: admin-user
	@$(RUN_ENV); mkdir -p "$$LOG_ROOT/supervisor"; \
	  echo "Admin:  http://$$WEB_BIND/admin/   (status page: http://$$WEB_BIND/status/)"; \
	  echo "Logs:   $$LOG_ROOT/{server,pinger,rotate,supervisor}/"; \
	  echo "Stop with Ctrl-C."; \
	  exec $(VENV)/bin/supervisord -n -c deploy/supervisord.conf

# make run, plus an EAGLE simulator with demo households, so data flows without any hardware.
demo: admin-user
	@$(RUN_ENV); $(PY) manage.py demo_setup --households $${DEMO_HOUSEHOLDS:-25}
	@$(MAKE) --no-print-directory run EAGLE_CLOUD_URL=http://127.0.0.1:8650/cgi-bin/post_manager SIMULATOR_AUTOSTART=true

clean-venv:
	rm -rf $(VENV)
