# The two commands: `make run` and `make test`. Both work on a fresh machine that has Python 3.12+ and pip.
# Beside them: `make manage ARGS=...`, `make demo`, `make demo-clean` (see the README).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(CURDIR)/data
export DATA_DIR

.PHONY: run demo manage demo-clean service-env test faults lint format venv services system-packages clean-venv

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

# The fault experiments (bench/faults.py): real processes, about six minutes; not part of `make test`.
faults: venv services
	$(VENV)/bin/python bench/faults.py $(FAULTS_ARGS)

# --- make run / make demo / make manage: the services on this machine, under the supervisor file operations use ----
# Every command runs through scripts/iseif with one environment file (iseif/service_env.py): `make run` writes
# DATA_DIR/service.env at every start, `make manage` reads it, so manage.py always sees what the services see.
# The demo lives in its own folder (database, logs, archive, keys, Redis database): it never touches the install.
DEMO_DATA_DIR ?= $(DATA_DIR)/demo
DEMO_HOUSEHOLDS ?= 25
DEMO_SIMULATOR_PORT ?= 8650
DEMO_REDIS_URL ?= redis://127.0.0.1:6379/1
ifeq ($(DEMO),1)
INSTANCE_DIR := $(DEMO_DATA_DIR)
WRITE_ENV = write-demo "$(INSTANCE_DIR)/service.env" $(DEMO_SIMULATOR_PORT) "$(DEMO_REDIS_URL)"
SUPERVISOR_ARGS := -c deploy/supervisord-demo.conf
MANAGE_HINT := make manage DEMO=1 ARGS="doctor"
else
INSTANCE_DIR := $(DATA_DIR)
WRITE_ENV = write-local "$(INSTANCE_DIR)/service.env"
SUPERVISOR_ARGS :=
MANAGE_HINT := make manage ARGS="doctor"
endif
ISEIF = scripts/iseif -e "$(INSTANCE_DIR)/service.env"

# Key files (once) and the environment file (every start) of this instance.
service-env: venv
	@sh scripts/local-secrets.sh "$(INSTANCE_DIR)" $(PY)
	@scripts/iseif $(WRITE_ENV)

# Checks the ports before migrating or starting anything: a taken port is named at once, not a web server
# restarting forever behind a URL that leads to another program.
run: service-env
	@$(ISEIF) check-ports
	@$(ISEIF) manage migrate --no-input -v 0
	@$(ISEIF) manage collectstatic --no-input -v 0
	@$(ISEIF) manage ensure_admin
	@if [ "$(DEMO)" = 1 ]; then $(ISEIF) manage demo_setup --households $(DEMO_HOUSEHOLDS); fi
	@echo 'manage.py with the same environment: $(MANAGE_HINT)'
	@echo "Stop with Ctrl-C."
	@exec $(ISEIF) supervisord -n $(SUPERVISOR_ARGS)

# make run, plus an EAGLE simulator with demo households, so data flows without any hardware.
demo: venv
	@$(MAKE) --no-print-directory -o $(VENV)/.installed run DEMO=1

# manage.py in the environment of the last `make run` (DEMO=1: of the demo): make manage ARGS="doctor".
manage: venv
	@[ -f "$(INSTANCE_DIR)/service.env" ] || $(MAKE) --no-print-directory -o $(VENV)/.installed service-env
	@$(ISEIF) manage $(ARGS)

# Removes everything the demo wrote (its folder); refuses while the demo runs.
demo-clean: venv
	@sh scripts/demo-clean.sh "$(DEMO_DATA_DIR)"

clean-venv:
	rm -rf $(VENV)
