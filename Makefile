# The README's commands live here: `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: help run test lint fmt demo messages messages-compile clean bench bench-quick bench-wrk audit

help:
	@echo "make run    set everything up and run deconv on http://127.0.0.1:$(PORT) (Ctrl-C stops it)"
	@echo "make test   set up and run every check and test (PostgreSQL and Redis when reachable)"
	@echo "make lint / make fmt / make messages / make demo / make clean"
	@echo "make audit  known vulnerabilities of requirements/base.txt (pip-audit; needs PyPI's JSON API)"
	@echo "make bench-quick (< 3 min) / make bench (< 30 min): benchmarks, see bench/README.md"

# The virtualenv is rebuilt whenever a requirements file changes.
$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "deconv needs Python 3.11 or newer"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_territories
	$(PY) manage.py load_demo
	$(PY) manage.py demo_pledges --campaign demo --top-up-to 3000 --seed 1
	@echo "deconv: http://127.0.0.1:$(PORT)/  (health: http://127.0.0.1:$(PORT)/healthz)"
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)} $(VENV)/bin/honcho --no-prefix -f deconv/Procfile -d . start -p $(PORT)

demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_territories
	$(PY) manage.py load_demo
	$(PY) manage.py demo_pledges --campaign demo --count $${COUNT:-3000}

test: $(VENV)/.installed
	@set -e; eval "$$($(PY) tests/services.py)"; \
	$(VENV)/bin/ruff check . ; \
	$(VENV)/bin/ruff format --check . ; \
	$(PY) manage.py makemigrations --check --dry-run ; \
	$(MAKE) --no-print-directory messages-compile ; \
	$(MAKE) --no-print-directory audit ; \
	$(PY) -m pytest $(PYTEST_ARGS)

# Known vulnerabilities of the pinned runtime dependencies. Fails on a vulnerability; when the
# service cannot answer, says that the audit was not performed (a failure with AUDIT_REQUIRED=1).
audit: $(VENV)/.installed
	$(PY) tests/security/dependency_audit.py requirements/base.txt

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Extract every translatable string into the French and English catalogues.
messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l fr -l en --ignore=.venv --ignore=var --ignore=tests --ignore=bench --no-obsolete
	$(MAKE) --no-print-directory messages-compile

# The compiled catalogues are committed so that `make run` needs no gettext. With gettext
# installed (always in CI), they are recompiled from the .po files.
messages-compile:
	@if command -v msgfmt >/dev/null; then \
		$(PY) manage.py compilemessages --ignore=.venv --ignore=var ; \
	elif [ "$$CI" = "true" ]; then \
		echo "CI=true but msgfmt (gettext) is missing" >&2; exit 1; \
	else \
		echo "msgfmt not found: using the committed .mo catalogues (install gettext to recompile)"; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

# Benchmarks on a stack of their own (PostgreSQL database deconv_bench, Redis db 14, 127.0.0.1):
# they write BENCHMARKS.md and bench/results.json. Not run in CI. The load generator is wrk.
bench-wrk:
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y wrk; \
		elif command -v sudo >/dev/null; then sudo apt-get install -y wrk; \
		else echo "wrk is missing: apt-get install wrk" >&2; exit 1; fi; }

bench: $(VENV)/.installed bench-wrk
	$(PY) bench/run.py

bench-quick: $(VENV)/.installed bench-wrk
	$(PY) bench/run.py --quick
