# nftgan — the two commands: `make demo` and `make test`. Both install whatever is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# two test processes, one file each at a time (module fixtures such as a Prefect server stay per file); torch
# runs one thread in each (tests/conftest.py), so together they use the two cores without oversubscribing
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter-out 0 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile,)

.PHONY: help install browser test test-fast demo bench server worker deploy clean

help:
	@echo "make demo     install what is missing, then run the whole pipeline offline on the demo collection"
	@echo "make test     install what is missing, then run the test suite"
	@echo "make bench    run the benchmarks (results in docs/benchmarks.md)"
	@echo "make server | worker | deploy   Prefect server (127.0.0.1), a process worker, the deployments"

# The virtualenv, refreshed whenever the dependency pins change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet "pip>=23"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) browser

# A Chromium for Playwright: a system one if present, else Debian's package (apt-get), else Playwright's own.
browser: $(STAMP)
	@found=""; \
	for c in "$$NFTGAN_CHROMIUM" /usr/bin/chromium $$(command -v chromium chromium-browser google-chrome 2>/dev/null) \
	         $$(ls -d $${PLAYWRIGHT_BROWSERS_PATH:-$$HOME/.cache/ms-playwright}/chromium-*/chrome-linux*/chrome 2>/dev/null); do \
	  if [ -n "$$c" ] && [ -x "$$c" ]; then found="$$c"; break; fi; \
	done; \
	if [ -n "$$found" ]; then echo "browser: $$found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "browser: installing Debian's chromium (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "browser: installing Playwright's chromium"; $(VENV)/bin/playwright install chromium; \
	fi

test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not slow" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/nftgan demo

bench: install
	$(PY) bench/prepare.py
	$(PY) bench/download.py
	$(PY) bench/train.py
	$(PY) bench/evaluate.py

# Prefect: a local server with the UI, a process worker, and the deployments of prefect.yaml.
PREFECT_PORT ?= 4200
PREFECT_API ?= http://127.0.0.1:$(PREFECT_PORT)/api
NFTGAN_WORK_POOL ?= nftgan-process
PREFECT_ENV = PREFECT_API_URL=$(PREFECT_API) NFTGAN_WORK_POOL=$(NFTGAN_WORK_POOL) NFTGAN_REPO=$(CURDIR)

server: $(STAMP)
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) --analytics-off

worker: $(STAMP)
	$(PREFECT_ENV) $(VENV)/bin/prefect work-pool create "$(NFTGAN_WORK_POOL)" --type process >/dev/null 2>&1 || true
	$(PREFECT_ENV) $(VENV)/bin/prefect worker start --pool "$(NFTGAN_WORK_POOL)"

deploy: $(STAMP)
	$(PREFECT_ENV) $(VENV)/bin/prefect work-pool create "$(NFTGAN_WORK_POOL)" --type process >/dev/null 2>&1 || true
	$(PREFECT_ENV) $(VENV)/bin/prefect gcl create gpu --limit 1 >/dev/null 2>&1 || true  # one training per GPU
	$(PREFECT_ENV) $(VENV)/bin/prefect --no-prompt deploy --all

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
